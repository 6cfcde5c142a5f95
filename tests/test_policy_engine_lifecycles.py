"""Life cycles against the policy engine itself: transitions.set_state on in-memory
repositories with an injected clock, no server and no database.

The worked life cycles of tests/test_orchestration_lifecycles.py (retries, pausing,
suspending, cancelling, idempotent resends), the deployment concurrency slots of
tests/test_concurrency_slots.py (including leases that expire, which over gRPC needs a
real wait), subflow runs mirrored onto their parent task run, and task runs. Then a
property-based test drives random proposals through many runs and checks the
invariants that must always hold, and two tests pin down the engine's contract: the
result is read after every after-step, and a failing before-hook writes nothing."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun.server import errors
from flowrun.server.config import Settings
from flowrun.server.db.tables import ORCHESTRATED_RUN_COLUMNS
from flowrun.server.domain.deployments import CollisionStrategy
from flowrun.server.domain.flow_runs import FlowRunPolicy
from flowrun.server.domain.states import State, StateType, has_persisted_result
from flowrun.server.orchestration.context import OrchestrationContext, SetStateStatus, TransitionResult
from flowrun.server.orchestration.policies import CORE_POLICY, FLOW_RUNS, GLOBAL_POLICY
from flowrun.server.orchestration.rules import GlobalTransform, OrchestrationRule
from flowrun.server.orchestration.slot_rules import ACTIVE_STATES, SecureFlowConcurrencySlots
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.orchestration.transitions import RunKind, set_state
from tests.helpers.memory_repositories import MemoryRepositories, proposal

SETTINGS = Settings()
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACCEPT, REJECT, ABORT, WAIT = SetStateStatus.ACCEPT, SetStateStatus.REJECT, SetStateStatus.ABORT, SetStateStatus.WAIT
SCHEDULED, PENDING, RUNNING = StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING
COMPLETED, FAILED, CANCELLED = StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED
PAUSED, CANCELLING = StateType.PAUSED, StateType.CANCELLING
LIMIT_REACHED = "Deployment concurrency limit reached."
RESULT = {"type": "reference", "storage_key": "results/abc"}


class World:
    """Memory repositories and a clock that moves only when told (each proposal is made
    `after` seconds after the previous step)."""

    def __init__(self) -> None:
        self.repos = MemoryRepositories()
        self.now = START

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def flow_run(
        self, state: str | None = "PENDING", name: str = "", *, details: dict | None = None, **fields: Any
    ) -> str:
        """A flow run with its first state, forced, as CreateFlowRun makes it."""
        run = self.repos.add_flow_run(self.now, **fields)
        if state is not None:
            first = proposal(state, self.now, name, **(details or {}))
            await set_state(self.repos, FLOW_RUNS, run.id, first, self.now, force=True, settings=SETTINGS, created=run)
        return run.id

    async def task_run(self, flow_run_id: str, task_key: str = "task") -> str:
        """A PENDING task run, as CreateTaskRun makes it."""
        run = self.repos.add_task_run(self.now, flow_run_id, task_key)
        first = proposal(PENDING, self.now)
        await set_state(self.repos, TASK_RUNS, run.id, first, self.now, force=True, settings=SETTINGS, created=run)
        return run.id

    async def propose(
        self,
        run_id: str,
        state_type: StateType | str,
        name: str = "",
        *,
        force: bool = False,
        kind: RunKind = FLOW_RUNS,
        after: float = 1.0,
        message: str | None = None,
        data: Any = None,
        **details: Any,
    ) -> TransitionResult:
        self.tick(after)
        state = proposal(state_type, self.now, name, message=message, data=data, **details)
        return await set_state(self.repos, kind, run_id, state, self.now, force=force, settings=SETTINGS)

    def run(self, run_id: str):
        return self.repos.flow_runs.get(run_id)

    def task(self, task_run_id: str):
        return self.repos.task_runs.get(task_run_id)

    def history(self, run_id: str) -> list[tuple[StateType, str]]:
        return [(state.type, state.name) for state in self.repos.flow_runs.history(run_id)]

    def slots(self, deployment_id: str) -> int:
        return self.repos.leases.active(deployment_id, self.now)


@pytest.fixture
def world() -> World:
    return World()


# --- the worked life cycles (tests/test_orchestration_lifecycles.py) ----------------------


async def test_plain_run(world):
    run_id = await world.flow_run()
    created = world.run(run_id)
    assert created.expected_start_time == created.state.timestamp and created.run_count == 0
    assert (created.start_time, created.end_time, created.next_scheduled_start_time) == (None, None, None)

    running = await world.propose(run_id, RUNNING)
    assert running.status == ACCEPT
    assert world.run(run_id).start_time == running.state.timestamp and world.run(run_id).run_count == 1

    completed = await world.propose(run_id, COMPLETED, after=2.5)
    run = world.run(run_id)
    assert completed.status == ACCEPT
    assert (run.start_time, run.end_time, run.run_count) == (running.state.timestamp, completed.state.timestamp, 1)
    assert run.total_run_time == 2.5  # the injected clock makes the stretch exact
    assert run.expected_start_time == created.expected_start_time
    assert world.history(run_id) == [(PENDING, "Pending"), (RUNNING, "Running"), (COMPLETED, "Completed")]


async def test_retries(world):
    run_id = await world.flow_run(empirical_policy=FlowRunPolicy(retries=1, retry_delay=5))
    assert (await world.propose(run_id, RUNNING)).status == ACCEPT

    failed = await world.propose(run_id, FAILED, message="boom", data={"error": "ValueError"}, after=3)
    retry = failed.state
    assert (failed.status, failed.reason) == (REJECT, "Retrying")
    assert (retry.type, retry.name, retry.message, retry.data) == (
        SCHEDULED,
        "AwaitingRetry",
        "boom",
        {"error": "ValueError"},
    )
    assert retry.state_details.scheduled_time == world.now + timedelta(seconds=5)
    run = world.run(run_id)
    assert run.state_id == retry.id and run.empirical_policy.retry_type == "in_process"
    assert run.next_scheduled_start_time == retry.state_details.scheduled_time
    assert (run.end_time, run.run_count, run.total_run_time) == (None, 1, 3.0)

    early = await world.propose(run_id, RUNNING)  # 1 s after the failure: 4 s to go
    assert (early.status, early.reason, early.delay_seconds, early.state.id) == (
        WAIT,
        "Scheduled time is in the future",
        4,
        retry.id,
    )
    pending = await world.propose(run_id, PENDING)
    assert pending.status == ACCEPT
    assert pending.state.state_details.scheduled_time == retry.state_details.scheduled_time
    assert world.run(run_id).next_scheduled_start_time is None
    still_early = await world.propose(run_id, RUNNING)
    assert (still_early.status, still_early.delay_seconds, still_early.state.id) == (WAIT, 2, pending.state.id)

    second = await world.propose(run_id, RUNNING, after=2)  # exactly due
    assert second.status == ACCEPT
    assert world.run(run_id).run_count == 2 and world.run(run_id).empirical_policy.retry_type == "in_process"

    final = await world.propose(run_id, FAILED)
    run = world.run(run_id)
    assert (final.status, final.state.type) == (ACCEPT, FAILED)
    assert (run.empirical_policy.retry_type, run.end_time, run.run_count) == (None, final.state.timestamp, 2)
    assert world.history(run_id) == [
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (SCHEDULED, "AwaitingRetry"),
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (FAILED, "Failed"),
    ]


async def test_blocking_pause_and_resume(world):
    run_id = await world.flow_run()
    await world.propose(run_id, RUNNING)

    paused = await world.propose(run_id, PAUSED, pause_key="approval")
    run = world.run(run_id)
    assert paused.status == ACCEPT
    assert (run.empirical_policy.pause_keys, run.empirical_policy.resuming) == (["approval"], False)
    assert run.total_run_time == 1.0 and run.end_time is None

    resumed = await world.propose(run_id, RUNNING)
    assert resumed.status == ACCEPT
    assert world.run(run_id).run_count == 2 and world.run(run_id).empirical_policy.resuming

    again = await world.propose(run_id, PAUSED, pause_key="approval")
    assert (again.status, again.reason, again.state.id) == (REJECT, "This pause has already fired.", resumed.state.id)
    assert world.run(run_id).state_id == resumed.state.id

    assert (await world.propose(run_id, PAUSED, pause_key="review")).status == ACCEPT
    assert sorted(world.run(run_id).empirical_policy.pause_keys) == ["approval", "review"]
    await world.propose(run_id, RUNNING)
    assert world.run(run_id).run_count == 2  # resuming was still set: not counted, as in the reference
    done = await world.propose(run_id, COMPLETED)
    run = world.run(run_id)
    assert done.status == ACCEPT and not run.empirical_policy.resuming and run.end_time == done.state.timestamp
    assert [type_ for type_, _ in world.history(run_id)] == [
        PENDING,
        RUNNING,
        PAUSED,
        RUNNING,
        PAUSED,
        RUNNING,
        COMPLETED,
    ]


async def test_pause_that_timed_out_fails_on_resume(world):
    run_id = await world.flow_run()
    await world.propose(run_id, RUNNING)
    assert (await world.propose(run_id, PAUSED, pause_timeout=world.now + timedelta(seconds=10))).status == ACCEPT

    resumed = await world.propose(run_id, RUNNING, after=11)
    run = world.run(run_id)
    assert (resumed.status, resumed.reason) == (REJECT, "The flow run pause has timed out and can no longer resume.")
    assert (resumed.state.type, resumed.state.message) == (FAILED, "The flow was running and never resumed.")
    assert (run.state_id, run.end_time, run.run_count) == (resumed.state.id, resumed.state.timestamp, 1)
    assert run.empirical_policy.resuming


async def test_blocking_pause_rescheduled_starts_a_new_attempt(world):
    run_id = await world.flow_run()
    await world.propose(run_id, RUNNING)
    await world.propose(run_id, PAUSED, pause_key="approval")
    rescheduled = await world.propose(run_id, SCHEDULED)
    policy = world.run(run_id).empirical_policy
    assert rescheduled.status == ACCEPT
    assert (policy.pause_keys, policy.resuming, policy.retry_type) == ([], False, "reschedule")
    assert world.run(run_id).next_scheduled_start_time == rescheduled.state.state_details.scheduled_time


async def test_suspend_and_resume_with_a_deployment(world):
    run_id = await world.flow_run(deployment_id=world.repos.leases.add_deployment())
    await world.propose(run_id, RUNNING)
    suspended = await world.propose(run_id, PAUSED, "Suspended", pause_reschedule=True, pause_key="s")
    assert suspended.status == ACCEPT and world.run(run_id).empirical_policy.pause_keys == ["s"]

    resuming = await world.propose(run_id, SCHEDULED, "Resuming")
    run = world.run(run_id)
    assert resuming.status == ACCEPT and run.empirical_policy.resuming
    assert run.empirical_policy.pause_keys == ["s"]
    assert run.next_scheduled_start_time == resuming.state.state_details.scheduled_time

    pending = await world.propose(run_id, PENDING)
    assert pending.state.state_details.scheduled_time == resuming.state.state_details.scheduled_time
    assert world.run(run_id).empirical_policy.resuming
    running = await world.propose(run_id, RUNNING)
    assert running.status == ACCEPT
    assert world.run(run_id).run_count == 1 and not world.run(run_id).empirical_policy.resuming
    done = await world.propose(run_id, COMPLETED)
    assert world.run(run_id).run_count == 1 and world.run(run_id).end_time == done.state.timestamp


async def test_cancel_a_scheduled_run_without_infrastructure(world):
    run_id = await world.flow_run("SCHEDULED")
    assert world.run(run_id).next_scheduled_start_time == world.run(run_id).state.state_details.scheduled_time
    cancelled = await world.propose(run_id, CANCELLING)
    run = world.run(run_id)
    assert (cancelled.status, cancelled.reason) == (REJECT, "Scheduled flow run has no infrastructure to terminate.")
    assert (cancelled.state.type, run.state_id) == (CANCELLED, cancelled.state.id)
    assert run.end_time == run.start_time == cancelled.state.timestamp
    assert (run.run_count, run.next_scheduled_start_time) == (0, None)
    assert world.history(run_id) == [(SCHEDULED, "Scheduled"), (CANCELLED, "Cancelled")]


async def test_cancel_a_scheduled_run_with_infrastructure(world):
    run_id = await world.flow_run("SCHEDULED", infrastructure_pid="pid-42")
    assert (await world.propose(run_id, CANCELLING)).state.type == CANCELLING
    cancelled = await world.propose(run_id, CANCELLED)
    assert cancelled.status == ACCEPT and world.run(run_id).end_time == cancelled.state.timestamp


@pytest.mark.parametrize("before", [PENDING, RUNNING], ids=["pending", "running"])
async def test_cancel_a_pending_or_running_run(world, before):
    run_id = await world.flow_run()
    if before == RUNNING:
        await world.propose(run_id, RUNNING)
    cancelling = await world.propose(run_id, CANCELLING)
    assert cancelling.status == ACCEPT and world.run(run_id).end_time is None
    for late_report in (RUNNING, COMPLETED, FAILED):
        refused = await world.propose(run_id, late_report)
        assert (refused.status, refused.state.id) == (REJECT, cancelling.state.id)
        assert refused.reason == "Cannot transition flows that are cancelling to a state other than Cancelled."
    cancelled = await world.propose(run_id, CANCELLED)
    run = world.run(run_id)
    assert cancelled.status == ACCEPT and run.end_time == cancelled.state.timestamp
    assert (run.run_count, run.total_run_time > 0) == ((1, True) if before == RUNNING else (0, False))


async def test_resending_a_transition_is_idempotent(world):
    run_id = await world.flow_run()
    start_id, finish_id = str(uuid.uuid4()), str(uuid.uuid4())
    running = await world.propose(run_id, RUNNING, transition_id=start_id)
    history = world.history(run_id)
    resent = await world.propose(run_id, RUNNING, transition_id=start_id)
    assert (resent.status, resent.reason) == (REJECT, "This run has already made this state transition.")
    assert resent.state == running.state
    assert world.history(run_id) == history and world.run(run_id).run_count == 1

    completed = await world.propose(run_id, COMPLETED, transition_id=finish_id)
    resent = await world.propose(run_id, COMPLETED, transition_id=finish_id)
    assert (resent.status, resent.state.id) == (REJECT, completed.state.id)
    stale = await world.propose(run_id, RUNNING, transition_id=start_id)  # only the current state is compared
    assert stale.status == ACCEPT and world.run(run_id).run_count == 2


# --- deployment concurrency slots (tests/test_concurrency_slots.py) ------------------------


async def slot_runs(world: World, count: int = 2, limit: int | None = 1, **deployment: Any) -> tuple[str, list[str]]:
    deployment_id = world.repos.leases.add_deployment(limit, **deployment)
    return deployment_id, [await world.flow_run("SCHEDULED", deployment_id=deployment_id) for _ in range(count)]


async def test_enqueue_takes_waits_and_frees_slots(world):
    deployment, (first, second) = await slot_runs(world)
    taken = await world.propose(first, PENDING)
    lease_id = taken.state.state_details.deployment_concurrency_lease_id
    assert taken.status == ACCEPT and lease_id and world.slots(deployment) == 1

    waiting = await world.propose(second, PENDING)
    assert (waiting.status, waiting.reason) == (REJECT, LIMIT_REACHED)
    assert (waiting.state.type, waiting.state.name) == (SCHEDULED, "AwaitingConcurrencySlot")
    assert waiting.state.state_details.scheduled_time - waiting.state.timestamp == timedelta(seconds=30)

    running = await world.propose(first, RUNNING)
    assert running.state.state_details.deployment_concurrency_lease_id == lease_id and world.slots(deployment) == 1
    assert (await world.propose(first, COMPLETED)).status == ACCEPT
    assert world.slots(deployment) == 0
    assert (await world.propose(second, PENDING)).status == ACCEPT and world.slots(deployment) == 1


async def test_cancel_new_cancels_the_run_that_finds_no_slot(world):
    deployment, (first, second) = await slot_runs(world, collision_strategy=CollisionStrategy.CANCEL_NEW)
    assert (await world.propose(first, PENDING)).status == ACCEPT
    outcome = await world.propose(second, PENDING)
    assert (outcome.status, outcome.state.type, outcome.state.message) == (REJECT, CANCELLED, LIMIT_REACHED)
    assert world.slots(deployment) == 1


async def test_limit_zero_aborts_and_unlimited_takes_no_slot(world):
    _, (zero,) = await slot_runs(world, 1, limit=0)
    outcome = await world.propose(zero, PENDING)
    assert (outcome.status, outcome.reason) == (
        ABORT,
        "The deployment concurrency limit is 0. The flow will deadlock if submitted again.",
    )
    unlimited, (free,) = await slot_runs(world, 1, limit=None)
    outcome = await world.propose(free, PENDING)
    assert outcome.status == ACCEPT and not outcome.state.state_details.deployment_concurrency_lease_id
    assert not world.repos.leases.leases


async def test_in_process_retry_keeps_its_slot(world):
    deployment = world.repos.leases.add_deployment(1)
    run_id = await world.flow_run("SCHEDULED", deployment_id=deployment, empirical_policy=FlowRunPolicy(retries=1))
    for target in (PENDING, RUNNING):
        assert (await world.propose(run_id, target)).status == ACCEPT
    retry = await world.propose(run_id, FAILED)
    assert (retry.status, retry.state.name) == (REJECT, "AwaitingRetry") and world.slots(deployment) == 1
    lease_id = retry.state.state_details.deployment_concurrency_lease_id
    assert lease_id
    again = await world.propose(run_id, PENDING)  # renews the lease it holds instead of taking a second
    assert again.state.state_details.deployment_concurrency_lease_id == lease_id
    assert len(world.repos.leases.leases) == 1
    assert (await world.propose(run_id, RUNNING)).status == ACCEPT
    assert (await world.propose(run_id, FAILED)).status == ACCEPT  # no retries left
    assert world.slots(deployment) == 0


async def test_runs_that_never_took_a_slot_release_nothing(world):
    deployment, (holder,) = await slot_runs(world, 1)
    assert (await world.propose(holder, PENDING)).status == ACCEPT
    bypass = await world.flow_run("PENDING", deployment_id=deployment)  # created PENDING: forced, no slot
    for target in (RUNNING, COMPLETED):
        assert (await world.propose(bypass, target)).status == ACCEPT
    assert world.slots(deployment) == 1


async def test_run_of_a_deleted_deployment_aborts_on_pending(world):
    deployment, (run_id,) = await slot_runs(world, 1, limit=2)
    del world.repos.leases.deployments[deployment]
    outcome = await world.propose(run_id, PENDING)
    assert (outcome.status, outcome.reason) == (ABORT, "Deployment not found.")


async def test_an_expired_lease_frees_its_slot_and_the_run_is_cancelled_at_running(world):
    deployment, (slow, other) = await slot_runs(world, grace_period_seconds=60)
    assert (await world.propose(slow, PENDING)).status == ACCEPT
    blocked = await world.propose(other, PENDING, after=59)
    assert blocked.state.name == "AwaitingConcurrencySlot"

    taken = await world.propose(other, PENDING, after=2)  # the slow run's lease (60 s) has expired
    assert taken.status == ACCEPT and world.slots(deployment) == 1
    lost = await world.propose(slow, RUNNING)
    assert (lost.status, lost.reason) == (REJECT, "Deployment concurrency limit reached after lease expiry.")
    assert lost.state.type == CANCELLED
    assert (
        lost.state.message
        == "Deployment concurrency slot lost during provisioning - no slots available to continue execution"
    )
    assert world.slots(deployment) == 1 and len(world.repos.leases.leases) == 1  # the expired lease was released


async def test_an_expired_lease_is_replaced_at_running_when_a_slot_is_free(world):
    deployment, (run_id,) = await slot_runs(world, 1)
    first = await world.propose(run_id, PENDING)
    old_lease = first.state.state_details.deployment_concurrency_lease_id
    running = await world.propose(run_id, RUNNING, after=SETTINGS.deployment_lease_seconds + 1)
    new_lease = running.state.state_details.deployment_concurrency_lease_id
    assert running.status == ACCEPT and new_lease not in (None, old_lease)
    assert list(world.repos.leases.leases) == [new_lease] and world.slots(deployment) == 1


async def test_a_live_lease_is_renewed_at_running(world):
    deployment, (run_id,) = await slot_runs(world, 1, grace_period_seconds=60)
    await world.propose(run_id, PENDING)
    await world.propose(run_id, RUNNING, after=50)
    world.tick(59)  # renewed at RUNNING: 60 s from then
    assert world.slots(deployment) == 1
    world.tick(2)
    assert world.slots(deployment) == 0


@pytest.mark.xfail(strict=True, reason="known: leaving AwaitingRetry for a terminal state frees no slot")
async def test_a_run_cancelled_while_awaiting_retry_keeps_its_slot(world):
    """An in-process retry keeps its slot through AwaitingRetry (SCHEDULED). Leaving
    that state for a terminal one is not leaving an active state, so nothing frees the
    slot: the cancelled run holds it until its lease expires, and if the run is
    rescheduled it takes a second one (its Cancelled state carries no lease id to renew).
    Seen while choosing the property test's invariants; left to the lead (production code)."""
    deployment = world.repos.leases.add_deployment(2)
    run_id = await world.flow_run("SCHEDULED", deployment_id=deployment, empirical_policy=FlowRunPolicy(retries=1))
    for target in (PENDING, RUNNING, FAILED):  # FAILED becomes AwaitingRetry, holding the slot
        await world.propose(run_id, target)
    cancelled = await world.propose(run_id, CANCELLING)  # no infrastructure: cancelled right away
    assert cancelled.state.type == CANCELLED
    await world.propose(run_id, SCHEDULED)
    await world.propose(run_id, PENDING)
    holders = [lease.flow_run_id for lease in world.repos.leases.leases.values()]
    assert (holders, world.slots(deployment)) == ([run_id], 1)


