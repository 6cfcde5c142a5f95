"""`--workers N`: N server processes on one port, so the service can use more than one core.

One Python process runs Python code on one core at a time, and a flowrun call is mostly
Python (protobuf, orchestration rules, SQLAlchemy). So the process the user started
becomes a supervisor that serves nothing itself. It

1. reserves the port (port 0 becomes a real one here) and holds it until the workers
   listen, so nothing else can take it in between;
2. migrates the database once, so workers never race each other's migrations;
3. spawns N workers, fresh interpreters that inherit no gRPC or event-loop state, each
   building the whole app and listening on the same host:port with SO_REUSEPORT;
4. prints the one "flowrun serving on HOST:PORT" line when every worker serves;
5. replaces a worker that dies on its own (SIGKILL, OOM, a crash): the others keep
   serving meanwhile, and the kernel gives the dead worker's share of new connections to
   them until the replacement listens. A replacement that dies before serving is tried
   again after a pause that doubles each time; after MAX_FAILED_STARTS such deaths in a
   row the supervisor stops the rest and exits non-zero, so whatever restarts services
   sees a service that cannot start instead of a worker restarting forever;
6. forwards SIGTERM/SIGINT to the workers and waits for their graceful stop (then kills
   them).

A worker whose supervisor dies (SIGKILL leaves it no chance to stop them) notices its
pipe closing and stops too: no orphan keeps serving the port.

The workers share nothing but the database, which is where every guarantee already
lives (row locks, unique constraints, slot counts), exactly as with separate replicas.

The kernel spreads *connections*, not calls, over the workers (a hash of the
connection's addresses): a client with one channel talks to one worker for the channel's
life, and only many channels spread the load. This is Linux behaviour; macOS accepts
SO_REUSEPORT but gives every connection to one socket (grpc/grpc#27399, #40444), so there
N > 1 fails with a clear error instead of quietly running on one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from flowrun.server import logs
from flowrun.server.app import build_app, run
from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import migrate
from flowrun.server.db.unit_of_work import Database
from flowrun.server.metrics_export import MultiprocessMetrics

log = logging.getLogger("flowrun.workers")

# The default on PostgreSQL: one worker per usable CPU, at most this many. See README
# ("Several processes") for the measurements behind it.
MAX_DEFAULT_WORKERS = 8
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Beyond the shutdown grace: time for a worker to close its pool and exit before SIGKILL.
STOP_MARGIN_SECONDS = 5.0
# Replacing dead workers: the pause before retrying one that died before serving doubles
# from RESTART_DELAY_SECONDS up to MAX_RESTART_DELAY_SECONDS; MAX_FAILED_STARTS such
# deaths in a row (of any workers) and the supervisor gives up.
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
MAX_FAILED_STARTS = 5


class WorkersError(Exception):
    """A worker count this machine cannot run, or a port the workers cannot have."""


def resolve_workers(settings: Settings, platform: str = sys.platform) -> int:
    """The number of server processes: FLOWRUN_WORKERS / --workers, else the default."""
    if settings.workers is None:
        return default_workers(settings, platform)
    if settings.workers > 1 and not (platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")):
        raise WorkersError(
            f"--workers {settings.workers} needs Linux: only there does SO_REUSEPORT spread connections over "
            "processes (macOS gives every connection to one of them). Run one process per port behind a load "
            "balancer instead, or --workers 1."
        )
    return settings.workers


def default_workers(settings: Settings, platform: str = sys.platform) -> int:
    """SQLite: 1, because one process queues its writers on an asyncio lock while several
    processes contend through SQLite's sleeping busy handler. PostgreSQL on Linux: the
    CPUs this process may use, capped at MAX_DEFAULT_WORKERS."""
    if settings.is_sqlite or not platform.startswith("linux"):
        return 1
    return min(usable_cpus(), MAX_DEFAULT_WORKERS)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), lowered to a container's CPU quota
    (`docker --cpus`, a Kubernetes CPU limit), which the affinity does not show: a
    2-CPU container on a 64-core host must not start 8 workers."""
    cpus = len(os.sched_getaffinity(0))
    quota = _container_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _container_cpu_quota() -> float | None:
    """CPUs' worth of time per period the cgroup may use (v2 cpu.max, else v1 CFS quota),
    as the container sees its own cgroup at /sys/fs/cgroup; None when unlimited."""
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    return None


