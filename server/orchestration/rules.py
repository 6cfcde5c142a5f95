"""Rule base classes and their lifecycle (enter: before-transition; exit: after-transition,
or cleanup when a later step changed the proposal).

An OrchestrationRule is declared for FROM_STATES -> TO_STATES and is bound to the
intended transition (from_type, to_type). It is *invalid* when the transition is not one
it handles, or when an earlier rule already changed the proposed type; invalid rules do
nothing. A valid rule whose transition was changed after it ran has *fizzled* and runs
its cleanup instead of its after-transition step. A rule that itself rejects, delays or
aborts takes the new target as its own, so it does not fizzle; if that target lies
outside its TO_STATES it becomes invalid and skips its after-transition step.

A GlobalTransform (bookkeeping) always runs; its hooks check themselves whether the
proposal was nullified (context.proposed_state is None)."""

from __future__ import annotations

from typing import Any, ClassVar, Generic

from flowrun.server.domain.states import TERMINAL_STATES, State, StateType
from flowrun.server.orchestration.context import OrchestrationContext, RunT, SetStateStatus

StateSet = frozenset[StateType | None]

ALL_ORCHESTRATION_STATES: StateSet = frozenset({*StateType, None})
TERMINAL: StateSet = frozenset(TERMINAL_STATES)


class OrchestrationRule(Generic[RunT]):
    FROM_STATES: ClassVar[StateSet] = ALL_ORCHESTRATION_STATES
    TO_STATES: ClassVar[StateSet] = ALL_ORCHESTRATION_STATES

    def __init__(
        self, context: OrchestrationContext[RunT], from_type: StateType | None, to_type: StateType | None
    ) -> None:
        self.context: OrchestrationContext[RunT] = context
        self.from_type = from_type
        self.to_type = to_type
        self._invalid: bool | None = None

    @classmethod
    def applies(cls, from_type: StateType | None, to_type: StateType | None) -> bool:
        return from_type in cls.FROM_STATES and to_type in cls.TO_STATES

    # Hooks: override what the rule needs.
    async def before_transition(
        self, initial: State | None, proposed: State | None, context: OrchestrationContext[RunT]
    ) -> None:
        pass

    async def after_transition(
        self, initial: State | None, validated: State | None, context: OrchestrationContext[RunT]
    ) -> None:
        pass

    async def cleanup(
        self, initial: State | None, validated: State | None, context: OrchestrationContext[RunT]
    ) -> None:
        pass

    # Lifecycle.
    async def enter(self) -> None:
        if self.invalid():
            return
        context = self.context
        try:
            await self.before_transition(context.initial_state, context.proposed_state, context)
        except Exception as exc:  # the reference aborts and re-raises after unwinding
            context.proposed_state = None
            context.status = SetStateStatus.ABORT
            context.reason = f"Aborting orchestration due to error in {type(self).__name__}: !{exc!r}"
            context.orchestration_error = exc

    async def exit(self) -> None:
        context = self.context
        if self.invalid():
            return
        if self.fizzled():
            await self.cleanup(context.initial_state, context.validated_state, context)
        else:
            await self.after_transition(context.initial_state, context.validated_state, context)

    def invalid(self) -> bool:
        if self.from_type not in self.FROM_STATES or self.to_type not in self.TO_STATES:
            self._invalid = True
        if self._invalid is None:
            self._invalid = self._transition_changed()
        return self._invalid

    def fizzled(self) -> bool:
        return False if self._invalid else self._transition_changed()

    def _transition_changed(self) -> bool:
        context = self.context
        return (self.from_type, self.to_type) != (context.initial_type, context.proposed_type)

    # Mutators: the only ways a rule changes the proposal.
    def _ensure_not_validated(self) -> None:
        if self.context.validated_state is not None:
            raise RuntimeError("the proposal was already validated")

    def reject_transition(self, state: State | None, reason: str) -> None:
        """Replace the proposal with `state`, or with nothing (the current state stays)."""
        self._ensure_not_validated()
        context = self.context
        if state is None:
            if context.initial_state is None:
                raise RuntimeError("cannot reject to the current state of a run that has none")
            context.proposed_state = None
            self.to_type = None
        else:
            context.proposed_state = state
            self.to_type = state.type
        context.status = SetStateStatus.REJECT
        context.reason = reason
        context.rule = type(self).__name__

    def delay_transition(self, delay_seconds: int, reason: str) -> None:
        self._ensure_not_validated()
        context = self.context
        context.proposed_state = None
        self.to_type = None
        context.status = SetStateStatus.WAIT
        context.reason = reason
        context.rule = type(self).__name__
        context.delay_seconds = delay_seconds

    def abort_transition(self, reason: str) -> None:
        self._ensure_not_validated()
        context = self.context
        context.proposed_state = None
        self.to_type = None
        context.status = SetStateStatus.ABORT
        context.reason = reason
        context.rule = type(self).__name__


class GlobalTransform(Generic[RunT]):
    """A bookkeeping step that applies to every transition."""

    def __init__(self, context: OrchestrationContext[RunT]) -> None:
        self.context: OrchestrationContext[RunT] = context

    @property
    def nullified(self) -> bool:
        return self.context.proposed_state is None

    async def before_transition(self, context: OrchestrationContext[RunT]) -> None:
        pass

    async def after_transition(self, context: OrchestrationContext[RunT]) -> None:
        pass

    async def enter(self) -> None:
        await self.before_transition(self.context)

    async def exit(self) -> None:
        if self.context.orchestration_error is None:
            await self.after_transition(self.context)


#: An ordered list of rules and transforms; the order is the priority.
Policy = tuple[type[OrchestrationRule[Any]] | type[GlobalTransform[Any]], ...]
