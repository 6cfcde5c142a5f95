"""The orchestration context: everything rules see and change for one proposed state."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from server.domain.flow_runs import FlowRun
from server.domain.states import State, StateType

if TYPE_CHECKING:
    from server.repositories import Repositories


@dataclass(frozen=True, slots=True)
class SlotSettings:
    """Server settings the deployment concurrency rules need."""

    lease_seconds: int = 300  # a lease's lifetime when the deployment sets no grace period
    slot_wait_seconds: int = 30  # how long AwaitingConcurrencySlot waits before trying again


class SetStateStatus(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ABORT = "ABORT"
    WAIT = "WAIT"


@dataclass(eq=False)
class OrchestrationContext:
    """One proposal for one locked run. Rules change the proposal only through the
    mutators on OrchestrationRule; bookkeeping transforms change `run` directly."""

    run: FlowRun
    initial_state: State | None
    proposed_state: State | None
    repos: Repositories
    now: datetime
    force: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    slots: SlotSettings = SlotSettings()
    validated_state: State | None = None
    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay_seconds: int | None = None
    orchestration_error: BaseException | None = None
    _saved_policy: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._saved_policy = self.run.empirical_policy.to_json()

    @property
    def initial_type(self) -> StateType | None:
        return self.initial_state.type if self.initial_state else None

    @property
    def proposed_type(self) -> StateType | None:
        return self.proposed_state.type if self.proposed_state else None

    @property
    def state_written(self) -> bool:
        """True once validation stored a new state."""
        return self.validated_state is not None and self.validated_state is not self.initial_state

    async def validate(self) -> None:
        """Stores the (possibly replaced) proposal as the run's new current state together
        with the run's bookkeeping (one statement on PostgreSQL), or keeps the current
        state when the proposal was nullified (REJECT to current, WAIT, ABORT)."""
        proposed = self.proposed_state
        if proposed is None:
            self.validated_state = self.initial_state
            return
        self.run.state_id = proposed.id
        self.run.state = proposed
        self.validated_state = proposed
        self._saved_policy = self.run.empirical_policy.to_json()
        await self.repos.flow_runs.save_transition(self.run, proposed, self._saved_policy, self.now)

    async def finish(self) -> None:
        """After every rule exited: writes policy changes made after validation (pause
        keys, the resuming flag, a restored policy). Most transitions make none."""
        policy = self.run.empirical_policy.to_json()
        if policy != self._saved_policy:
            await self.repos.flow_runs.save_policy(self.run.id, policy, self.now)


_current: ContextVar[OrchestrationContext | None] = ContextVar("flowrun_orchestration", default=None)


def current_context() -> OrchestrationContext:
    """The context the orchestration interceptor prepared for this call."""
    context = _current.get()
    if context is None:
        raise RuntimeError("SetFlowRunState was called without the orchestration interceptor")
    return context


def bind_context(context: OrchestrationContext):
    return _current.set(context)


def unbind_context(token) -> None:
    _current.reset(token)