def serve(settings: Settings, count: int) -> int:
    """Runs `count` workers on settings.host:settings.port until SIGTERM or SIGINT.
    Returns the exit status: 0 after a requested stop in which every worker stopped
    cleanly, 1 otherwise (workers kept dying before serving, or one had to be killed)."""
    signals = _StopSignals()
    workers: list[Worker] = []
    exported: MultiprocessMetrics | None = None
    previous_sighup = signal.signal(signal.SIGHUP, lambda _signum, _frame: _forward_sighup(workers))
    try:
        with reserve_port(settings.host, settings.port) as reservation:
            port = reservation.getsockname()[1]
            if settings.migrate_on_start:
                run(migrate_only(settings))
            worker_settings = settings.model_copy(update={"port": port, "migrate_on_start": False})
            if settings.metrics_port is not None:  # before any worker imports prometheus-client
                exported = MultiprocessMetrics(settings)
            if signals.received is None:
                workers = _spawn(worker_settings, count)
            serving = bool(workers) and _wait_until_serving(workers, signals)
        # Closed: the workers listen on the port now (or are about to be stopped).
        if serving:
            print(f"flowrun serving on {settings.host}:{port}", flush=True)
            log.info("%d workers serving on %s:%d, pids %s", count, settings.host, port, [w.pid for w in workers])
            requested = _supervise(worker_settings, workers, signals, exported)
        else:
            requested = signals.received is not None
        clean = _stop(workers, settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS)
        return 0 if requested and clean else 1
    except BaseException:
        _stop(workers, 0)
        raise
    finally:
        signal.signal(signal.SIGHUP, previous_sighup)
        signals.close()
        if exported is not None:
            exported.close()


def _forward_sighup(workers: list[Worker]) -> None:
    """SIGHUP re-reads the TLS files: the supervisor serves nothing, so it passes the signal
    on to every worker that is serving. One still starting has no handler yet (SIGHUP
    would end it) and reads the files as it starts anyway."""
    for worker in workers:
        if worker.serving and worker.pid is not None and worker.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGHUP)


def reserve_port(host: str, port: int) -> socket.socket:
    """Binds host:port (port 0: a free port) and returns the socket, bound with SO_REUSEPORT
    but not listening. The kernel gives connections only to listening sockets, so this one
    takes none, but while it is open nothing without SO_REUSEPORT can bind the port.

    A first bind without SO_REUSEPORT fails if anything holds the port already, most
    importantly another flowrun with workers: sharing its port would be silent, and each
    connection would go to one of two unrelated services."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
            probe.bind(address)
            address = probe.getsockname()
        reservation = socket.socket(family, kind, proto)
        try:
            reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reservation.bind(address)
        except BaseException:
            reservation.close()
            raise
    except OSError as exc:
        raise WorkersError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc
    return reservation


# --- the supervisor's side ------------------------------------------------------------


@dataclass
class Worker:
    index: int
    process: BaseProcess
    channel: Connection  # the supervisor's end: "serving" arrives here; its closing tells the worker to go
    serving: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def describe_exit(self) -> str:
        code = self.process.exitcode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"status {code}"
        return f"worker {self.index} (pid {self.pid}) exited with {how}"


class _StopSignals:
    """SIGTERM and SIGINT as a file descriptor that `multiprocessing.connection.wait` can
    wait on together with the workers. Installed before any worker exists, so no signal
    between spawning and serving is lost."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        with contextlib.suppress(OSError):  # a full buffer already wakes the waiter
            self._write.send(b"\0")

    @property
    def readable(self) -> socket.socket:
        """Becomes readable when a stop signal arrives: what to pass to `wait`."""
        return self._read

    @property
    def name(self) -> str:
        """The received signal's name, e.g. SIGTERM (once one was received)."""
        assert self.received is not None, "no stop signal was received"
        return signal.Signals(self.received).name

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._read.close()
        self._write.close()


def _spawn(settings: Settings, count: int) -> list[Worker]:
    return [_spawn_one(settings, index) for index in range(count)]


def _spawn_one(settings: Settings, index: int) -> Worker:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_worker_main, args=(settings, index, theirs), name=f"flowrun-worker-{index}")
    process.start()
    theirs.close()
    return Worker(index, process, ours)


def _wait_until_serving(workers: list[Worker], signals: _StopSignals) -> bool:
    """True once every worker reported serving; False on a stop signal or a worker's death."""
    starting = {worker.channel: worker for worker in workers}
    while starting:
        for ready in wait([*starting, signals.readable]):
            if ready is signals.readable:
                log.info("%s before every worker was serving; stopping", signals.name)
                return False
            assert isinstance(ready, Connection), "the rest are the workers' channels"
            worker = starting.pop(ready)
            try:
                worker.channel.recv()
            except EOFError:  # its end closed: it exited before serving
                worker.process.join()
                log.error("%s before serving; stopping the others", worker.describe_exit())
                return False
            worker.serving = True
    return True


