"""The rules and bookkeeping of the server's liveness sweeps (server/liveness/).

SetHeartbeatDeadline keeps a run's heartbeat deadline with its state: entering RUNNING
starts it (now + the run's heartbeat timeout), leaving RUNNING clears it, so the zombie
sweep only ever finds RUNNING runs. EnforceDeploymentConcurrencyOnLate is the
reference's rule of its late-runs policy (MarkLateRunsPolicy): a late run of a full
CANCEL_NEW deployment is cancelled instead of marked late."""

from __future__ import annotations

from datetime import timedelta

from flowrun.server.domain.deployments import CollisionStrategy
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.rules import GlobalTransform, OrchestrationRule
from flowrun.server.orchestration.slot_rules import LIMIT_REACHED, cancelled

LATE = "Late"
FULL_CANCEL_NEW = "Deployment concurrency limit is full and uses the CANCEL_NEW strategy."


class SetHeartbeatDeadline(GlobalTransform[FlowRun]):
    """RUNNING with a heartbeat timeout: the deadline is now + the timeout (every entry
    into RUNNING starts a fresh one). Any other state: no deadline."""

    async def before_transition(self, context: FlowRunContext) -> None:
        proposed, run = context.proposed_state, context.run
        if proposed is None:
            return
        if proposed.type == StateType.RUNNING and run.heartbeat_timeout_seconds:
            run.heartbeat_deadline = context.now + timedelta(seconds=run.heartbeat_timeout_seconds)
        else:
            run.heartbeat_deadline = None


class EnforceDeploymentConcurrencyOnLate(OrchestrationRule[FlowRun]):
    """A run that is late while its deployment's CANCEL_NEW limit is full will not get a
    slot when it is picked up either: it is cancelled rather than marked late."""

    FROM_STATES = frozenset({StateType.SCHEDULED})
    TO_STATES = frozenset({StateType.SCHEDULED})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        run = context.run
        if proposed is None or proposed.name != LATE or not run.deployment_id:
            return
        leases = context.repos.leases
        policy = await leases.slot_policy(run.deployment_id, lock=False)
        if policy is None or policy.limit is None or policy.collision_strategy != CollisionStrategy.CANCEL_NEW:
            return
        if await leases.active_slots(run.deployment_id, context.now) >= policy.limit:
            self.reject_transition(cancelled(context, LIMIT_REACHED), FULL_CANCEL_NEW)
