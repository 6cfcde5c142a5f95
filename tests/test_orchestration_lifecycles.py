"""The worked life cycles of the reference (PREFECT-SPEC 4.9) through the public API, on
both backends: after every step the run's bookkeeping is checked as a client sees it
(run_count, start/end time, total run time, expected and next scheduled start time, and
the retry/pause fields of empirical_policy)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import duration_pb2, field_mask_pb2, json_format, struct_pb2

from flowrun.server import clock
from flowrun.v1 import flow_run_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.factories import create_deployment

# Also behind pgbouncer in transaction pooling mode (tests/conftest.py).
pytestmark = pytest.mark.pgbouncer

ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT
REJECT = state_pb2.SET_STATE_STATUS_REJECT
ABORT = state_pb2.SET_STATE_STATUS_ABORT
WAIT = state_pb2.SET_STATE_STATUS_WAIT
SCHEDULED = state_pb2.STATE_TYPE_SCHEDULED
PENDING = state_pb2.STATE_TYPE_PENDING
RUNNING = state_pb2.STATE_TYPE_RUNNING
COMPLETED = state_pb2.STATE_TYPE_COMPLETED
FAILED = state_pb2.STATE_TYPE_FAILED
CANCELLED = state_pb2.STATE_TYPE_CANCELLED
PAUSED = state_pb2.STATE_TYPE_PAUSED
CANCELLING = state_pb2.STATE_TYPE_CANCELLING
IN_PROCESS = flow_run_pb2.RETRY_TYPE_IN_PROCESS
RESCHEDULE = flow_run_pb2.RETRY_TYPE_RESCHEDULE

CANCELLING_ONLY_TO_CANCELLED = "Cannot transition flows that are cancelling to a state other than Cancelled."
DUPLICATE = "This run has already made this state transition."


class Run:
    """One flow run driven through the stubs, with short accessors for the checks."""

    def __init__(self, runs, flow_run: flow_run_pb2.FlowRun) -> None:
        self.runs = runs
        self.id = flow_run.id
        self.current = flow_run

    @classmethod
    async def create(cls, flows, runs, unique: str, state: state_pb2.StateCreate | None = None, **fields: Any) -> Run:
        flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"lifecycle-{unique}"))).flow
        request = runs_pb.CreateFlowRunRequest(flow_id=flow.id, **fields)
        if state is not None:
            request.state.CopyFrom(state)
        return cls(runs, (await runs.CreateFlowRun(request)).flow_run)

    async def propose(self, state: state_pb2.StateCreate, force: bool = False) -> runs_pb.SetFlowRunStateResponse:
        """Proposes `state`, then reloads the run."""
        response = await self.runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(flow_run_id=self.id, state=state, force=force)
        )
        await self.reload()
        return response

    async def reload(self) -> flow_run_pb2.FlowRun:
        self.current = (await self.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=self.id))).flow_run
        return self.current

    async def history(self) -> list[tuple[int, str]]:
        states = (await self.runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=self.id))).states
        return [(state.type, state.name) for state in states]

    @property
    def policy(self) -> flow_run_pb2.FlowRunPolicy:
        return self.current.empirical_policy

    @property
    def retry_type(self) -> int | None:
        return self.policy.retry_type if self.policy.HasField("retry_type") else None

    def has(self, name: str) -> bool:
        return self.current.HasField(name)


def state(type_: int, name: str = "", message: str = "", data: Any = None, **details: Any) -> state_pb2.StateCreate:
    proposal = state_pb2.StateCreate(
        type=type_, name=name, message=message, state_details=state_pb2.StateDetails(**details)
    )
    if data is not None:
        proposal.data.CopyFrom(json_format.ParseDict(data, struct_pb2.Value()))
    return proposal


def at(when: datetime):
    """A Timestamp, for state_details."""
    from google.protobuf.timestamp_pb2 import Timestamp

    value = Timestamp()
    value.FromDatetime(when)
    return value


def seconds(duration: duration_pb2.Duration) -> float:
    return duration.ToTimedelta().total_seconds()


def ts(message) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


async def test_plain_run(flows, runs, unique):
    run = await Run.create(flows, runs, unique)
    created = run.current
    assert created.state.type == PENDING
    assert created.expected_start_time == created.state.timestamp
    assert created.run_count == 0
    assert not run.has("start_time") and not run.has("end_time") and not run.has("next_scheduled_start_time")

    running = await run.propose(state(RUNNING))
    assert running.status == ACCEPT
    assert run.current.start_time == running.state.timestamp
    assert run.current.run_count == 1
    assert not run.has("end_time")
    assert run.current.expected_start_time == created.expected_start_time

    completed = await run.propose(state(COMPLETED))
    assert completed.status == ACCEPT
    assert run.current.end_time == completed.state.timestamp
    assert run.current.start_time == running.state.timestamp
    assert run.current.run_count == 1
    stretch = ts(completed.state.timestamp) - ts(running.state.timestamp)
    assert seconds(run.current.total_run_time) == pytest.approx(stretch.total_seconds(), abs=1e-6)
    assert seconds(run.current.total_run_time) > 0
    assert await run.history() == [(PENDING, "Pending"), (RUNNING, "Running"), (COMPLETED, "Completed")]


async def test_retries(flows, runs, unique, monkeypatch):
    policy = flow_run_pb2.FlowRunPolicy(retries=1, retry_delay=duration_pb2.Duration(seconds=5))
    run = await Run.create(flows, runs, unique, empirical_policy=policy)
    first = await run.propose(state(RUNNING))
    assert first.status == ACCEPT and run.current.run_count == 1

    # The failure is replaced by AwaitingRetry, due retry_delay later, keeping message and data.
    failed = await run.propose(state(FAILED, message="boom", data={"error": "ValueError"}))
    assert failed.status == REJECT
    assert failed.reject.reason == "Retrying"
    retry = failed.state
    assert (retry.type, retry.name, retry.message) == (SCHEDULED, "AwaitingRetry", "boom")
    assert json_format.MessageToDict(retry.data) == {"error": "ValueError"}
    due = ts(retry.state_details.scheduled_time)
    assert due - ts(retry.timestamp) == timedelta(seconds=5)
    assert run.current.state_id == retry.id
    assert run.retry_type == IN_PROCESS
    assert run.current.next_scheduled_start_time == retry.state_details.scheduled_time
    assert not run.has("end_time")
    assert run.current.run_count == 1
    assert seconds(run.current.total_run_time) > 0
    assert await run.history() == [(PENDING, "Pending"), (RUNNING, "Running"), (SCHEDULED, "AwaitingRetry")]

    # Too early: WAIT for the rest of the delay, nothing written.
    early = await run.propose(state(RUNNING))
    assert early.status == WAIT
    assert (early.wait.reason, early.state.id) == ("Scheduled time is in the future", retry.id)
    assert 4 <= early.wait.delay.seconds <= 5
    assert run.current.state_id == retry.id and run.current.run_count == 1

    # Submitting is allowed and carries the scheduled time, which still holds the start back.
    pending = await run.propose(state(PENDING))
    assert pending.status == ACCEPT
    assert pending.state.state_details.scheduled_time == retry.state_details.scheduled_time
    assert not run.has("next_scheduled_start_time")
    still_early = await run.propose(state(RUNNING))
    assert still_early.status == WAIT and 4 <= still_early.wait.delay.seconds <= 5
    assert still_early.state.id == pending.state.id

    # The worker waits; the server's clock moves past the retry's scheduled time.
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC) + timedelta(seconds=6))
    second = await run.propose(state(RUNNING))
    assert second.status == ACCEPT
    assert run.current.run_count == 2
    assert run.retry_type == IN_PROCESS

    # Retries used up: the failure is accepted and the retry type cleared.
    final = await run.propose(state(FAILED))
    assert final.status == ACCEPT and final.state.type == FAILED
    assert run.retry_type is None
    assert run.current.end_time == final.state.timestamp
    assert run.current.run_count == 2
    assert await run.history() == [
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (SCHEDULED, "AwaitingRetry"),
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (FAILED, "Failed"),
    ]


async def test_blocking_pause_and_resume(flows, runs, unique):
    run = await Run.create(flows, runs, unique)
    await run.propose(state(RUNNING))

    paused = await run.propose(state(PAUSED, pause_key="approval"))
    assert paused.status == ACCEPT
    assert list(run.policy.pause_keys) == ["approval"]
    assert not run.policy.resuming
    assert seconds(run.current.total_run_time) > 0
    assert not run.has("end_time")

    # A blocking resume counts as a new entry into RUNNING, then marks the run resuming.
    resumed = await run.propose(state(RUNNING))
    assert resumed.status == ACCEPT
    assert run.current.run_count == 2
    assert run.policy.resuming

    # The same pause site does not fire twice in one attempt.
    again = await run.propose(state(PAUSED, pause_key="approval"))
    assert again.status == REJECT
    assert again.reject.reason == "This pause has already fired."
    assert again.state.id == resumed.state.id
    assert run.current.state_id == resumed.state.id

    # Another pause site does; resuming was left set by the previous resume, so (as in the
    # reference) this RUNNING is not counted.
    second_pause = await run.propose(state(PAUSED, pause_key="review"))
    assert second_pause.status == ACCEPT
    assert sorted(run.policy.pause_keys) == ["approval", "review"]
    await run.propose(state(RUNNING))
    assert run.current.run_count == 2
    assert run.policy.resuming

    done = await run.propose(state(COMPLETED))
    assert done.status == ACCEPT
    assert not run.policy.resuming
    assert run.current.end_time == done.state.timestamp
    assert await run.history() == [
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (PAUSED, "Paused"),
        (RUNNING, "Running"),
        (PAUSED, "Paused"),
        (RUNNING, "Running"),
        (COMPLETED, "Completed"),
    ]


async def test_pause_that_timed_out_fails_on_resume(flows, runs, unique):
    run = await Run.create(flows, runs, unique)
    await run.propose(state(RUNNING))
    expired = datetime.now(UTC) - timedelta(seconds=1)
    paused = await run.propose(state(PAUSED, pause_timeout=at(expired)))
    assert paused.status == ACCEPT

    resumed = await run.propose(state(RUNNING))
    assert resumed.status == REJECT
    assert resumed.reject.reason == "The flow run pause has timed out and can no longer resume."
    assert (resumed.state.type, resumed.state.name) == (FAILED, "Failed")
    assert resumed.state.message == "The flow was running and never resumed."
    assert run.current.state_id == resumed.state.id
    assert run.current.end_time == resumed.state.timestamp
    assert run.current.run_count == 1
    assert run.policy.resuming  # set by the resume rule even though the run failed


async def test_blocking_pause_rescheduled_starts_a_new_attempt(flows, runs, unique):
    run = await Run.create(flows, runs, unique)
    await run.propose(state(RUNNING))
    await run.propose(state(PAUSED, pause_key="approval"))

    rescheduled = await run.propose(state(SCHEDULED))
    assert rescheduled.status == ACCEPT
    assert list(run.policy.pause_keys) == []
    assert not run.policy.resuming
    assert run.retry_type == RESCHEDULE
    assert run.current.next_scheduled_start_time == rescheduled.state.state_details.scheduled_time


async def test_suspend_and_resume_with_a_deployment(channel, flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"lifecycle-{unique}"))).flow
    run = await Run.create(flows, runs, unique, deployment_id=await create_deployment(channel, flow.id))
    await run.propose(state(RUNNING))
    assert run.current.run_count == 1

    suspended = await run.propose(state(PAUSED, "Suspended", pause_reschedule=True, pause_key="s"))
    assert suspended.status == ACCEPT
    assert list(run.policy.pause_keys) == ["s"]

    # The resume endpoint reschedules a suspended run as "Resuming".
    resuming = await run.propose(state(SCHEDULED, "Resuming"))
    assert resuming.status == ACCEPT
    assert run.policy.resuming
    assert list(run.policy.pause_keys) == ["s"]  # a suspension keeps its keys: the run restarts from the top
    assert run.current.next_scheduled_start_time == resuming.state.state_details.scheduled_time

    pending = await run.propose(state(PENDING))
    assert pending.status == ACCEPT
    assert pending.state.state_details.scheduled_time == resuming.state.state_details.scheduled_time
    assert not run.has("next_scheduled_start_time")
    assert run.policy.resuming

    # Resuming from a suspension does not count as a new run.
    running = await run.propose(state(RUNNING))
    assert running.status == ACCEPT
    assert run.current.run_count == 1
    assert not run.policy.resuming

    done = await run.propose(state(COMPLETED))
    assert done.status == ACCEPT
    assert run.current.run_count == 1
    assert run.current.end_time == done.state.timestamp


async def test_cancel_a_scheduled_run_without_infrastructure(flows, runs, unique):
    run = await Run.create(flows, runs, unique, state=state(SCHEDULED))
    assert run.current.next_scheduled_start_time == run.current.state.state_details.scheduled_time

    cancelled = await run.propose(state(CANCELLING))
    assert cancelled.status == REJECT
    assert cancelled.reject.reason == "Scheduled flow run has no infrastructure to terminate."
    assert (cancelled.state.type, cancelled.state.name) == (CANCELLED, "Cancelled")
    assert run.current.state_id == cancelled.state.id
    assert run.current.end_time == cancelled.state.timestamp
    assert run.current.start_time == cancelled.state.timestamp  # a terminal state also starts a run that never ran
    assert run.current.run_count == 0
    assert not run.has("next_scheduled_start_time")
    assert await run.history() == [(SCHEDULED, "Scheduled"), (CANCELLED, "Cancelled")]


async def test_cancel_a_scheduled_run_with_infrastructure(flows, runs, unique):
    run = await Run.create(flows, runs, unique, state=state(SCHEDULED))
    await runs.UpdateFlowRun(
        runs_pb.UpdateFlowRunRequest(
            flow_run=flow_run_pb2.FlowRun(id=run.id, infrastructure_pid="pid-42"),
            update_mask=field_mask_pb2.FieldMask(paths=["infrastructure_pid"]),
        )
    )
    cancelling = await run.propose(state(CANCELLING))
    assert cancelling.status == ACCEPT and cancelling.state.type == CANCELLING
    cancelled = await run.propose(state(CANCELLED))
    assert cancelled.status == ACCEPT
    assert run.current.end_time == cancelled.state.timestamp


@pytest.mark.parametrize("before", [PENDING, RUNNING], ids=["pending", "running"])
async def test_cancel_a_pending_or_running_run(flows, runs, unique, before):
    run = await Run.create(flows, runs, unique)
    if before == RUNNING:
        await run.propose(state(RUNNING))

    cancelling = await run.propose(state(CANCELLING))
    assert cancelling.status == ACCEPT
    assert not run.has("end_time")

    # Only CANCELLED may follow: late reports from the run are refused.
    for late_report in (RUNNING, COMPLETED, FAILED):
        refused = await run.propose(state(late_report))
        assert refused.status == REJECT
        assert refused.reject.reason == CANCELLING_ONLY_TO_CANCELLED
        assert refused.state.id == cancelling.state.id

    cancelled = await run.propose(state(CANCELLED))
    assert cancelled.status == ACCEPT
    assert run.current.end_time == cancelled.state.timestamp
    assert run.current.run_count == (1 if before == RUNNING else 0)
    assert (seconds(run.current.total_run_time) > 0) == (before == RUNNING)
    assert [type_ for type_, _ in await run.history()][-2:] == [CANCELLING, CANCELLED]


async def test_resending_a_transition_is_idempotent(flows, runs, unique):
    run = await Run.create(flows, runs, unique)
    start_id, finish_id = str(uuid.uuid4()), str(uuid.uuid4())

    running = await run.propose(state(RUNNING, transition_id=start_id))
    assert running.status == ACCEPT
    history = await run.history()

    # The client lost the answer and resends the same proposal.
    resent = await run.propose(state(RUNNING, transition_id=start_id))
    assert resent.status == REJECT
    assert resent.reject.reason == DUPLICATE
    assert resent.state == running.state
    assert await run.history() == history
    assert run.current.run_count == 1
    assert run.current.state_id == running.state.id

    completed = await run.propose(state(COMPLETED, transition_id=finish_id))
    assert completed.status == ACCEPT
    resent = await run.propose(state(COMPLETED, transition_id=finish_id))
    assert (resent.status, resent.reject.reason, resent.state.id) == (REJECT, DUPLICATE, completed.state.id)
    assert run.current.end_time == completed.state.timestamp
    assert len(await run.history()) == 3

    # Only the current state is compared, as in the reference: a resend of an older
    # proposal is applied again (here it re-runs the completed run, which has no result).
    stale = await run.propose(state(RUNNING, transition_id=start_id))
    assert stale.status == ACCEPT
    assert run.current.run_count == 2
