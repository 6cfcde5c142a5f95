"""Pausing and resuming flow runs (part of Prefect's CoreFlowPolicy).

A blocking pause ("pause") keeps the run's process waiting; a suspension ("suspend",
state_details.pause_reschedule) lets the process exit and reschedules the run through
its deployment on resume. A pause site is identified by its pause_key, which fires once
per attempt (empirical_policy.pause_keys)."""

from __future__ import annotations

import uuid

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.core_rules import start_new_attempt
from flowrun.server.orchestration.rules import ALL_ORCHESTRATION_STATES, OrchestrationRule

RESUMABLE_TO = frozenset({StateType.RUNNING, StateType.SCHEDULED, StateType.CANCELLING})


def pause_verb(proposed: State) -> str:
    """The reference words its reasons by the proposed name only."""
    return "suspend" if proposed.name == "Suspended" else "pause"


class HandlePausingFlows(OrchestrationRule[FlowRun]):
    """Only a running run can pause; a pause site fires once per attempt; a suspension
    needs a deployment to reschedule the run and cannot apply to a subflow (its parent's
    process waits for it)."""

    TO_STATES = frozenset({StateType.PAUSED})

    key: str | None = None

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if proposed is None:
            return
        verb = pause_verb(proposed)
        if initial is None:
            self.abort_transition(f"Cannot {verb} flows with no state.")
            return
        if initial.type != StateType.RUNNING:
            self.reject_transition(None, f"Cannot {verb} flows that are not currently running.")
            return
        self.key = proposed.state_details.pause_key or str(uuid.uuid4())
        if self.key in context.run.empirical_policy.pause_keys:
            self.reject_transition(None, f"This {verb} has already fired.")
            return
        if proposed.state_details.pause_reschedule:
            if context.run.parent_task_run_id:
                self.abort_transition(f"Cannot {verb} subflows.")
                return
            if context.run.deployment_id is None:
                self.abort_transition(f"Cannot {verb} flows without a deployment.")
                return

    async def after_transition(self, initial: State | None, validated: State | None, context: FlowRunContext) -> None:
        pause_keys = context.run.empirical_policy.pause_keys
        if self.key is not None and self.key not in pause_keys:
            pause_keys.append(self.key)
        # The reference also deletes the flow_run_input rows named by the validated
        # state's run_input_keyset (input stored by an earlier attempt must not be
        # reused). flowrun has no flow_run_input table yet, so there is nothing to delete.


class HandleResumingPausedFlows(OrchestrationRule[FlowRun]):
    """A paused run leaves only to run, be rescheduled, be cancelled or finish; a
    suspended one only if a deployment can reschedule it; and not after its pause timed
    out (then it fails), except to be cancelled. Afterwards the run is marked as
    resuming, so the RUNNING that follows a suspension is not counted as a new run;
    leaving a blocking pause for SCHEDULED instead starts a new attempt.

    The after-step also runs when this rule itself rejected the proposal (its TO_STATES
    is everything), as in the reference: a rejected PAUSED -> PENDING still marks the run
    as resuming."""

    FROM_STATES = frozenset({StateType.PAUSED})
    TO_STATES = ALL_ORCHESTRATION_STATES

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        if proposed.type not in RESUMABLE_TO and not proposed.is_terminal:
            # The reference renders the enums by their repr-like str(): "StateType.PENDING".
            self.reject_transition(
                None,
                f"This run cannot transition to the StateType.{proposed.type.value} state"
                f" from the StateType.{initial.type.value} state.",
            )
            return
        display_name = (proposed.name or proposed.type.value).lower()
        if initial.state_details.pause_reschedule and not context.run.deployment_id:
            self.reject_transition(None, f"Cannot reschedule a {display_name} flow run without a deployment.")
            return
        if proposed.type == StateType.CANCELLING:
            return  # cancellation must reach the run even after its pause timed out
        pause_timeout = initial.state_details.pause_timeout
        if pause_timeout and pause_timeout < context.now:
            failed = State(
                type=StateType.FAILED,
                name=StateType.FAILED.default_name,
                timestamp=context.now,
                message=f"The flow was {display_name} and never resumed.",
            )
            self.reject_transition(
                failed, f"The flow run {pause_verb(proposed)} has timed out and can no longer resume."
            )

    async def after_transition(self, initial: State | None, validated: State | None, context: FlowRunContext) -> None:
        policy = context.run.empirical_policy
        if (
            initial is not None
            and not initial.state_details.pause_reschedule
            and validated is not None
            and validated.type == StateType.SCHEDULED
        ):
            start_new_attempt(policy, "reschedule")
        else:
            policy.resuming = True
