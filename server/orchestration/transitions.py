"""The one way a run's state changes: lock and load the run, run the policy around
storing the proposal, write the run back, and return an explicit result.

Every state change goes through `set_state`: SetFlowRunState and SetTaskRunState (from
the orchestration interceptor, which gives it its transaction), the initial states of
CreateFlowRun and CreateTaskRun, and the subflow rule that mirrors a subflow's state
onto its parent task run. What differs between flow runs and task runs is a RunKind."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from flowrun.server import metrics
from flowrun.server.db.dialect import LOCK_NOT_AVAILABLE, sqlstate
from flowrun.server.domain.events import EventKind
from flowrun.server.domain.states import State, StateType
from flowrun.server.errors import NotFound
from flowrun.server.orchestration.context import OrchestrationContext, RunStore, SetStateStatus, TransitionResult
from flowrun.server.orchestration.engine import orchestrate
from flowrun.server.orchestration.rules import Policy

if TYPE_CHECKING:
    from flowrun.server.config import Settings
    from flowrun.server.repositories import Repositories


class LockingStore(RunStore, Protocol):
    """A run repository as set_state uses it: it also locks and loads a run."""

    async def get_for_orchestration(self, run_id: str) -> Any: ...


@dataclass(frozen=True)
class RunKind:
    """What differs between flow runs and task runs when their state changes."""

    name: str  # "flow_run" or "task_run": the metrics' kind label
    store: Callable[[Repositories], LockingStore]
    not_found: Callable[[str], NotFound]
    policy: Callable[[bool], Policy]  # force -> the rules to apply
    bookkeeping: Policy  # applied after the policy, always
    # Its store can decide and write a proposal without holding the row lock
    # (server/orchestration/unlocked.py: read_with_version, save_*_if_unchanged).
    unlocked: bool = False
    # Runs in the same transaction once a new state was stored: (repos, context, whether
    # it is a new run's first state). Flow runs write their watchers' event.
    after_store: Callable[[Repositories, OrchestrationContext, bool], Awaitable[None]] | None = None


#: The reason of the ABORT set_state answers when the run is no longer in the expected state.
STATE_CHANGED_REASON = "The run's state changed since it was read; nothing was done."


async def set_state(
    repos: Repositories,
    kind: RunKind,
    run_id: str,
    proposed: State,
    now: datetime,
    *,
    force: bool,
    settings: Settings,
    created: Any = None,
    expected_state_id: str | None = None,
    policy: Policy | None = None,
) -> TransitionResult:
    """Orchestrates `proposed` for the run `run_id` inside the caller's unit of work:
    locks and loads the run (or takes `created`, a run this transaction just inserted,
    which no one else can see yet), applies the policy and bookkeeping, stores the
    outcome, and returns it once every after-step has run. Raises the kind's NotFound
    for an unknown run; any other exception leaves the caller to roll back.

    `expected_state_id` makes the proposal conditional: when the locked run's current
    state is another one (it changed since the caller read it), nothing is orchestrated
    or written and the answer is ABORT with the current state. The server's own sweeps
    (server/liveness/) propose this way, so a run that finished an instant earlier is
    never touched. `policy` replaces the kind's policy (the late-runs sweep applies the
    reference's MarkLateRunsPolicy); the bookkeeping always follows."""
    store = kind.store(repos)
    run = created if created is not None else await _lock_and_load(store, kind, run_id)
    if run is None:
        raise kind.not_found(run_id)
    if expected_state_id is not None and run.state_id != expected_state_id:
        return TransitionResult(status=SetStateStatus.ABORT, state=run.state, reason=STATE_CHANGED_REASON)
    context = OrchestrationContext(
        run=run,
        initial_state=run.state,
        proposed_state=proposed,
        repos=repos,
        store=store,
        now=now,
        settings=settings,
    )
    await orchestrate(context, kind.policy(force) if policy is None else policy, kind.bookkeeping)
    result = await context.finish()
    if context.stored and kind.after_store is not None:
        await kind.after_store(repos, context, created is not None)
    if metrics.enabled:
        record_outcome(kind.name, context.initial_type, proposed.type, result, force)
    return result


async def append_flow_run_event(repos: Repositories, context: OrchestrationContext, created: bool) -> None:
    """The watchers' event for the flow run's new state, in this transaction
    (server/repositories/flow_run_events.py): CREATED for a run's initial state, else
    STATE_CHANGED."""
    await repos.flow_run_events.append(
        EventKind.CREATED if created else EventKind.STATE_CHANGED,
        context.run,
        context.now,
        state=context.validated_state,
        previous=None if created else context.initial_type,
    )


async def _lock_and_load(store: LockingStore, kind: RunKind, run_id: str) -> Any:
    """store.get_for_orchestration, timed for the lock-wait histogram."""
    if not metrics.enabled:
        return await store.get_for_orchestration(run_id)
    started = time.perf_counter()
    try:
        run = await store.get_for_orchestration(run_id)
    except Exception as exc:
        if sqlstate(exc) == LOCK_NOT_AVAILABLE:
            metrics.lock_timeouts(kind.name).inc()
        raise
    metrics.lock_wait(kind.name).observe(time.perf_counter() - started)
    return run


def record_outcome(
    kind: str, from_type: StateType | None, to_type: StateType, result: TransitionResult, force: bool
) -> None:
    status = result.status.value
    metrics.outcomes(kind, from_type.value if from_type else "NONE", to_type.value, status).inc()
    if result.rule is not None:
        metrics.decisions(kind, result.rule, status).inc()
    if force:
        metrics.forced(kind).inc()