# --- subflows and task runs ------------------------------------------------------------------


async def test_a_subflow_is_mirrored_onto_its_parent_task_run(world):
    parent = await world.flow_run()
    parent_task = await world.task_run(parent, "subflow")
    child = await world.flow_run(parent_task_run_id=parent_task)
    assert world.task(parent_task).state.type == PENDING
    assert world.task(parent_task).state.state_details.child_flow_run_id == child

    for target in (RUNNING, COMPLETED):
        outcome = await world.propose(child, target, message=f"child {target}")
        task = world.task(parent_task)
        assert outcome.status == ACCEPT
        assert outcome.state.state_details.task_run_id == parent_task
        assert (task.state.type, task.state.name, task.state.message) == (target, outcome.state.name, f"child {target}")
        assert task.state.id != outcome.state.id
        assert task.state.state_details.child_flow_run_id == child
        assert task.state.state_details.task_run_id == parent_task
    task = world.task(parent_task)
    assert (task.run_count, task.end_time) == (1, task.state.timestamp)
    assert [s.type for s in world.repos.task_runs.history(parent_task)] == [PENDING, PENDING, RUNNING, COMPLETED]

    refused = await world.propose(child, PAUSED)  # a finished run cannot pause: nothing to mirror
    assert refused.status == ABORT and len(world.repos.task_runs.history(parent_task)) == 4


