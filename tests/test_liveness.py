"""Liveness: heartbeats, the zombie sweep, late runs and expired pauses, on both databases
with the server's clock moved instead of waited for.

The sweeps act on every run of the database they sweep, so this module has a database
of its own per backend (the session's shared one holds other modules' runs). Its server
runs no sweeps by itself (services=none): each test runs a pass with `sweep_once()` at
the moment it wants, the way the background loop would."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from flowrun.client import FailedPreconditionError, FlowrunClient
from flowrun.client.heartbeat import UNTIMED_INTERVAL_SECONDS
from flowrun.server import clock
from flowrun.server.app import App, build_app
from flowrun.server.config import Settings
from flowrun.server.domain.states import State, StateType
from flowrun.server.liveness import Sweeper, sweepers
from flowrun.server.liveness.late_runs import MarkLateRuns
from flowrun.server.liveness.pause_expirations import NEVER_RESUMED, FailExpiredPauses
from flowrun.server.liveness.zombies import CrashZombies
from flowrun.server.orchestration.context import SetStateStatus
from flowrun.server.orchestration.policies import FLOW_RUNS, MARK_LATE_RUNS_POLICY
from flowrun.server.orchestration.transitions import STATE_CHANGED_REASON, set_state
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_run_event_pb2,
    flow_run_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    state_pb2,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from tests.conftest import BACKENDS, fresh_database, settings_for
from tests.helpers.rich_errors import expect_error

SCHEDULED, PENDING, RUNNING = state_pb2.STATE_TYPE_SCHEDULED, state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING
COMPLETED, FAILED, CANCELLED, CRASHED, PAUSED = (
    state_pb2.STATE_TYPE_COMPLETED,
    state_pb2.STATE_TYPE_FAILED,
    state_pb2.STATE_TYPE_CANCELLED,
    state_pb2.STATE_TYPE_CRASHED,
    state_pb2.STATE_TYPE_PAUSED,
)
ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT
SERVER_DEFAULT_TIMEOUT = 45  # this module's FLOWRUN_HEARTBEAT_TIMEOUT_SECONDS


@dataclass
class Live:
    app: App
    flows: flow_service_pb2_grpc.FlowServiceStub
    runs: flow_run_service_pb2_grpc.FlowRunServiceStub
    deployments: deployment_service_pb2_grpc.DeploymentServiceStub
    backend: str

    def sweeper(self, sweep_type: type, batch_size: int = 200) -> Sweeper:
        return Sweeper(self.app.database, sweep_type(self.app.settings), interval=60, batch_size=batch_size)

    async def flow(self) -> str:
        request = flow_service_pb2.CreateFlowRequest(name=f"liveness-{uuid.uuid4().hex[:10]}")
        return (await self.flows.CreateFlow(request)).flow.id

    async def deployment(self, flow_id: str, **fields) -> deployment_pb2.Deployment:
        request = deployment_service_pb2.CreateDeploymentRequest(
            flow_id=flow_id, name=f"d-{uuid.uuid4().hex[:8]}", **fields
        )
        return (await self.deployments.CreateDeployment(request)).deployment

    async def run(self, state=RUNNING, *, timeout: int | None = 30, flow_id: str | None = None, **fields) -> str:
        initial = state if isinstance(state, state_pb2.StateCreate) else state_pb2.StateCreate(type=state)
        request = runs_pb.CreateFlowRunRequest(flow_id=flow_id or await self.flow(), state=initial, **fields)
        if timeout is not None:
            request.heartbeat_timeout.CopyFrom(Duration(seconds=timeout))
        return (await self.runs.CreateFlowRun(request)).flow_run.id

    async def propose(self, run_id: str, state: int | state_pb2.StateCreate, *, force: bool = False):
        proposal = state if isinstance(state, state_pb2.StateCreate) else state_pb2.StateCreate(type=state)
        request = runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=proposal, force=force)
        return await self.runs.SetFlowRunState(request)

    async def heartbeat(self, run_id: str) -> runs_pb.HeartbeatFlowRunResponse:
        return await self.runs.HeartbeatFlowRun(runs_pb.HeartbeatFlowRunRequest(flow_run_id=run_id))

    async def get(self, run_id: str) -> flow_run_pb2.FlowRun:
        return (await self.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run

    async def history(self, run_id: str) -> list[state_pb2.State]:
        request = runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id, page_size=1000)
        return list((await self.runs.ListFlowRunStates(request)).states)

    async def active_slots(self, deployment_id: str) -> int:
        request = deployment_service_pb2.GetDeploymentRequest(deployment_id=deployment_id)
        return (await self.deployments.GetDeployment(request)).deployment.active_slots


@pytest.fixture(scope="module", params=BACKENDS)
async def live(request, tmp_path_factory) -> AsyncIterator[Live]:
    async with fresh_database(request.param, tmp_path_factory.mktemp("liveness")) as url:
        app = await build_app(settings_for(url, heartbeat_timeout_seconds=SERVER_DEFAULT_TIMEOUT))
        await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                yield Live(
                    app,
                    flow_service_pb2_grpc.FlowServiceStub(channel),
                    flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
                    deployment_service_pb2_grpc.DeploymentServiceStub(channel),
                    request.param,
                )
        finally:
            await app.stop(grace=0)


def at(timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def types(history: list[state_pb2.State]) -> list[int]:
    return [state.type for state in history]


# --- heartbeats ------------------------------------------------------------------------


async def test_a_heartbeat_moves_the_deadline_and_answers_it(live, move_clock):
    run_id = await live.run(RUNNING, timeout=30)
    created = await live.get(run_id)
    assert created.heartbeat_timeout.seconds == 30
    assert not created.HasField("last_heartbeat_time")
    started = at(created.heartbeat_deadline) - timedelta(seconds=30)  # entering RUNNING started the clock
    assert abs(started - clock.now()) < timedelta(seconds=5)

    move_clock(timedelta(seconds=20))
    before = clock.now()
    reply = await live.heartbeat(run_id)
    assert reply.heartbeat_timeout.seconds == 30
    assert before + timedelta(seconds=30) <= at(reply.deadline) <= clock.now() + timedelta(seconds=30)
    after = await live.get(run_id)
    assert at(after.heartbeat_deadline) == at(reply.deadline)
    assert at(after.last_heartbeat_time) == at(reply.deadline) - timedelta(seconds=30)
    assert at(after.updated) == at(created.updated)  # a heartbeat is not a change of the run


async def test_a_run_without_a_timeout_records_heartbeats_but_has_no_deadline(live):
    run_id = await live.run(RUNNING, timeout=0)
    reply = await live.heartbeat(run_id)
    assert not reply.HasField("deadline") and not reply.HasField("heartbeat_timeout")
    run = await live.get(run_id)
    assert not run.HasField("heartbeat_timeout") and not run.HasField("heartbeat_deadline")
    assert run.HasField("last_heartbeat_time")


async def test_a_heartbeat_for_a_run_that_is_not_running_changes_nothing_and_says_why(live):
    run_id = await live.run(PENDING)
    error = await expect_error(live.heartbeat(run_id))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.metadata == {"flow_run_id": run_id, "state_type": "PENDING"}

    assert (await live.propose(run_id, RUNNING)).status == ACCEPT
    await live.heartbeat(run_id)
    assert (await live.propose(run_id, COMPLETED)).status == ACCEPT
    finished = await live.get(run_id)
    error = await expect_error(live.heartbeat(run_id))  # lands between completion and process exit
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION and error.metadata["state_type"] == "COMPLETED"
    assert await live.get(run_id) == finished
    assert types(await live.history(run_id)) == [PENDING, RUNNING, COMPLETED]


async def test_a_heartbeat_for_a_missing_or_malformed_run_is_refused(live):
    missing = str(uuid.uuid4())
    error = await expect_error(live.heartbeat(missing))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "FLOW_RUN_NOT_FOUND")
    error = await expect_error(live.heartbeat("not-a-uuid"))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "flow_run_id" in error.field_violations


async def test_the_timeout_comes_from_the_run_else_its_deployment_else_the_server(live):
    flow_id = await live.flow()
    with_timeout = await live.deployment(flow_id, heartbeat_timeout=Duration(seconds=120))
    assert with_timeout.heartbeat_timeout.seconds == 120
    off = await live.deployment(flow_id, heartbeat_timeout=Duration(seconds=0))
    plain = await live.deployment(flow_id)
    assert not plain.HasField("heartbeat_timeout")

    async def timeout_of(**fields) -> int | None:
        run = await live.get(await live.run(RUNNING, flow_id=flow_id, **fields))
        return run.heartbeat_timeout.seconds if run.HasField("heartbeat_timeout") else None

    assert await timeout_of(timeout=10, deployment_id=with_timeout.id) == 10
    assert await timeout_of(timeout=None, deployment_id=with_timeout.id) == 120
    assert await timeout_of(timeout=None, deployment_id=off.id) is None
    assert await timeout_of(timeout=None, deployment_id=plain.id) == SERVER_DEFAULT_TIMEOUT
    assert await timeout_of(timeout=None, deployment_id=str(uuid.uuid4())) == SERVER_DEFAULT_TIMEOUT
    assert await timeout_of(timeout=None) == SERVER_DEFAULT_TIMEOUT
    assert await timeout_of(timeout=0) is None


@pytest.mark.parametrize("timeout", [Duration(seconds=-1), Duration(seconds=1, nanos=5), Duration(seconds=8 * 86400)])
async def test_a_bad_timeout_is_invalid(live, timeout):
    flow_id = await live.flow()
    request = runs_pb.CreateFlowRunRequest(flow_id=flow_id, heartbeat_timeout=timeout)
    error = await expect_error(live.runs.CreateFlowRun(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "heartbeat_timeout" in error.field_violations
    deployment = deployment_service_pb2.CreateDeploymentRequest(flow_id=flow_id, name="d", heartbeat_timeout=timeout)
    error = await expect_error(live.deployments.CreateDeployment(deployment))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "heartbeat_timeout" in error.field_violations


async def test_only_running_has_a_deadline_and_every_entry_into_running_starts_a_fresh_one(live, move_clock):
    run_id = await live.run(SCHEDULED, timeout=30, empirical_policy=flow_run_pb2.FlowRunPolicy(retries=1))
    assert not (await live.get(run_id)).HasField("heartbeat_deadline")
    await live.propose(run_id, PENDING)
    assert not (await live.get(run_id)).HasField("heartbeat_deadline")
    await live.propose(run_id, RUNNING)
    first = at((await live.get(run_id)).heartbeat_deadline)
    retry = await live.propose(run_id, FAILED)  # rejected to AwaitingRetry: no longer RUNNING
    assert retry.state.name == "AwaitingRetry"
    assert not (await live.get(run_id)).HasField("heartbeat_deadline")
    move_clock(timedelta(seconds=60))
    assert (await live.propose(run_id, RUNNING)).status == ACCEPT
    assert at((await live.get(run_id)).heartbeat_deadline) >= first + timedelta(seconds=60)


# --- the zombie sweep ------------------------------------------------------------------


async def slotted_running_run(live: Live, timeout: int, limit: int = 5) -> tuple[str, str]:
    """A RUNNING run holding a slot of a limited deployment: (run id, deployment id)."""
    flow_id = await live.flow()
    deployment = await live.deployment(flow_id, concurrency_limit=limit)
    run_id = await live.run(SCHEDULED, timeout=timeout, flow_id=flow_id, deployment_id=deployment.id)
    assert (await live.propose(run_id, PENDING)).status == ACCEPT
    assert (await live.propose(run_id, RUNNING)).status == ACCEPT
    return run_id, deployment.id


async def test_a_silent_run_is_crashed_once_and_gives_back_its_slot(live, move_clock):
    silent, deployment_id = await slotted_running_run(live, timeout=10)
    alive, alive_deployment = await slotted_running_run(live, timeout=10)
    assert await live.active_slots(deployment_id) == 1
    zombies = live.sweeper(CrashZombies)

    move_clock(timedelta(seconds=8))
    await live.heartbeat(alive)  # deadline now 18 s after the start
    assert (await zombies.sweep_once())["accept"] == 0  # nobody is late yet
    move_clock(timedelta(seconds=3))
    outcomes = await zombies.sweep_once()
    assert outcomes["accept"] >= 1

    crashed = await live.get(silent)
    assert crashed.state_type == CRASHED and crashed.state.name == "Crashed"
    assert crashed.state.message.startswith("No heartbeat since ")
    assert "heartbeat timeout 10 s" in crashed.state.message
    assert not crashed.HasField("heartbeat_deadline") and crashed.HasField("end_time")
    assert await live.active_slots(deployment_id) == 0  # released, as SetFlowRunState would
    assert (await live.get(alive)).state_type == RUNNING
    assert await live.active_slots(alive_deployment) == 1

    move_clock(timedelta(seconds=30))
    await zombies.sweep_once()
    await zombies.sweep_once()
    assert types(await live.history(silent)).count(CRASHED) == 1
    assert (await live.get(alive)).state_type == CRASHED  # went silent too, later


async def test_watchers_see_the_crash_like_any_other_state_change(live, move_clock):
    run_id = await live.run(RUNNING, timeout=5)
    stream = live.runs.WatchFlowRun(runs_pb.WatchFlowRunRequest(flow_run_id=run_id), timeout=30)
    snapshot = await stream.read()
    assert snapshot.snapshot_run.state_type == RUNNING
    move_clock(timedelta(seconds=6))
    await live.sweeper(CrashZombies).sweep_once()

    async def crash_event():
        while True:
            message = await stream.read()
            assert message is not grpc.aio.EOF, "the stream ended without the crash"
            if message.HasField("event"):
                return message.event

    event = await asyncio.wait_for(crash_event(), timeout=20)
    assert event.kind == flow_run_event_pb2.FLOW_RUN_EVENT_KIND_STATE_CHANGED
    assert event.state.type == CRASHED and event.previous_state_type == RUNNING
    assert event.state.message.startswith("No heartbeat since ")
    stream.cancel()


async def test_a_run_heartbeating_in_time_is_never_crashed(live, move_clock):
    run_id = await live.run(RUNNING, timeout=10)
    zombies = live.sweeper(CrashZombies)
    for _ in range(6):
        move_clock(timedelta(seconds=9))
        await zombies.sweep_once()
        await live.heartbeat(run_id)
    assert (await live.get(run_id)).state_type == RUNNING
    assert (await live.propose(run_id, COMPLETED)).status == ACCEPT
    move_clock(timedelta(seconds=60))
    await zombies.sweep_once()
    assert types(await live.history(run_id)) == [RUNNING, COMPLETED]


class Interleaved:
    """A sweep that lets `between` run after its candidates were read and before it acts:
    what a completion or heartbeat racing the sweep does."""

    def __init__(self, inner, between: Callable[[], Awaitable[None]]) -> None:
        self.inner, self.between, self.name = inner, between, inner.name

    async def candidates(self, repos, now, after, limit):
        read = await self.inner.candidates(repos, now, after, limit)
        await self.between()
        return read

    async def act(self, repos, candidate, now):
        return await self.inner.act(repos, candidate, now)


@pytest.mark.parametrize("finish", [COMPLETED, FAILED, CANCELLED], ids=["completed", "failed", "cancelled"])
async def test_a_run_that_finished_after_the_sweep_read_it_is_never_touched(live, move_clock, finish):
    run_id = await live.run(RUNNING, timeout=5)
    move_clock(timedelta(seconds=6))

    async def finish_it() -> None:
        state = state_pb2.StateCreate(type=finish)
        assert (await live.propose(run_id, state, force=finish == CANCELLED)).status == ACCEPT

    sweep = Interleaved(CrashZombies(live.app.settings), finish_it)
    outcomes = await Sweeper(live.app.database, sweep, interval=60, batch_size=200).sweep_once()
    assert outcomes["skipped"] >= 1
    assert types(await live.history(run_id)) == [RUNNING, finish]


async def test_a_heartbeat_that_lands_after_the_sweep_read_the_run_saves_it(live, move_clock):
    run_id = await live.run(RUNNING, timeout=5)
    move_clock(timedelta(seconds=6))

    async def beat() -> None:
        await live.heartbeat(run_id)

    sweep = Interleaved(CrashZombies(live.app.settings), beat)
    await Sweeper(live.app.database, sweep, interval=60, batch_size=200).sweep_once()
    assert (await live.get(run_id)).state_type == RUNNING


async def test_a_run_locked_by_a_state_change_in_flight_is_skipped_not_waited_for(live, move_clock):
    if live.backend == "sqlite":
        pytest.skip("SQLite has one writer: a sweep's transaction waits its turn like any other")
    run_id = await live.run(RUNNING, timeout=5)
    move_clock(timedelta(seconds=6))
    async with live.app.database.unit_of_work(write=True) as uow:
        await uow.repos.flow_runs.get_for_orchestration(run_id)  # the row lock a SetFlowRunState holds
        outcomes = await asyncio.wait_for(live.sweeper(CrashZombies).sweep_once(), timeout=5)
        assert outcomes["skipped"] >= 1 and outcomes["error"] == 0
    assert (await live.get(run_id)).state_type == RUNNING
    await live.sweeper(CrashZombies).sweep_once()  # the next pass finds it free
    assert (await live.get(run_id)).state_type == CRASHED


async def test_set_state_with_an_expected_state_aborts_when_the_state_changed(live):
    run_id = await live.run(RUNNING, timeout=0)
    read = (await live.get(run_id)).state_id
    assert (await live.propose(run_id, COMPLETED)).status == ACCEPT
    now = clock.now()
    crashed = State(type=StateType.CRASHED, name="Crashed", timestamp=now)
    async with live.app.database.unit_of_work(write=True) as uow:
        result = await set_state(
            uow.repos, FLOW_RUNS, run_id, crashed, now, force=True, settings=live.app.settings, expected_state_id=read
        )
    assert result.status == SetStateStatus.ABORT and result.reason == STATE_CHANGED_REASON
    assert result.state is not None and result.state.type == StateType.COMPLETED
    assert types(await live.history(run_id)) == [RUNNING, COMPLETED]


async def test_a_pass_reads_in_batches_and_one_failing_run_does_not_stop_it(live, move_clock):
    run_ids = [await live.run(RUNNING, timeout=5) for _ in range(5)]
    move_clock(timedelta(seconds=6))
    poisoned = run_ids[1]

    class Poisoned(CrashZombies):
        async def act(self, repos, candidate, now):
            if candidate.run_id == poisoned:
                raise RuntimeError("boom")
            return await super().act(repos, candidate, now)

    outcomes = await Sweeper(live.app.database, Poisoned(live.app.settings), interval=60, batch_size=2).sweep_once()
    assert outcomes["error"] == 1
    states = [(await live.get(run_id)).state_type for run_id in run_ids]
    assert states == [CRASHED, RUNNING, CRASHED, CRASHED, CRASHED]
    await live.sweeper(CrashZombies).sweep_once()
    assert (await live.get(poisoned)).state_type == CRASHED


async def test_two_sweeps_racing_completions_and_heartbeats_crash_each_silent_run_exactly_once(live, move_clock):
    """Two sweepers (two replicas) race each other, completions and heartbeats in one
    process: on PostgreSQL over separate connections and real row locks (SKIP LOCKED),
    on SQLite through its one writer."""
    flow_id = await live.flow()
    deployment = await live.deployment(flow_id, concurrency_limit=100)

    async def started() -> str:
        run_id = await live.run(SCHEDULED, timeout=5, flow_id=flow_id, deployment_id=deployment.id)
        await live.propose(run_id, PENDING)
        await live.propose(run_id, RUNNING)
        return run_id

    silent = [await started() for _ in range(8)]
    finishing = [await started() for _ in range(8)]
    beating = [await started() for _ in range(4)]
    assert await live.active_slots(deployment.id) == 20
    move_clock(timedelta(seconds=6))  # every deadline has passed

    async def finish(run_id: str) -> int:
        return (await live.propose(run_id, COMPLETED)).state.type

    async def beat(run_id: str) -> None:
        try:
            await live.heartbeat(run_id)
        except grpc.aio.AioRpcError as error:  # crashed first: allowed, it missed its deadline
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION

    first, second = live.sweeper(CrashZombies, batch_size=4), live.sweeper(CrashZombies, batch_size=4)
    results = await asyncio.gather(
        first.sweep_once(), second.sweep_once(), *map(finish, finishing), *map(beat, beating)
    )
    sweeps: list[collections.Counter[str]] = results[:2]
    assert sweeps[0]["error"] == sweeps[1]["error"] == 0

    for run_id in silent:
        assert types(await live.history(run_id)) == [SCHEDULED, PENDING, RUNNING, CRASHED]
    for run_id in finishing:  # completed, or crashed first and then completed: never crashed after
        history = types(await live.history(run_id))
        assert history.count(CRASHED) <= 1 and history[-1] == COMPLETED
        assert CRASHED not in history[history.index(COMPLETED) :]
    for run_id in beating:
        assert types(await live.history(run_id)).count(CRASHED) <= 1
    crashed = sum(sweep["accept"] for sweep in sweeps)
    all_histories = [types(await live.history(run_id)) for run_id in silent + finishing + beating]
    assert crashed == sum(history.count(CRASHED) for history in all_histories)
    still_running = sum(history[-1] == RUNNING for history in all_histories)
    assert await live.active_slots(deployment.id) == still_running


# --- late runs -------------------------------------------------------------------------


def scheduled(at_time: datetime, name: str = "") -> state_pb2.StateCreate:
    state = state_pb2.StateCreate(type=SCHEDULED, name=name)
    state.state_details.scheduled_time.FromDatetime(at_time)
    return state


async def test_a_run_15_seconds_past_its_time_is_marked_late_once(live, move_clock):
    due = clock.now()
    run_id = await live.run(scheduled(due), timeout=None)
    late_runs = live.sweeper(MarkLateRuns)
    move_clock(timedelta(seconds=14))
    await late_runs.sweep_once()
    assert (await live.get(run_id)).state.name == "Scheduled"
    move_clock(timedelta(seconds=2))
    await late_runs.sweep_once()
    run = await live.get(run_id)
    assert (run.state_type, run.state.name) == (SCHEDULED, "Late")
    assert at(run.state.state_details.scheduled_time) == due  # keeps its scheduled time
    assert at(run.next_scheduled_start_time) == due
    move_clock(timedelta(seconds=60))
    await late_runs.sweep_once()
    assert [state.name for state in await live.history(run_id)] == ["Scheduled", "Late"]
    # a late run still starts
    assert (await live.propose(run_id, PENDING)).status == ACCEPT


async def test_only_runs_waiting_in_scheduled_are_late(live, move_clock):
    past = clock.now() - timedelta(minutes=5)
    retrying = await live.run(scheduled(past, "AwaitingRetry"), timeout=None)
    pending = await live.run(PENDING, timeout=None)
    future = await live.run(scheduled(clock.now() + timedelta(hours=1)), timeout=None)
    await live.sweeper(MarkLateRuns).sweep_once()
    assert (await live.get(retrying)).state.name == "AwaitingRetry"
    assert (await live.get(pending)).state_type == PENDING
    assert (await live.get(future)).state.name == "Scheduled"


async def test_the_late_runs_policy_holds_ensure_only_scheduled_flows_marked_late(live):
    run_id = await live.run(scheduled(clock.now() - timedelta(minutes=1)), timeout=None)
    await live.sweeper(MarkLateRuns).sweep_once()
    late = await live.get(run_id)
    now = clock.now()
    again = State(type=StateType.SCHEDULED, name="Late", timestamp=now)
    async with live.app.database.unit_of_work(write=True) as uow:
        result = await set_state(
            uow.repos, FLOW_RUNS, run_id, again, now, force=False, settings=live.app.settings,
            policy=MARK_LATE_RUNS_POLICY, expected_state_id=late.state_id,
        )  # fmt: skip
    assert result.status == SetStateStatus.REJECT and result.reason == "This flow run is already marked late."


async def test_a_late_run_of_a_full_cancel_new_deployment_is_cancelled(live):
    flow_id = await live.flow()
    deployment = await live.deployment(
        flow_id,
        concurrency_limit=1,
        concurrency_options=deployment_pb2.ConcurrencyOptions(
            collision_strategy=deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW
        ),
    )
    holder = await live.run(SCHEDULED, timeout=None, flow_id=flow_id, deployment_id=deployment.id)
    assert (await live.propose(holder, PENDING)).status == ACCEPT  # takes the only slot
    past = clock.now() - timedelta(minutes=1)
    late = await live.run(scheduled(past), timeout=None, flow_id=flow_id, deployment_id=deployment.id)
    outcomes = await live.sweeper(MarkLateRuns).sweep_once()
    assert outcomes["reject"] >= 1
    run = await live.get(late)
    assert run.state_type == CANCELLED and run.state.message == "Deployment concurrency limit reached."
    assert await live.active_slots(deployment.id) == 1


# --- expired pauses --------------------------------------------------------------------


def paused(timeout_at: datetime | None) -> state_pb2.StateCreate:
    state = state_pb2.StateCreate(type=PAUSED, name="Paused")
    if timeout_at is not None:
        state.state_details.pause_timeout.FromDatetime(timeout_at)
    return state


async def test_a_pause_that_timed_out_fails_the_run(live, move_clock):
    run_id = await live.run(RUNNING, timeout=None)
    assert (await live.propose(run_id, paused(clock.now() + timedelta(seconds=30)))).status == ACCEPT
    forever = await live.run(RUNNING, timeout=None)
    assert (await live.propose(forever, paused(None))).status == ACCEPT
    pauses = live.sweeper(FailExpiredPauses)
    move_clock(timedelta(seconds=29))
    await pauses.sweep_once()
    assert (await live.get(run_id)).state_type == PAUSED
    move_clock(timedelta(seconds=2))
    await pauses.sweep_once()
    run = await live.get(run_id)
    assert (run.state_type, run.state.name, run.state.message) == (FAILED, "Failed", NEVER_RESUMED)
    assert (await live.get(forever)).state_type == PAUSED
    move_clock(timedelta(days=1))
    await pauses.sweep_once()
    assert types(await live.history(run_id)) == [RUNNING, PAUSED, FAILED]


async def test_a_pass_reads_every_paused_run_even_when_few_expired(live, move_clock):
    now = clock.now()
    expiring = []
    for index in range(15):  # 3 expiring among 12 waiting pauses, over several reads
        run_id = await live.run(RUNNING, timeout=None)
        timeout_at = now + timedelta(seconds=10 if index % 5 == 0 else 3600)
        await live.propose(run_id, paused(timeout_at))
        if index % 5 == 0:
            expiring.append(run_id)
    move_clock(timedelta(seconds=11))
    await live.sweeper(FailExpiredPauses, batch_size=2).sweep_once()
    assert [(await live.get(run_id)).state_type for run_id in expiring] == [FAILED] * len(expiring)


# --- the services switch ---------------------------------------------------------------


def test_services_setting_names_the_sweeps():
    assert Settings().enabled_services == {"zombies", "late_runs", "pause_expirations"}
    assert Settings().heartbeat_timeout_seconds == 0 and Settings().late_runs_after_seconds == 15
    assert Settings(services="none").enabled_services == set()
    assert Settings(services=" Zombies ,late_runs").enabled_services == {"zombies", "late_runs"}
    with pytest.raises(ValueError, match="unknown service"):
        Settings(services="zombie")


async def test_the_app_starts_and_stops_the_sweeps_it_was_told_to(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'services.db'}"
    app = await build_app(settings_for(url, services="zombies,pause_expirations"))
    assert [sweeper.name for sweeper in app.liveness] == ["zombies", "pause_expirations"]
    await app.start()
    try:
        assert all(sweeper.running for sweeper in app.liveness)
    finally:
        await app.stop(grace=0)
    assert not any(sweeper.running for sweeper in app.liveness)
    everything = sweepers(app.database, Settings(database_url=url))
    assert [sweeper.name for sweeper in everything] == ["zombies", "late_runs", "pause_expirations"]


# --- the Python client's heartbeat helper ------------------------------------------------


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def heartbeat_tasks(run_id: str) -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_name() == f"flowrun-heartbeat-{run_id}"]


async def test_the_client_beats_at_a_third_of_the_timeout_and_stops_on_exit(live):
    run_id = await live.run(RUNNING, timeout=30)
    async with FlowrunClient(f"127.0.0.1:{live.app.port}") as client:
        async with client.heartbeat(run_id) as beat:
            assert beat.interval == 10
            assert beat.deadline is not None and beat.deadline == at((await live.get(run_id)).heartbeat_deadline)
            assert len(heartbeat_tasks(run_id)) == 1
        assert heartbeat_tasks(run_id) == [] and not beat.lost.is_set()
        untimed = await live.run(RUNNING, timeout=0)
        async with client.heartbeat(untimed) as beat:
            assert beat.interval == UNTIMED_INTERVAL_SECONDS and beat.deadline is None


async def test_the_client_keeps_the_run_alive_until_the_server_says_it_is_not_running(live):
    run_id = await live.run(RUNNING, timeout=30)
    async with FlowrunClient(f"127.0.0.1:{live.app.port}") as client:
        async with client.heartbeat(run_id, interval=0.02) as beat:
            first = at((await live.get(run_id)).last_heartbeat_time)

            async def beaten_again() -> bool:
                return at((await live.get(run_id)).last_heartbeat_time) > first

            await wait_until(beaten_again)
            assert (await live.propose(run_id, state_pb2.STATE_TYPE_CANCELLING)).status == ACCEPT
            await asyncio.wait_for(beat.lost.wait(), timeout=10)
            assert beat.state_type == "CANCELLING"
            assert heartbeat_tasks(run_id) == [] or all(task.done() for task in heartbeat_tasks(run_id))


async def test_the_client_keeps_beating_through_a_pause_and_counts_again_once_resumed(live):
    run_id = await live.run(RUNNING, timeout=30)
    async with FlowrunClient(f"127.0.0.1:{live.app.port}") as client:
        async with client.heartbeat(run_id, interval=0.02) as beat:
            assert (await live.propose(run_id, paused(None))).status == ACCEPT

            async def seen_paused() -> bool:
                return beat.state_type == "PAUSED"

            await wait_until(seen_paused)
            assert not beat.lost.is_set()
            resumed = await live.propose(run_id, RUNNING)
            assert resumed.status == ACCEPT

            async def beating_again() -> bool:
                run = await live.get(run_id)
                return beat.state_type is None and at(run.last_heartbeat_time) > at(resumed.state.timestamp)

            await wait_until(beating_again)
            assert not beat.lost.is_set()


async def test_the_client_refuses_to_beat_for_a_run_that_is_not_running(live):
    run_id = await live.run(PENDING)
    async with FlowrunClient(f"127.0.0.1:{live.app.port}") as client:
        with pytest.raises(FailedPreconditionError) as raised:
            async with client.heartbeat(run_id):
                pass
        assert raised.value.metadata["state_type"] == "PENDING"
        with pytest.raises(ValueError):
            client.heartbeat(run_id, interval=0)
