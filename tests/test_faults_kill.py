"""Processes killed with SIGKILL under load, then restarted: nothing acknowledged is lost
and no run is half written.

16 clients drive flow-run lifecycles (tests/fault_load.py) while, mid-run:

(i)   one worker of a `--workers 2` server dies: the supervisor replaces it, the clients
      get answers again without any restart, and the supervisor still stops cleanly;
(ii)  the supervisor of a `--workers 2` server dies: its workers notice and stop (no
      orphan keeps serving the port); a new server on the same database takes over;
(iii) a single server process on SQLite dies; a new one on the same file takes over
      (SQLite recovers its WAL on open).

A call cut off by the kill has an unknown outcome; the clients resend it with the same
transition id or idempotency key until they get an answer, then finish their lifecycles,
and every run in the database must be whole: its state pointer on the last entry of a
SCHEDULED, PENDING, RUNNING, COMPLETED history, every acknowledged state in it, no
transition written twice, one run per idempotency key.

A killed process answers nothing, so the failed calls here are the client library's own
UNAVAILABLE, without details; any error the server itself sent must still carry RetryInfo.
Each test owns its processes and database, and stops and drops them whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server import workers
from server.config import Settings
from tests import dying_workers
from tests.fault_load import Load, killed_server_problem, new_flow, stopping_server_problem, verify, wait_until
from tests.servers import ServerProcess, wait_for_health
from tests.test_workers import alive, fresh_database, worker_pids

CLIENTS = 16
WORKERS = 2
START_TIMEOUT_SECONDS = 60
# Liveness bounds (not speed tests): generous for a loaded 2-core machine.
RECOVERY_TIMEOUT_SECONDS = 60
FINISH_TIMEOUT_SECONDS = 120
# Orphaned workers drain their calls before they stop: a grace long enough for the calls
# in flight under this load (the tests' default of 1 s would cut some with CANCELLED).
ORPHAN_GRACE_SECONDS = 10
ORPHAN_TIMEOUT_SECONDS = ORPHAN_GRACE_SECONDS + 20


async def started(database_url: str, log_path, workers: int = 1, env: dict[str, str] | None = None) -> ServerProcess:
    server = ServerProcess(database_url, log_path=log_path, args=["--workers", str(workers)], env=env)
    try:
        await asyncio.to_thread(server.wait_until_serving, START_TIMEOUT_SECONDS)
        await wait_for_health(server.address, START_TIMEOUT_SECONDS)
    except BaseException:
        server.stop()
        raise
    return server


async def under_load(load: Load, address: str) -> asyncio.Task:
    """Starts the load and returns once every client finished a lifecycle."""
    running = asyncio.create_task(load.run(address))
    await wait_until(lambda: load.figures.lifecycles >= CLIENTS, 60, "under load", [running])
    return running


async def finish_and_verify(load: Load, server: ServerProcess, title: str, capsys) -> None:
    """Every client finishes its lifecycle through `server`; then the books must balance."""
    await load.finish(server.address, FINISH_TIMEOUT_SECONDS)
    wrong = await verify(server.address, load, complete=True)
    with capsys.disabled():
        print("\n" + load.figures.render(title))
    assert not load.figures.problems, "\n".join(
        [*load.figures.problems[:20], "INTERNAL errors in the server log:", *server.internal_errors()]
    )
    assert not wrong, "\n".join(wrong[:20])


async def refuses_connections(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return False


async def test_a_killed_worker_is_replaced_under_load(tmp_path, capsys):
    async with fresh_database("postgres", tmp_path) as url:
        server = await started(url, tmp_path / "server.log", WORKERS)
        try:
            load = Load(await new_flow(server.address, "kill-worker"), CLIENTS, killed_server_problem)
            running = await under_load(load, server.address)
            try:
                victim, survivor = worker_pids(server)
                os.kill(victim, signal.SIGKILL)
                load.mark_recovery()
                await wait_until(load.recovered, RECOVERY_TIMEOUT_SECONDS, "answering again", [running])
                await wait_until(
                    lambda: len(worker_pids(server)) == WORKERS, RECOVERY_TIMEOUT_SECONDS, "replaced", [running]
                )
                assert survivor in worker_pids(server) and victim not in worker_pids(server)
            finally:
                load.stop()
                await running
            assert load.figures.errors, "no call failed: the kill hit no call in flight"
            await finish_and_verify(load, server, f"a worker killed under {CLIENTS} clients", capsys)
            server.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(server.process.wait, 30) == 0, server.log_tail()
        finally:
            server.stop()


async def test_a_killed_supervisor_leaves_no_orphans_and_a_new_server_takes_over(tmp_path, capsys):
    async with fresh_database("postgres", tmp_path) as url:
        grace = {"FLOWRUN_SHUTDOWN_GRACE_SECONDS": str(ORPHAN_GRACE_SECONDS)}
        first = await started(url, tmp_path / "first.log", WORKERS, grace)
        pids: list[int] = []
        try:
            load = Load(await new_flow(first.address, "kill-supervisor"), CLIENTS, stopping_server_problem)
            running = await under_load(load, first.address)
            try:
                pids = worker_pids(first)
                assert len(pids) == WORKERS
                first.process.kill()
                await asyncio.to_thread(first.process.wait)
                deadline = time.monotonic() + ORPHAN_TIMEOUT_SECONDS
                while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert not [pid for pid in pids if alive(pid)], "orphaned workers kept running"
                assert await refuses_connections(first.address), "something still serves the dead supervisor's port"
            finally:
                load.stop()
                await running
        finally:
            first.stop()
            for pid in pids:  # orphans, if the test failed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        second = await started(url, tmp_path / "second.log", WORKERS)
        try:
            await finish_and_verify(load, second, f"the supervisor killed under {CLIENTS} clients", capsys)
        finally:
            second.stop()


async def test_a_killed_sqlite_server_loses_nothing(tmp_path, capsys):
    async with fresh_database("sqlite", tmp_path) as url:
        first = await started(url, tmp_path / "first.log")
        try:
            load = Load(await new_flow(first.address, "kill-sqlite"), CLIENTS, killed_server_problem)
            running = await under_load(load, first.address)
            try:
                first.process.kill()
                await asyncio.to_thread(first.process.wait)
                await asyncio.sleep(0.5)  # let the clients run into the dead server
            finally:
                load.stop()
                await running
        finally:
            first.stop()
        assert load.figures.errors, "no call failed: the kill hit no call in flight"
        second = await started(url, tmp_path / "second.log")
        try:
            await finish_and_verify(load, second, f"an SQLite server killed under {CLIENTS} clients", capsys)
        finally:
            second.stop()


# --- a worker that cannot start: the supervisor gives up ----------------------------------


def test_the_supervisor_gives_up_on_a_worker_that_cannot_start(monkeypatch):
    """A worker dies while serving and is replaced; every replacement dies before it
    serves (as when the database is gone for good): after MAX_FAILED_STARTS in a row,
    with a growing pause between tries, the supervisor gives up (False: serve() then
    stops the rest and exits 1) instead of restarting it forever."""
    monkeypatch.setattr(workers, "RESTART_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(workers, "_worker_main", dying_workers.serve_then_die)
    settings = Settings(database_url="sqlite+aiosqlite:///unused.db")
    first = workers._spawn_one(settings, 0)
    first.serving = True
    monkeypatch.setattr(workers, "_worker_main", dying_workers.die_before_serving)
    spawned = []
    spawn = workers._spawn_one
    monkeypatch.setattr(workers, "_spawn_one", lambda *args: spawned.append(spawn(*args)) or spawned[-1])
    signals = workers._StopSignals()
    try:
        assert workers._supervise(settings, [first], signals) is False
    finally:
        signals.close()
        workers._stop([first, *spawned], 5)
    assert first.process.exitcode == 3
    assert [worker.process.exitcode for worker in spawned] == [4] * workers.MAX_FAILED_STARTS