def _supervise(
    settings: Settings, workers: list[Worker], signals: _StopSignals, exported: MultiprocessMetrics | None = None
) -> bool:
    """Serves until a stop signal (True), replacing in `workers` every worker that exits
    on its own; False when replacements died before serving MAX_FAILED_STARTS times in a
    row."""
    failed_starts = 0
    respawn_at: dict[int, float] = {}  # worker index -> when its replacement starts
    while True:
        for index, when in sorted(respawn_at.items()):
            if when <= time.monotonic():
                del respawn_at[index]
                workers[index].channel.close()
                workers[index] = _spawn_one(settings, index)
        running = [worker for worker in workers if worker.process.exitcode is None]
        timeout = max(min(respawn_at.values()) - time.monotonic(), 0) if respawn_at else None
        ready = wait(
            [signals.readable, *(w.process.sentinel for w in running), *(w.channel for w in running if not w.serving)],
            timeout,
        )
        if signals.received is not None:
            log.info("%s: stopping %d workers", signals.name, len(workers))
            return True
        for worker in running:
            if not worker.serving and worker.channel in ready:
                with contextlib.suppress(EOFError):  # it died before serving: its sentinel says so
                    worker.channel.recv()
                    worker.serving = True
                    failed_starts = 0
                    log.info("worker %d (pid %s) replaced and serving", worker.index, worker.pid)
            if worker.process.sentinel not in ready:
                continue
            worker.process.join()
            if exported is not None:
                exported.worker_exited(worker.pid)  # its live gauges leave the sum; counters stay
            if worker.serving:
                log.error("%s while serving; replacing it", worker.describe_exit())
                respawn_at[worker.index] = time.monotonic()
                continue
            failed_starts += 1
            if failed_starts >= MAX_FAILED_STARTS:
                log.error("%s before serving, %d in a row; giving up", worker.describe_exit(), failed_starts)
                return False
            delay = min(RESTART_DELAY_SECONDS * 2 ** (failed_starts - 1), MAX_RESTART_DELAY_SECONDS)
            log.error("%s before serving; trying again in %.1f s", worker.describe_exit(), delay)
            respawn_at[worker.index] = time.monotonic() + delay


def _stop(workers: list[Worker], timeout: float) -> bool:
    """SIGTERM to every live worker (each stops gracefully), SIGKILL to any still alive
    after `timeout` seconds. True if every worker exited with status 0."""
    for worker in workers:
        if worker.process.exitcode is None:
            worker.process.terminate()
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.process.join(max(deadline - time.monotonic(), 0))
    for worker in workers:
        if worker.process.exitcode is None:
            log.error("worker %d (pid %s) did not stop within %.0f s; killing it", worker.index, worker.pid, timeout)
            worker.process.kill()
            worker.process.join()
        worker.channel.close()
    return all(worker.process.exitcode == 0 for worker in workers)


async def migrate_only(settings: Settings) -> None:
    """Brings the schema up to date on a pool of its own (`flowrun-server --migrate`, and
    the supervisor before it starts workers)."""
    database = Database(create_engine(settings))
    try:
        await migrate(database)
    finally:
        await database.dispose()


# --- the worker's side ------------------------------------------------------------------


def _worker_main(settings: Settings, index: int, channel: Connection) -> None:
    """A worker process's entry point (a fresh interpreter: the "spawn" start method)."""
    logs.configure(settings.log_level, settings.log_format, worker=index)
    run(_serve_worker(settings, channel))


async def _serve_worker(settings: Settings, channel: Connection) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    app = None
    loop.add_signal_handler(signal.SIGHUP, lambda: app and app.reload_certificates())  # from the supervisor

    def supervisor_gone() -> None:
        # The supervisor never writes after startup, so readable means end of file: it
        # died without stopping us (SIGKILL, OOM). An orphan would keep the port half served.
        loop.remove_reader(channel.fileno())
        log.error("the supervisor is gone; stopping")
        stop.set()

    app = await build_app(settings, reuse_port=True)
    await app.start()
    channel.send(app.port)
    loop.add_reader(channel.fileno(), supervisor_gone)
    await stop.wait()
    await app.stop()
