"""Rules about the deployment concurrency lease id carried on states."""

from __future__ import annotations

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.rules import GlobalTransform


class PreserveDeploymentConcurrencyLeaseId(GlobalTransform[FlowRun]):
    """Carries the current state's lease id onto a proposal that has none, so the lease
    follows the run through every later state until something replaces it."""

    async def before_transition(self, context: FlowRunContext) -> None:
        initial, proposed = context.initial_state, context.proposed_state
        if initial is None or proposed is None:
            return
        lease_id = initial.state_details.deployment_concurrency_lease_id
        if lease_id and not proposed.state_details.deployment_concurrency_lease_id:
            proposed.state_details.deployment_concurrency_lease_id = lease_id
