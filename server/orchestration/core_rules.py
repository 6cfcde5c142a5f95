"""The core flow-run rules that guard transitions and scheduling (Prefect's
CoreFlowPolicy). Pausing and resuming live in pause_rules, retries in retry_rules.

flowrun has no api-version or client-version: every rule behaves as the reference does
for a modern client (both None), and the reference's legacy branches are left out."""

from __future__ import annotations

import math

from flowrun.server.domain.flow_runs import FlowRun, FlowRunPolicy
from flowrun.server.domain.states import State, StateType, has_persisted_result
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.minimal_rules import DATA_LOSS_REASON
from flowrun.server.orchestration.rules import ALL_ORCHESTRATION_STATES, TERMINAL, OrchestrationRule

DUPLICATE_TRANSITION_REASON = "This run has already made this state transition."


def start_new_attempt(policy: FlowRunPolicy, retry_type: str | None) -> None:
    """Forget the pause bookkeeping of the attempt that ended, so that pauses fire again
    in the next one, and record which kind of retry the next attempt is."""
    policy.resuming = False
    policy.pause_keys = []
    policy.retry_type = retry_type


class PreventDuplicateTransitions(OrchestrationRule[FlowRun]):
    """A client that lost the answer to a proposal resends it with the same
    state_details.transition_id; answering with the current state instead of applying it
    twice makes that retry safe. Only the immediately current state is compared."""

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        initial_id = initial.state_details.transition_id
        if initial_id is not None and initial_id == proposed.state_details.transition_id:
            self.reject_transition(None, DUPLICATE_TRANSITION_REASON)


class HandleFlowTerminalStateTransitions(OrchestrationRule[FlowRun]):
    """A finished run may be re-run, but not marked crashed, paused or cancelling, not
    lose a persisted result, and not be rescheduled without a deployment to run it. A
    re-run is a new attempt: its pause bookkeeping is reset. If a later rule changes the
    proposal the reset is undone."""

    FROM_STATES = TERMINAL
    TO_STATES = ALL_ORCHESTRATION_STATES

    saved_policy: FlowRunPolicy | None = None

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        run = context.run
        self.saved_policy = FlowRunPolicy.from_json(run.empirical_policy.to_json())

        if proposed.type in (StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED):
            self.abort_transition(f"Run is already in terminal state {initial.type.value}.")
            return
        completed_with_result = initial.type == StateType.COMPLETED and has_persisted_result(initial.data)
        if completed_with_result and not proposed.is_terminal:
            self.reject_transition(None, "Run is already COMPLETED.")
            return
        if completed_with_result and proposed.type == StateType.COMPLETED and not has_persisted_result(proposed.data):
            self.reject_transition(None, DATA_LOSS_REASON)
            return
        if proposed.type == StateType.SCHEDULED and not run.deployment_id:
            self.abort_transition("Cannot reschedule a run without an associated deployment.")
            return
        if not proposed.is_terminal:
            retry_type = "reschedule" if proposed.type == StateType.SCHEDULED else None
            start_new_attempt(run.empirical_policy, retry_type)

    async def cleanup(self, initial: State | None, validated: State | None, context: FlowRunContext) -> None:
        if self.saved_policy is not None:
            context.run.empirical_policy = self.saved_policy


class EnforceCancellingToCancelledTransition(OrchestrationRule[FlowRun]):
    """Cancellation was requested: the only way out of CANCELLING is CANCELLED, so a
    late report from the run (RUNNING, COMPLETED, ...) cannot undo the request."""

    FROM_STATES = frozenset({StateType.CANCELLING})
    TO_STATES = ALL_ORCHESTRATION_STATES - {StateType.CANCELLED}

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        self.reject_transition(None, "Cannot transition flows that are cancelling to a state other than Cancelled.")


class PreventPendingTransitions(OrchestrationRule[FlowRun]):
    """PENDING means "being submitted". Two workers racing to submit the same run must
    not both succeed, so a run that is already pending, running or cancelling (or was
    cancelled) cannot become PENDING again. Named PENDING sub-states (Submitting,
    InfrastructurePending) may follow each other, but never "Pending" itself; they keep
    the scheduled time and concurrency lease of the state they follow."""

    FROM_STATES = frozenset({StateType.PENDING, StateType.CANCELLING, StateType.RUNNING, StateType.CANCELLED})
    TO_STATES = frozenset({StateType.PENDING})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        if initial.type == StateType.PENDING and initial.name != proposed.name and proposed.name != "Pending":
            proposed.state_details.scheduled_time = initial.state_details.scheduled_time
            proposed.state_details.deployment_concurrency_lease_id = (
                initial.state_details.deployment_concurrency_lease_id
            )
            return
        self.abort_transition(f"This run is in a {initial.type.value} state and cannot transition to a PENDING state.")


# Deployment concurrency slots (issue "Deployment concurrency") come here in the policy:
# ValidateDeploymentConcurrencyAtRunning, SecureFlowConcurrencySlots and
# RemoveDeploymentConcurrencyLeaseForOldClientVersions.


class EnsureOnlyScheduledFlowsMarkedLate(OrchestrationRule[FlowRun]):
    """ "Late" is a SCHEDULED run that missed its time. Only a run that is still waiting
    for its time can be late, and only once."""

    TO_STATES = frozenset({StateType.SCHEDULED})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None or proposed.name != "Late":
            return
        if initial.type != StateType.SCHEDULED:
            self.reject_transition(None, "Only scheduled flows can be marked late.")
        elif initial.name == "Late":
            self.reject_transition(None, "This flow run is already marked late.")


class CopyScheduledTime(OrchestrationRule[FlowRun]):
    """A submitted run remembers when it was due, so that WaitForScheduledTime still
    holds it back on PENDING -> RUNNING. A scheduled time proposed with the PENDING
    state wins."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.PENDING})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        if not proposed.state_details.scheduled_time:
            proposed.state_details.scheduled_time = initial.state_details.scheduled_time


class WaitForScheduledTime(OrchestrationRule[FlowRun]):
    """A run starts no earlier than its scheduled time by the server's clock: an early
    RUNNING proposal is answered WAIT with the remaining whole seconds and nothing is
    written."""

    FROM_STATES = frozenset({StateType.SCHEDULED, StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        scheduled_time = initial.state_details.scheduled_time
        if not scheduled_time:
            return
        delay = scheduled_time - context.now
        # The reference's rounding, kept exactly: whole seconds rounded down, then the
        # microsecond part of the normalized timedelta rounded to 0 or 1.
        delay_seconds = math.floor(delay.total_seconds()) + round(delay.microseconds / 1e6)
        if delay_seconds > 0:
            self.delay_transition(delay_seconds, "Scheduled time is in the future")