async def test_a_subflow_whose_parent_task_run_is_gone_still_transitions(world):
    child = await world.flow_run(parent_task_run_id=str(uuid.uuid4()))
    assert (await world.propose(child, RUNNING)).status == ACCEPT


async def test_task_run_bookkeeping_through_a_life_cycle(world):
    flow_run = await world.flow_run()
    task_id = await world.task_run(flow_run)
    pending = world.task(task_id).state
    running = await world.propose(task_id, RUNNING, kind=TASK_RUNS)
    assert running.state.state_details.task_run_id == task_id
    assert running.state.state_details.flow_run_id == flow_run
    done = await world.propose(task_id, COMPLETED, kind=TASK_RUNS, message="ok", after=4)
    task = world.task(task_id)
    assert (task.state_type, task.state_name, task.state.message, task.run_count) == (COMPLETED, "Completed", "ok", 1)
    assert (task.expected_start_time, task.start_time, task.end_time) == (
        pending.timestamp,
        running.state.timestamp,
        done.state.timestamp,
    )
    assert task.total_run_time == 4.0

    due = world.now + timedelta(minutes=5)
    retry = await world.propose(task_id, SCHEDULED, "AwaitingRetry", kind=TASK_RUNS, scheduled_time=due)
    assert retry.status == ACCEPT  # task runs have no scheduling rules: no WAIT either
    assert (world.task(task_id).end_time, world.task(task_id).next_scheduled_start_time) == (None, due)
    again = await world.propose(task_id, RUNNING, "Retrying", kind=TASK_RUNS)
    task = world.task(task_id)
    assert (again.status, task.run_count, task.next_scheduled_start_time) == (ACCEPT, 2, None)
    assert task.start_time == running.state.timestamp


