"""`python -m flowrun.server` / `flowrun-server`: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from flowrun.server import logs, workers
from flowrun.server.app import build_app, run
from flowrun.server.auth import AuthConfigError, authenticator_from_settings
from flowrun.server.config import Settings
from flowrun.server.db import connection_budget
from flowrun.server.metrics_export import MetricsEndpoint, MetricsError
from flowrun.server.tls import TlsError, check_settings
from flowrun.server.tracing import TracingConfigError, check_environment


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flowrun-server", description="Serve the flowrun gRPC API.")
    parser.add_argument("--host", help="address to bind (env FLOWRUN_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind; 0 picks a free one (env FLOWRUN_PORT, default 50051)")
    parser.add_argument("--database-url", help="SQLAlchemy async URL (env FLOWRUN_DATABASE_URL)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="server processes sharing the port, Linux only (env FLOWRUN_WORKERS; default: 1 on SQLite, "
        f"on PostgreSQL the usable CPUs up to {workers.MAX_DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="bring the database schema up to date and exit, serving nothing (a deployment's migration job)",
    )
    return parser.parse_args(argv)


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before anyone can learn our port
        loop.add_signal_handler(signum, stop.set)
    app = None
    # SIGHUP re-reads the TLS files (no restart, no dropped calls); before the app exists
    # there is nothing to re-read, but the signal must not end the process.
    loop.add_signal_handler(signal.SIGHUP, lambda: app and app.reload_certificates())
    # One process serves its own metrics; with workers the supervisor does (server/workers.py).
    endpoint = MetricsEndpoint(settings) if settings.metrics_port is not None else None
    app = await build_app(settings)
    await app.start()
    print(f"flowrun serving on {settings.host}:{app.port}", flush=True)
    await stop.wait()
    logging.getLogger("flowrun.server").info("shutting down")
    await app.stop()
    if endpoint is not None:
        endpoint.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "database_url": args.database_url,
            "workers": args.workers,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.migrate:
            run(workers.migrate_only(settings))
            return
        check_settings(settings)  # a clear message now rather than from every worker
        check_environment()  # the OTEL_* variables (server/tracing.py)
        count = workers.resolve_workers(settings)
        settings = connection_budget.sized_for(settings, count)  # each worker's pool, from the budget
        run(connection_budget.check_capacity(settings, count))  # PostgreSQL has the connections
        if count == 1:
            if settings.port:  # a port already taken: one line now, not gRPC's traceback after the migrations
                workers.reserve_port(settings.host, settings.port).close()
            run(serve(settings))  # one process, exactly as without workers: no supervisor, no fork
        else:
            authenticator_from_settings(settings)  # refuse here, not once per dying worker
            sys.exit(workers.serve(settings, count))
    except (
        workers.WorkersError,
        TlsError,
        AuthConfigError,
        TracingConfigError,
        MetricsError,
        connection_budget.ConnectionBudgetError,
    ) as exc:
        sys.exit(f"flowrun-server: error: {exc}")


if __name__ == "__main__":
    main()
