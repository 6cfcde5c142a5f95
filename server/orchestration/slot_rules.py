"""Deployment concurrency slots (Prefect's SecureFlowConcurrencySlots,
ValidateDeploymentConcurrencyAtRunning and ReleaseFlowConcurrencySlots), on the lease
rows of server/repositories/concurrency_leases.py.

flowrun behaves as the reference does for current clients (3.4.11 and later): a slot is
taken on entering PENDING, its lease is validated and renewed on PENDING -> RUNNING, and
it is freed on leaving the active states. Unlike the reference, a run frees a slot only if
it holds one (the release deletes the run's own lease), so counts never drift."""

from __future__ import annotations

from datetime import timedelta

from flowrun.server.domain.deployments import CollisionStrategy
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.orchestration.context import FlowRunContext, SetStateStatus
from flowrun.server.orchestration.rules import ALL_ORCHESTRATION_STATES, GlobalTransform, OrchestrationRule

ACTIVE_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})
LIMIT_REACHED = "Deployment concurrency limit reached."


class SecureFlowConcurrencySlots(OrchestrationRule[FlowRun]):
    """A run of a limited deployment takes a slot before it may become PENDING. When none
    is free it waits (ENQUEUE: back to Scheduled "AwaitingConcurrencySlot") or is
    cancelled (CANCEL_NEW). A run that still holds a live lease (an in-process retry)
    keeps it instead of taking a second slot."""

    FROM_STATES = ALL_ORCHESTRATION_STATES - ACTIVE_STATES
    TO_STATES = frozenset({StateType.PENDING})

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._acquired: str | None = None

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        run = context.run
        if proposed is None or not run.deployment_id:
            return
        leases = context.repos.leases
        policy = await leases.slot_policy(run.deployment_id, lock=True)
        if policy is None:
            self.abort_transition("Deployment not found.")
            return
        if policy.limit is None:
            return
        if policy.limit == 0:
            self.abort_transition("The deployment concurrency limit is 0. The flow will deadlock if submitted again.")
            return
        ttl = policy.lease_seconds(context.settings.deployment_lease_seconds)
        held = initial.state_details.deployment_concurrency_lease_id if initial else None
        if held and await leases.renew(held, run.id, context.now, ttl):
            proposed.state_details.deployment_concurrency_lease_id = held
            return
        lease_id = await leases.try_acquire(run.deployment_id, policy.limit, run.id, context.now, ttl)
        if lease_id is not None:
            self._acquired = lease_id
            proposed.state_details.deployment_concurrency_lease_id = lease_id
        elif policy.collision_strategy == CollisionStrategy.CANCEL_NEW:
            self.reject_transition(cancelled(context, LIMIT_REACHED), LIMIT_REACHED)
        else:
            waiting = State(
                type=StateType.SCHEDULED,
                name="AwaitingConcurrencySlot",
                timestamp=context.now,
                state_details=StateDetails(
                    scheduled_time=context.now + timedelta(seconds=context.settings.deployment_slot_wait_seconds)
                ),
            )
            self.reject_transition(waiting, LIMIT_REACHED)

    async def cleanup(self, initial: State | None, validated: State | None, context: FlowRunContext) -> None:
        """A later rule replaced the PENDING proposal: give the slot back."""
        if self._acquired is not None:
            await context.repos.leases.release(self._acquired, context.run.id)
            self._acquired = None


class ValidateDeploymentConcurrencyAtRunning(OrchestrationRule[FlowRun]):
    """PENDING -> RUNNING renews the run's lease. If the lease expired meanwhile (the
    slot was freed), it takes a slot again if one is free, else the run is cancelled."""

    FROM_STATES = frozenset({StateType.PENDING})
    TO_STATES = frozenset({StateType.RUNNING})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        lease_id = initial.state_details.deployment_concurrency_lease_id
        proposed.state_details.deployment_concurrency_lease_id = lease_id
        run = context.run
        if not lease_id or not run.deployment_id:
            return
        leases = context.repos.leases
        policy = await leases.slot_policy(run.deployment_id, lock=False)
        if policy is None or policy.limit is None:
            return
        ttl = policy.lease_seconds(context.settings.deployment_lease_seconds)
        if await leases.renew(lease_id, run.id, context.now, ttl):
            return
        await leases.release(lease_id, run.id)  # expired but not yet reaped
        policy = await leases.slot_policy(run.deployment_id, lock=True)
        new_lease = None
        if policy is not None and policy.limit:
            new_lease = await leases.try_acquire(run.deployment_id, policy.limit, run.id, context.now, ttl)
        if new_lease is not None:
            proposed.state_details.deployment_concurrency_lease_id = new_lease
            return
        message = "Deployment concurrency slot lost during provisioning - no slots available to continue execution"
        self.reject_transition(cancelled(context, message), "Deployment concurrency limit reached after lease expiry.")


class ReleaseFlowConcurrencySlots(GlobalTransform[FlowRun]):
    """Leaving the active states frees the run's slot, except for an in-process retry
    (RUNNING -> FAILED rejected to AwaitingRetry), which keeps it for the next attempt."""

    async def after_transition(self, context: FlowRunContext) -> None:
        proposed = context.proposed_state
        if proposed is None or not context.run.deployment_id:
            return
        if context.initial_type not in ACTIVE_STATES or proposed.type in ACTIVE_STATES:
            return
        in_process_retry = (
            proposed.type == StateType.SCHEDULED
            and proposed.name == "AwaitingRetry"
            and context.status == SetStateStatus.REJECT
        )
        if not in_process_retry:
            await context.repos.leases.release_all(context.run.id)


def cancelled(context: FlowRunContext, message: str) -> State:
    return State(type=StateType.CANCELLED, name="Cancelled", timestamp=context.now, message=message)