@pytest.mark.parametrize("force", [False, True], ids=["unforced", "forced"])
async def test_a_task_runs_completed_result_is_never_overwritten_without_one(world, force):
    task_id = await world.task_run(await world.flow_run())
    await world.propose(task_id, RUNNING, kind=TASK_RUNS)
    done = await world.propose(task_id, COMPLETED, kind=TASK_RUNS, data=RESULT)
    refused = await world.propose(task_id, COMPLETED, kind=TASK_RUNS, force=force)
    assert (refused.status, refused.state.id) == (REJECT, done.state.id)
    assert world.task(task_id).state.data == RESULT
    assert (await world.propose(task_id, COMPLETED, kind=TASK_RUNS, force=force, data=RESULT)).status == ACCEPT
    assert (await world.propose(task_id, FAILED, kind=TASK_RUNS, force=force)).status == ACCEPT


async def test_the_result_names_the_rule_that_decided_it(world):
    """Traces and metrics report which rule decided a REJECT, WAIT or ABORT; an ACCEPT names none."""
    run_id = await world.flow_run(empirical_policy=FlowRunPolicy(retries=1, retry_delay=5))
    assert (await world.propose(run_id, RUNNING)).rule is None
    assert (await world.propose(run_id, FAILED)).rule == "RetryFailedFlows"
    assert (await world.propose(run_id, RUNNING)).rule == "WaitForScheduledTime"
    _, (zero,) = await slot_runs(world, 1, limit=0)
    assert (await world.propose(zero, PENDING)).rule == "SecureFlowConcurrencySlots"


