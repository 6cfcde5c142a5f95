"""Rules that hold even when a proposal is forced (Prefect's MinimalFlowPolicy)."""

from __future__ import annotations

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType, has_persisted_result
from flowrun.server.orchestration.context import FlowRunContext, OrchestrationContext, RunT
from flowrun.server.orchestration.rules import TERMINAL, OrchestrationRule

DATA_LOSS_REASON = "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not."


class PreventResultDataLoss(OrchestrationRule[RunT]):
    """A COMPLETED state with stored result data is never replaced by a COMPLETED state
    without: the result would be lost."""

    FROM_STATES = TERMINAL
    TO_STATES = TERMINAL

    async def before_transition(
        self, initial: State | None, proposed: State | None, context: OrchestrationContext[RunT]
    ) -> None:
        if initial is None or proposed is None:
            return
        if (
            initial.type == StateType.COMPLETED
            and has_persisted_result(initial.data)
            and proposed.type == StateType.COMPLETED
            and not has_persisted_result(proposed.data)
        ):
            self.reject_transition(None, DATA_LOSS_REASON)


class BypassCancellingFlowRunsWithNoInfra(OrchestrationRule[FlowRun]):
    """Nothing would ever finish the cancellation of a run that has no infrastructure
    (scheduled without a pid, resuming, or suspended): cancel it right away."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PAUSED})
    TO_STATES = frozenset({StateType.CANCELLING})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        if (initial.type == StateType.SCHEDULED and not context.run.infrastructure_pid) or initial.name == "Resuming":
            self.reject_transition(
                cancelled_from(proposed, context), "Scheduled flow run has no infrastructure to terminate."
            )
        elif initial.type == StateType.PAUSED and initial.state_details.pause_reschedule:
            self.reject_transition(
                cancelled_from(proposed, context), "Suspended flow run has no infrastructure to terminate."
            )


def cancelled_from(proposed: State, context: FlowRunContext) -> State:
    """A new, plain Cancelled state stamped now."""
    return State(type=StateType.CANCELLED, name=StateType.CANCELLED.default_name, timestamp=context.now)
