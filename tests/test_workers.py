"""`python -m flowrun.server --workers 2`: one announced port served by two worker processes of
one supervisor, on a fresh PostgreSQL database and on an SQLite file.

Which worker answers a call is not visible in the API, and should not be: the tests find
the workers in /proc instead (children of the announced process that listen on the
port) and count the established connections each one holds. Channels are opened with a
local subchannel pool, since gRPC otherwise shares one connection between channels to
the same target, and the kernel spreads connections, not calls.

Every test owns its processes and its database: processes are stopped (SIGTERM, then
SIGKILL) and the PostgreSQL database dropped in `finally`, whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from flowrun.server import workers
from flowrun.server.config import Settings
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc
from tests.conftest import BACKENDS, fresh_database
from tests.helpers.processes import TCP_LISTEN, alive, children, connections_per_worker, socket_states, worker_pids
from tests.helpers.races import (
    ABORT,
    ACCEPT,
    PENDING,
    REJECT,
    RUNNING,
    SCHEDULED,
    check_all,
    new_flow,
    new_run,
    propose,
    read_history,
    render,
)
from tests.helpers.servers import ServerProcess, wait_for_health

WORKERS = 2
CHANNELS = 20
START_TIMEOUT_SECONDS = 60
GRACE_SECONDS = 1.0  # FLOWRUN_SHUTDOWN_GRACE_SECONDS in tests/helpers/servers.py
# Separate connections per channel: without this, channels to one target share one.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


# --- fixtures -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def supervisor(database_url: str, log_dir: Path, count: int = WORKERS) -> AsyncIterator[ServerProcess]:
    """`python -m flowrun.server --workers count`, SERVING on its announced port."""
    server = ServerProcess(database_url, log_path=log_dir / "server.log", args=["--workers", str(count)])
    try:
        await asyncio.to_thread(server.wait_until_serving, START_TIMEOUT_SECONDS)
        await wait_for_health(server.address, START_TIMEOUT_SECONDS)
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
async def service(request, tmp_path) -> AsyncIterator[ServerProcess]:
    async with fresh_database(request.param, tmp_path) as url, supervisor(url, tmp_path) as server:
        yield server


@contextlib.asynccontextmanager
async def separate_stubs(address: str, count: int) -> AsyncIterator[list[flow_run_service_pb2_grpc.FlowRunServiceStub]]:
    """`count` stubs, each on its own channel and its own TCP connection, all connected."""
    async with contextlib.AsyncExitStack() as stack:
        stubs = []
        for _ in range(count):
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS))
            await asyncio.wait_for(channel.channel_ready(), 30)
            stubs.append(flow_run_service_pb2_grpc.FlowRunServiceStub(channel))
        yield stubs


def assert_spread_over_workers(server: ServerProcess, stubs: Sequence[object]) -> None:
    """Both workers hold some of the stubs' connections. The kernel hashes each
    connection to a worker, so all of 20 land on one worker with probability 2 * 2**-20."""
    per_worker = connections_per_worker(server)
    assert len(per_worker) == WORKERS, f"listening children of {server.process.pid}: {per_worker}"
    assert all(per_worker.values()) and sum(per_worker.values()) >= len(stubs), (
        f"{len(stubs)} connections spread over the workers as {per_worker}"
    )


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_both_workers_answer_on_the_announced_port(service):
    """Health is SERVING (the fixture waited for it); 20 channels each get answers; the
    announced process itself serves nothing, and each of its two workers holds some of
    the 20 connections."""
    parent = service.process.pid
    assert len(worker_pids(service)) == WORKERS
    assert socket_states(parent, service.port) == [], "the supervisor still holds a socket on the port"
    flow_id = await new_flow(service.address, "workers")
    async with separate_stubs(service.address, CHANNELS) as stubs:
        created = await asyncio.gather(*(new_run(stub, flow_id) for stub in stubs))
        for stub in stubs:  # every run is visible through every worker: one database
            for record in created[:3]:
                run = (await stub.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id), timeout=30)).flow_run
                assert run.id == record.run_id
        assert_spread_over_workers(service, stubs)


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_racing_one_transition_through_both_workers_accepts_exactly_one(service):
    """20 clients on 20 connections (so through both workers) propose SCHEDULED ->
    PENDING on one run at once: the run's lock lives in the database, so exactly one is
    accepted and the others see its state, as in test_concurrency.py."""
    flow_id = await new_flow(service.address, "workers-race")
    async with separate_stubs(service.address, CHANNELS) as stubs:
        assert_spread_over_workers(service, stubs)
        for _ in range(3):
            record = await new_run(stubs[0], flow_id, SCHEDULED)
            record.calls = list(await asyncio.gather(*(propose(stub, record.run_id, PENDING) for stub in stubs)))
            history = await read_history(stubs[0], record.run_id)
            run = (await stubs[0].GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id))).flow_run
            check_all(record, history, run)
            winners = [call for call in record.calls if call.status == ACCEPT]
            assert len(winners) == 1, render(history, record.calls)
            assert all(call.status in (ABORT, REJECT) for call in record.calls if call is not winners[0])
            assert [state.id for state in history] == [record.initial.id, winners[0].state.id]


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_concurrent_writes_through_both_workers_are_serialized(service):
    """16 clients propose RUNNING on one PENDING run at once. The policy accepts every
    one, so each must start from the state the previous one wrote, whichever worker it
    went through: a lost update would show in the history, run_count or total_run_time."""
    clients = 16
    flow_id = await new_flow(service.address, "workers-serial")
    async with separate_stubs(service.address, clients) as stubs:
        record = await new_run(stubs[0], flow_id, PENDING)
        record.calls = list(await asyncio.gather(*(propose(stub, record.run_id, RUNNING) for stub in stubs)))
        history = await read_history(stubs[0], record.run_id)
        run = (await stubs[0].GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=record.run_id))).flow_run
    check_all(record, history, run)
    assert [call.status for call in record.calls] == [ACCEPT] * clients, render(history, record.calls)
    assert [state.type for state in history] == [PENDING] + [RUNNING] * clients
    assert run.run_count == clients


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_sigterm_stops_every_worker_and_exits_zero(service):
    """SIGTERM to the announced process: it forwards the stop, every worker drains and
    exits, and the supervisor exits 0 within the grace period (plus start-up slack of
    the stop itself)."""
    pids = worker_pids(service)
    assert len(pids) == WORKERS
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(service.process.wait, GRACE_SECONDS + workers.STOP_MARGIN_SECONDS)
    elapsed = time.monotonic() - started
    assert code == 0, service.log_tail()
    assert not [pid for pid in pids if alive(pid)], "workers outlived the supervisor"
    assert elapsed < GRACE_SECONDS + workers.STOP_MARGIN_SECONDS


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_a_worker_that_dies_is_replaced(tmp_path):
    """When one worker dies the supervisor starts a new one in its place; the other
    keeps serving meanwhile. (Under load: tests/test_faults_kill.py.)"""
    async with fresh_database("sqlite", tmp_path) as url, supervisor(url, tmp_path) as server:
        victim, survivor = worker_pids(server)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (pids := worker_pids(server)) in ([], [survivor]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(pids) == WORKERS and survivor in pids and victim not in pids, (pids, server.log_tail())
        assert server.process.poll() is None, "the supervisor exited"
        await wait_for_health(server.address, START_TIMEOUT_SECONDS)


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    """SIGKILL leaves the supervisor no chance to stop its workers; they notice their
    pipe to it closing and stop by themselves instead of serving on as orphans."""
    async with fresh_database("sqlite", tmp_path) as url, supervisor(url, tmp_path) as server:
        pids = worker_pids(server)
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + GRACE_SECONDS + workers.STOP_MARGIN_SECONDS
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)], "orphaned workers kept serving"


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_a_second_service_cannot_share_a_busy_port(tmp_path):
    """With SO_REUSEPORT a second server could bind the same port and silently get half
    the connections; the supervisor checks the port is free first and refuses."""
    async with fresh_database("sqlite", tmp_path) as url, supervisor(url, tmp_path) as server:
        second = subprocess.run(
            [*server.process.args, "--port", str(server.port)],
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "FLOWRUN_DATABASE_URL": url, "FLOWRUN_HOST": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "Address already in use" in second.stderr, second.stderr[-2000:]


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_one_worker_is_one_process(tmp_path):
    """--workers 1 serves exactly as before workers existed: no supervisor, no children."""
    async with fresh_database("sqlite", tmp_path) as url, supervisor(url, tmp_path, count=1) as server:
        assert children(server.process.pid) == []
        assert TCP_LISTEN in socket_states(server.process.pid, server.port)


def test_default_worker_count():
    """1 on SQLite and off Linux; on PostgreSQL on Linux, the usable CPUs up to the cap."""
    sqlite = Settings(database_url="sqlite+aiosqlite:///x.db")
    postgres = Settings(database_url="postgresql+asyncpg://u@h/db")
    cpus = workers.usable_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    assert workers.resolve_workers(sqlite, "linux") == 1
    assert workers.resolve_workers(postgres, "linux") == min(cpus, workers.MAX_DEFAULT_WORKERS)
    assert workers.resolve_workers(postgres, "darwin") == 1
    assert workers.resolve_workers(postgres.model_copy(update={"workers": 3}), "linux") == 3


def test_several_workers_need_linux():
    settings = Settings(database_url="postgresql+asyncpg://u@h/db", workers=2)
    with pytest.raises(workers.WorkersError, match="needs Linux"):
        workers.resolve_workers(settings, "darwin")
    assert workers.resolve_workers(settings.model_copy(update={"workers": 1}), "darwin") == 1