async def test_an_unknown_run_is_not_found(world):
    with pytest.raises(errors.NotFound):
        await world.propose(str(uuid.uuid4()), RUNNING)
    with pytest.raises(errors.NotFound):
        await world.propose(str(uuid.uuid4()), RUNNING, kind=TASK_RUNS)


# --- the engine's contract --------------------------------------------------------------------


class AnnotateAfterWrite(GlobalTransform):
    """Runs first, so its after-step runs last: after the state was written and every
    other step exited. It changes what the result reports (the reason) and the run's
    policy (written by set_state after the after-steps)."""

    async def after_transition(self, context: OrchestrationContext) -> None:
        context.reason = f"annotated after {context.validated_state.name}"
        context.run.empirical_policy.pause_keys.append("after-step")


ANNOTATED = RunKind(
    name="flow_run",
    store=attrgetter("flow_runs"),
    not_found=errors.flow_run_not_found,
    policy=lambda force: (AnnotateAfterWrite, *CORE_POLICY),
    bookkeeping=GLOBAL_POLICY,
)


async def test_the_result_is_read_after_every_after_step(world):
    run_id = await world.flow_run()
    outcome = await world.propose(run_id, RUNNING, kind=ANNOTATED)
    assert (outcome.status, outcome.state.type) == (ACCEPT, RUNNING)
    assert outcome.reason == "annotated after Running"  # not the None it was when the state was written
    assert world.run(run_id).empirical_policy.pause_keys == ["after-step"]  # and the change was saved


