"""The orchestration context (everything rules see and change for one proposed state)
and the explicit result a state change ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.domain.task_runs import TaskRun

if TYPE_CHECKING:
    from flowrun.server.config import Settings
    from flowrun.server.repositories import Repositories


class SetStateStatus(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ABORT = "ABORT"
    WAIT = "WAIT"


class RunStore(Protocol):
    """Where a run's state changes are written: the flow-run or the task-run repository."""

    async def save_transition(self, run: Any, state: State, policy: dict[str, Any], now: datetime) -> None: ...

    async def save_policy(self, run_id: str, policy: dict[str, Any], now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """How one proposal ended, read once every rule and transform has exited: what the
    client is told. `state` is the run's current state afterwards (the new one when it
    was written, else the one it kept; None for a run that still has none). `rule` names
    the rule that decided a REJECT, WAIT or ABORT (the last one to change the proposal);
    None for an ACCEPT. Traces and metrics report it; the client is not told."""

    status: SetStateStatus
    state: State | None
    reason: str | None = None
    delay_seconds: int | None = None
    rule: str | None = None


#: The kind of run a context, rule or transform works on. Flow-run rules are written
#: against OrchestrationContext[FlowRun] (FlowRunContext), task-run ones against
#: TaskRunContext; steps for both are generic in RunT and may use only what both share.
RunT = TypeVar("RunT", FlowRun, TaskRun)


@dataclass(eq=False)
class OrchestrationContext(Generic[RunT]):
    """One proposal for one locked run (a flow run or a task run). Rules change the
    proposal only through the mutators on OrchestrationRule; bookkeeping transforms
    change `run` directly."""

    run: RunT
    initial_state: State | None
    proposed_state: State | None
    repos: Repositories
    store: RunStore
    now: datetime
    settings: Settings
    validated_state: State | None = None
    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay_seconds: int | None = None
    rule: str | None = None  # the class name of the rule that set status (see TransitionResult)
    orchestration_error: BaseException | None = None
    stored: bool = False  # validate() wrote a new state
    _saved_policy: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._saved_policy = self.run.empirical_policy.to_json()

    @property
    def initial_type(self) -> StateType | None:
        return self.initial_state.type if self.initial_state else None

    @property
    def proposed_type(self) -> StateType | None:
        return self.proposed_state.type if self.proposed_state else None

    async def validate(self) -> None:
        """Stores the (possibly replaced) proposal as the run's new current state together
        with the run's bookkeeping, or keeps the current state when the proposal was
        nullified (REJECT to current, WAIT, ABORT)."""
        proposed = self.proposed_state
        if proposed is None:
            self.validated_state = self.initial_state
            return
        self.run.state_id = proposed.id
        self.run.state = proposed
        self.validated_state = proposed
        self._saved_policy = self.run.empirical_policy.to_json()
        await self.store.save_transition(self.run, proposed, self._saved_policy, self.now)
        self.stored = True

    async def finish(self) -> TransitionResult:
        """After every rule exited: writes policy changes made after validation (pause
        keys, the resuming flag, a restored policy; most transitions make none) and
        returns the outcome."""
        policy = self.run.empirical_policy.to_json()
        if policy != self._saved_policy:
            await self.store.save_policy(self.run.id, policy, self.now)
            self._saved_policy = policy
        return TransitionResult(
            status=self.status,
            state=self.validated_state,
            reason=self.reason,
            delay_seconds=self.delay_seconds,
            rule=self.rule,
        )


FlowRunContext = OrchestrationContext[FlowRun]
TaskRunContext = OrchestrationContext[TaskRun]
