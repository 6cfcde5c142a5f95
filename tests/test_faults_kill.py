"""Processes killed with SIGKILL under load, then restarted: nothing acknowledged is lost
and no run is half written.

16 clients drive flow-run lifecycles (tests/helpers/fault_load.py) while, mid-run:

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

Half of the clients run their runs in a deployment limited to LIMIT concurrency slots,
so slots are contended when the kill comes (a run turned away waits in SCHEDULED
"AwaitingConcurrencySlot" and its client proposes PENDING again). The slots are checked
on the database itself (tests/helpers/fault_load.py `check_slots`) in snapshot after snapshot
throughout, once the load is stopped after the kill (and the restart), and once it has
finished: the deployment's PENDING/RUNNING/CANCELLING runs are exactly the holders of
its live leases, never more than LIMIT, no lease belongs to a run that is not active, and
each active run's state names its one lease.

A killed process answers nothing, so the failed calls here are the client library's own
UNAVAILABLE, without details; any error the server itself sent must still carry RetryInfo.
Each test owns its processes and database, and stops and drops them whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowrun.server import workers
from flowrun.server.config import Settings
from tests.conftest import fresh_database
from tests.helpers import dying_workers
from tests.helpers.fault_load import (
    SLOT_ENV,
    ActiveRun,
    ErrorCheck,
    LeaseRow,
    Load,
    SlotFigures,
    SlotWatch,
    killed_server_problem,
    new_flow,
    new_limited_deployment,
    slot_problems,
    stopping_server_problem,
    verify,
    verify_slots,
    wait_until,
)
from tests.helpers.processes import alive, worker_pids
from tests.helpers.servers import ServerProcess, wait_for_health

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds each

CLIENTS = 16
LIMITED_CLIENTS = 8  # their runs belong to a deployment with LIMIT slots
LIMIT = 3
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
    env = {**SLOT_ENV, **(env or {})}
    server = ServerProcess(database_url, log_path=log_path, args=["--workers", str(workers)], env=env)
    try:
        await asyncio.to_thread(server.wait_until_serving, START_TIMEOUT_SECONDS)
        await wait_for_health(server.address, START_TIMEOUT_SECONDS)
    except BaseException:
        server.stop()
        raise
    return server


async def new_load(address: str, name: str, error_problem: ErrorCheck) -> Load:
    """A load on a new flow, LIMITED_CLIENTS of whose clients run in a deployment with LIMIT slots."""
    flow_id = await new_flow(address, name)
    deployment_id = await new_limited_deployment(address, flow_id, f"{name}-limited", LIMIT)
    return Load(flow_id, CLIENTS, error_problem, deployment_id=deployment_id, limited_clients=LIMITED_CLIENTS)


async def under_load(load: Load, address: str) -> asyncio.Task:
    """Starts the load and returns once every client finished a lifecycle."""
    running = asyncio.create_task(load.run(address))
    await wait_until(lambda: load.figures.lifecycles >= CLIENTS, 60, "under load", [running])
    return running


@contextlib.asynccontextmanager
async def watched_load(url: str, address: str, name: str, problem) -> AsyncIterator[tuple[Load, SlotWatch]]:
    """A new load on `address` with the slot watch beside it. The watch is stopped on the
    way out whatever happened (finish_and_verify stops it first and reports what it saw;
    stopping again does nothing), so a failing test leaves no watcher behind."""
    load = await new_load(address, name, problem)
    watch = await SlotWatch(url, load.deployment_id, LIMIT).start()
    try:
        yield load, watch
    finally:
        with contextlib.suppress(Exception):  # the test's own error, if any, is the one to keep
            await watch.stop()


async def finish_and_verify(
    load: Load, server: ServerProcess, title: str, capsys, watch: SlotWatch, slots_wrong: list[str]
) -> None:
    """Every client finishes its lifecycle through `server`; then the books must balance
    and the slots be consistent (`slots_wrong`: what the check after the kill found)."""
    await load.finish(server.address, FINISH_TIMEOUT_SECONDS)
    wrong = await verify(server.address, load, complete=True)
    await watch.stop()
    slots_wrong = [
        *slots_wrong,
        *await verify_slots(server.database_url, load, LIMIT, "after finishing"),
        *watch.wrong,
    ]
    load.figures.slots.append(watch.render())
    with capsys.disabled():
        print("\n" + load.figures.render(title))
    assert not load.figures.problems, "\n".join(
        [*load.figures.problems[:20], "INTERNAL errors in the server log:", *server.internal_errors()]
    )
    assert not wrong, "\n".join(wrong[:20])
    assert not slots_wrong, "\n".join(slots_wrong[:20])
    assert load.figures.slot_waits, "no run was turned away for a slot: the slots were never contended"


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
            async with watched_load(url, server.address, "kill-worker", killed_server_problem) as (load, watch):
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
                slots_wrong = await verify_slots(url, load, LIMIT, "after the kill")
                title = f"a worker killed under {CLIENTS} clients"
                await finish_and_verify(load, server, title, capsys, watch, slots_wrong)
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
            async with watched_load(url, first.address, "kill-supervisor", stopping_server_problem) as (load, watch):
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
                second = await started(url, tmp_path / "second.log", WORKERS)
                try:
                    slots_wrong = await verify_slots(url, load, LIMIT, "after the kill and restart")
                    title = f"the supervisor killed under {CLIENTS} clients"
                    await finish_and_verify(load, second, title, capsys, watch, slots_wrong)
                finally:
                    second.stop()
        finally:
            first.stop()
            for pid in pids:  # orphans, if the test failed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def test_a_killed_sqlite_server_loses_nothing(tmp_path, capsys):
    async with fresh_database("sqlite", tmp_path) as url:
        first = await started(url, tmp_path / "first.log")
        try:
            async with watched_load(url, first.address, "kill-sqlite", killed_server_problem) as (load, watch):
                running = await under_load(load, first.address)
                try:
                    failed_before = sum(load.figures.errors.values())
                    first.process.kill()
                    await asyncio.to_thread(first.process.wait)
                    await wait_until(
                        lambda: sum(load.figures.errors.values()) > failed_before,
                        30,
                        "a call failed against the dead server",
                        [running],
                    )
                finally:
                    load.stop()
                    await running
                first.stop()
                assert load.figures.errors, "no call failed: the kill hit no call in flight"
                second = await started(url, tmp_path / "second.log")
                try:
                    slots_wrong = await verify_slots(url, load, LIMIT, "after the kill and restart")
                    title = f"an SQLite server killed under {CLIENTS} clients"
                    await finish_and_verify(load, second, title, capsys, watch, slots_wrong)
                finally:
                    second.stop()
        finally:
            first.stop()


def test_the_slot_check_reports_every_inconsistency():
    """`slot_problems` (what `check_slots` applies to each snapshot) on made-up rows: a
    consistent snapshot passes, and each broken invariant is reported."""
    runs = [ActiveRun("r1", "PENDING", "l1"), ActiveRun("r2", "RUNNING", "l2")]
    leases = [LeaseRow("l1", "r1", "PENDING", True), LeaseRow("l2", "r2", "RUNNING", True)]
    figures, wrong = slot_problems(2, runs, leases)
    assert (figures, wrong) == (SlotFigures(limit=2, active=2, leases=2, expired=0), [])

    def reported(limit: int, runs: list[ActiveRun], leases: list[LeaseRow]) -> str:
        wrong = slot_problems(limit, runs, leases)[1]
        assert len(wrong) == 1, wrong
        return wrong[0]

    assert reported(1, runs, leases).startswith("(b) 2 live leases, over the limit of 1")
    assert reported(2, runs, leases[:1]).startswith("(a) run r2 is RUNNING but holds no live lease")
    completed = LeaseRow("l3", "r3", "COMPLETED", True)
    assert reported(3, runs, [*leases, completed]).startswith("(c) lease l3 belongs to run r3, which is not active")
    assert "(d) run r2 holds 2 leases" in slot_problems(3, runs, [*leases, LeaseRow("l4", "r2", "RUNNING", True)])[1]
    assert reported(2, [runs[0], ActiveRun("r2", "RUNNING", None)], leases).startswith("(d) run r2 holds lease l2")
    expired = slot_problems(2, runs, [leases[0], LeaseRow("l2", "r2", "RUNNING", False)])[1]
    assert expired == [
        "(a) run r2 is RUNNING but holds no live lease",
        "lease l2 of run r2 expired (no lease should, in a test)",
    ]


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