class FailBeforeTransition(OrchestrationRule):
    FROM_STATES = frozenset({SCHEDULED})
    TO_STATES = frozenset({PENDING})

    async def before_transition(self, initial, proposed, context) -> None:
        raise RuntimeError("rule broke")


AFTER_SLOT = CORE_POLICY.index(SecureFlowConcurrencySlots) + 1
FAILING = RunKind(
    name="flow_run",
    store=attrgetter("flow_runs"),
    not_found=errors.flow_run_not_found,
    # right after the rule that takes a slot: the slot it took must be given back
    policy=lambda force: (*CORE_POLICY[:AFTER_SLOT], FailBeforeTransition, *CORE_POLICY[AFTER_SLOT:]),
    bookkeeping=GLOBAL_POLICY,
)


async def test_a_failing_before_hook_aborts_and_writes_nothing(world):
    deployment, (run_id,) = await slot_runs(world, 1)
    before, history = world.run(run_id), world.history(run_id)
    with pytest.raises(RuntimeError, match="rule broke"):
        await world.propose(run_id, PENDING, kind=FAILING)
    assert world.run(run_id) == before and world.history(run_id) == history
    assert world.slots(deployment) == 0 and not world.repos.leases.leases


# --- properties over random proposals ---------------------------------------------------------

