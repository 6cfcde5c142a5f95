"""PostgreSQL restarted under load: a server process keeps its clients' acknowledged
writes and recovers by itself.

16 clients drive flow-run lifecycles (tests/helpers/fault_load.py) against one `python -m
server` process while its PostgreSQL restarts, once with a clean "fast" shutdown (every
session ended by the server) and once with an "immediate" one (a crash: the next start
replays the WAL). Then:

- every failed call was UNAVAILABLE or ABORTED and carried a google.rpc.RetryInfo;
- every client gets answers again without the server being restarted;
- every acknowledged transition is in its run's history, no run is half written, no
  retried proposal was written twice (see fault_load.verify).

The PostgreSQL here is a private cluster (tests/helpers/servers.py PrivatePostgres) on its own
port, not the shared one: restarting that would break the pooled connections of the
in-process session server the rest of the suite uses (and anyone else's tests). Stopped
or not, it is started again in `finally` and destroyed at the end of the module.

FLOWRUN_TEST_FAULT_ROUNDS (default 2) sets the number of restarts; rounds alternate
between the two shutdown modes."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest

from tests.helpers.fault_load import Load, new_flow, server_error_problem, verify, wait_until
from tests.helpers.servers import PrivatePostgres, ServerProcess, wait_for_health

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds each

CLIENTS = 16
ROUNDS = int(os.environ.get("FLOWRUN_TEST_FAULT_ROUNDS", "2"))
# Liveness bounds (not speed tests): generous for a loaded 2-core machine.
START_TIMEOUT_SECONDS = 60
RECOVERY_TIMEOUT_SECONDS = 60
FINISH_TIMEOUT_SECONDS = 120


async def open_transactions(postgres: PrivatePostgres, database_url: str) -> list[str]:
    """The server's sessions inside a transaction. Checked once every call has been
    answered, when there must be none: a connection returned to the pool "idle in
    transaction" holds its locks and turns later ACCEPTs into writes that never commit."""
    admin = await asyncpg.connect(postgres.url(), timeout=10)
    try:
        rows = await admin.fetch(
            "SELECT pid, state, left(query, 80) AS query FROM pg_stat_activity "
            "WHERE datname = $1 AND xact_start IS NOT NULL",
            database_url.rsplit("/", 1)[1],
        )
    finally:
        await admin.close()
    return [f"pid {row['pid']} {row['state']}: {row['query']}" for row in rows]


async def test_postgres_restart_under_load(private_postgres, private_database, tmp_path, capsys):
    server = ServerProcess(private_database, log_path=tmp_path / "server.log")
    try:
        await asyncio.to_thread(server.wait_until_serving, START_TIMEOUT_SECONDS)
        await wait_for_health(server.address, START_TIMEOUT_SECONDS)
        load = Load(await new_flow(server.address, "restart-under-load"), CLIENTS, server_error_problem)
        running = asyncio.create_task(load.run(server.address))
        try:
            for round_ in range(ROUNDS):
                done = load.figures.lifecycles
                await wait_until(
                    lambda done=done: load.figures.lifecycles >= done + CLIENTS, 60, "under load", [running]
                )
                mode = ("fast", "immediate")[round_ % 2]
                try:
                    await asyncio.to_thread(private_postgres.restart, mode)
                finally:
                    await asyncio.to_thread(private_postgres.ensure_running)
                load.mark_recovery()
                await wait_until(
                    load.recovered,
                    RECOVERY_TIMEOUT_SECONDS,
                    f"recovered after restart {round_ + 1} ({mode})",
                    [running],
                )
        finally:
            load.stop()
            await running
        await load.finish(server.address, FINISH_TIMEOUT_SECONDS)
        wrong = await verify(server.address, load, complete=True)
        leaked = await open_transactions(private_postgres, private_database)
        with capsys.disabled():
            print("\n" + load.figures.render(f"PostgreSQL restarted {ROUNDS}x under {CLIENTS} clients"))
        assert not load.figures.problems, "\n".join(
            [*load.figures.problems[:20], "INTERNAL errors in the server log:", *server.internal_errors()]
        )
        assert not wrong, "\n".join(wrong[:20])
        assert not leaked, f"sessions left inside a transaction with every call answered: {leaked}"
        assert load.figures.errors, "no call failed: the restart did not hit the load"
    finally:
        server.stop()
        private_postgres.ensure_running()