TYPES = list(StateType)
EXAMPLES = int(os.environ.get("FLOWRUN_ENGINE_EXAMPLES", "200"))  # random sequences per run of the suite
NAMES = {  # the named sub-states the rules treat specially, by type
    SCHEDULED: ["", "Late", "AwaitingRetry", "Resuming"],
    PENDING: ["", "Submitting", "InfrastructurePending"],
    PAUSED: ["", "Suspended"],
}
RUN_SETUPS = st.fixed_dictionaries(
    {
        "state": st.sampled_from(TYPES),
        "deployment": st.booleans(),
        "retries": st.sampled_from([None, 0, 1, 2]),
        "infrastructure_pid": st.sampled_from([None, "pid-1"]),
        "subflow": st.booleans(),
    }
)


@st.composite
def steps(draw) -> dict[str, Any]:
    state_type = draw(st.sampled_from(TYPES))
    details: dict[str, Any] = {}
    if draw(st.booleans()):
        details["transition_id"] = draw(st.sampled_from(["t1", "t2"]))
    if state_type == PAUSED:
        details["pause_key"] = draw(st.sampled_from([None, "k1", "k2"]))
        details["pause_reschedule"] = draw(st.booleans())
        timeout = draw(st.sampled_from([None, 5, 500]))
        details["pause_timeout"] = timeout  # seconds from the proposal
    if state_type == SCHEDULED:
        details["scheduled_time"] = draw(st.sampled_from([None, 10, 200]))
    return {
        "run": draw(st.integers(0, 5)),
        "type": state_type,
        "name": draw(st.sampled_from(NAMES.get(state_type, [""]))),
        "force": draw(st.booleans()),
        "after": draw(st.sampled_from([0, 0, 0.5, 1, 30, 400])),  # 0: same instant; 400: leases expire
        "data": draw(st.sampled_from([None, RESULT])) if state_type == COMPLETED else None,
        "task_run": draw(st.integers(0, 9)) == 0,  # now and then the parent task run itself
        "details": details,
    }


def loses_result(current: State, new: State) -> bool:
    """Whether `new` would replace a COMPLETED result with none (PreventResultDataLoss
    refuses that even for the forced mirror onto a parent task run)."""
    return (
        current.type == COMPLETED
        and has_persisted_result(current.data)
        and new.type == COMPLETED
        and not has_persisted_result(new.data)
    )


class Observed:
    """What must never go backwards for one run, from one check to the next."""

    def __init__(self, run) -> None:
        self.run_count = run.run_count
        self.total_run_time = run.total_run_time
        self.start_time = run.start_time
        self.expected_start_time = run.expected_start_time


def check_run_invariants(run, history: list[State], seen: Observed | None) -> Observed:
    stamps = [state.timestamp for state in history]
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False)), "history timestamps strictly increase"
    current = history[-1]
    assert run.state_id == current.id and run.state == current, "the run's state is the last history entry"
    assert (run.state_type, run.state_name, run.state_timestamp) == (current.type, current.name, current.timestamp)
    assert (run.end_time is not None) == current.is_terminal
    if run.end_time is not None:
        assert run.start_time is not None and run.start_time <= run.end_time
    if current.type == SCHEDULED:
        assert run.next_scheduled_start_time == current.state_details.scheduled_time
    else:
        assert run.next_scheduled_start_time is None
    if seen is not None:
        assert run.run_count >= seen.run_count and run.total_run_time >= seen.total_run_time
        if seen.start_time is not None:
            assert run.start_time == seen.start_time, "start_time is set once"
        if seen.expected_start_time is not None:
            assert run.expected_start_time == seen.expected_start_time, "expected_start_time is set once"
    return Observed(run)


@pytest.mark.slow  # EXAMPLES random lifecycles of six runs: seconds
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups=st.lists(RUN_SETUPS, min_size=6, max_size=6), moves=st.lists(steps(), min_size=5, max_size=60))
async def test_invariants_hold_for_any_sequence_of_proposals(setups, moves):
    world = World()
    deployment = world.repos.leases.add_deployment(2, grace_period_seconds=120)
    parent = await world.flow_run("RUNNING")
    parent_task = await world.task_run(parent, "subflows")
    run_ids = []
    for setup in setups:
        run_ids.append(
            await world.flow_run(
                setup["state"].value,
                deployment_id=deployment if setup["deployment"] else None,
                parent_task_run_id=parent_task if setup["subflow"] else None,
                infrastructure_pid=setup["infrastructure_pid"],
                empirical_policy=FlowRunPolicy(retries=setup["retries"]),
            )
        )
    seen: dict[str, Observed] = {}
    for move in moves:
        kind = TASK_RUNS if move["task_run"] else FLOW_RUNS
        repo = world.repos.task_runs if move["task_run"] else world.repos.flow_runs
        run_id = parent_task if move["task_run"] else run_ids[move["run"]]
        world.tick(move["after"])
        details = {
            key: world.now + timedelta(seconds=value) if key in ("pause_timeout", "scheduled_time") and value else value
            for key, value in move["details"].items()
        }
        before, history_before = repo.get(run_id), repo.history(run_id)
        parent_history = len(world.repos.task_runs.history(parent_task))
        parent_before = world.task(parent_task).state
        proposed = proposal(move["type"], world.now, move["name"], data=move["data"], **details)

        outcome = await set_state(
            world.repos, kind, run_id, proposed, world.now, force=move["force"], settings=SETTINGS
        )

        after, history = repo.get(run_id), repo.history(run_id)
        assert outcome.state is not None and outcome.state.id == after.state_id, "the result is what was stored"
        written = history[len(history_before) :]
        assert history[: len(history_before)] == history_before, "history is append-only"
        if outcome.status in (WAIT, ABORT) or outcome.state.id == before.state_id:
            assert written == [], "a nullified proposal writes no state"
            assert [getattr(after, c) for c in ORCHESTRATED_RUN_COLUMNS] == [
                getattr(before, c) for c in ORCHESTRATED_RUN_COLUMNS
            ], "and no bookkeeping (only a policy flag may change, e.g. resuming)"
        else:
            assert [state.id for state in written] == [outcome.state.id], "one state per written proposal"
            assert outcome.status in (ACCEPT, REJECT)
            if outcome.status == ACCEPT:
                assert outcome.state.id == proposed.id and outcome.state.type == move["type"]
        assert (outcome.delay_seconds is not None and outcome.delay_seconds > 0) == (outcome.status == WAIT)
        assert (outcome.reason is None) == (outcome.status == ACCEPT)
        if move["force"] and kind is FLOW_RUNS:
            assert outcome.status in (ACCEPT, REJECT), "forced proposals are never delayed or aborted"
        seen[run_id] = check_run_invariants(after, history, seen.get(run_id))

        # The subflow's parent task run follows every written subflow state.
        parent_states = world.repos.task_runs.history(parent_task)
        if kind is FLOW_RUNS and after.parent_task_run_id and written and not loses_result(parent_before, written[0]):
            mirrored = parent_states[-1]
            assert len(parent_states) == parent_history + 1
            assert (mirrored.type, mirrored.name, mirrored.state_details.child_flow_run_id) == (
                written[0].type,
                written[0].name,
                run_id,
            )
        elif kind is FLOW_RUNS:
            assert len(parent_states) == parent_history
        seen[parent_task] = check_run_invariants(world.task(parent_task), parent_states, seen.get(parent_task))

        # Slots: never more held than the limit, and a run that just left the active
        # states (other than for an in-process retry) holds none. "At most one live slot
        # per run" does not hold: see test_a_run_cancelled_while_awaiting_retry_keeps_its_slot.
        leases = world.repos.leases
        assert leases.active(deployment, world.now) <= 2
        holders = [lease.flow_run_id for lease in leases.leases.values() if lease.expiration >= world.now]
        if (
            kind is FLOW_RUNS
            and written
            and before.state_type in ACTIVE_STATES
            and after.state_type not in ACTIVE_STATES
            and after.state_name != "AwaitingRetry"
        ):
            assert run_id not in holders
