"""Flow-run retries (part of Prefect's CoreFlowPolicy)."""

from __future__ import annotations

import math
from datetime import timedelta

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.orchestration.context import FlowRunContext
from flowrun.server.orchestration.core_rules import start_new_attempt
from flowrun.server.orchestration.rules import OrchestrationRule

# The longest retry delay a run's policy may hold (100 Julian years, in seconds). Requests
# beyond it are INVALID_ARGUMENT (services/from_proto.py), so that `now + delay` and the
# delay's Duration in a response can never overflow: a delay of 8,000 years (within the
# 10,000 any Duration may hold) made every failure of its run INTERNAL.
MAX_RETRY_DELAY_SECONDS = 100 * 31_557_600


def bounded_retry_delay(seconds: float | None) -> float:
    """A stored retry delay as the server acts on it: 0 to MAX_RETRY_DELAY_SECONDS. Rows
    written before the limit (or by hand) may hold anything JSON can; those are clamped
    here rather than crash every failure of their run."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return 0.0
    return float(min(max(seconds, 0), MAX_RETRY_DELAY_SECONDS))


class RetryFailedFlows(OrchestrationRule[FlowRun]):
    """A run with retries left does not fail: the failure is replaced by an
    AwaitingRetry state due after the fixed retry_delay, keeping the failure's message
    and data, and the run's process retries in place. A run with `retries = N` is
    attempted N + 1 times (run_count counts the attempts). Once the retries are used up,
    the failure is accepted and the retry type cleared, so that a later manual retry is
    not mistaken for an in-process one."""

    FROM_STATES = frozenset({StateType.RUNNING})
    TO_STATES = frozenset({StateType.FAILED})

    async def before_transition(self, initial: State | None, proposed: State | None, context: FlowRunContext) -> None:
        if initial is None or proposed is None:
            return
        run = context.run
        policy = run.empirical_policy
        if policy.retries is None or run.run_count > policy.retries:
            policy.retry_type = None
            return
        scheduled_time = context.now + timedelta(seconds=bounded_retry_delay(policy.retry_delay))
        start_new_attempt(policy, "in_process")
        retry = State(
            type=StateType.SCHEDULED,
            name="AwaitingRetry",
            timestamp=context.now,
            message=proposed.message,
            data=proposed.data,
            state_details=StateDetails(
                scheduled_time=scheduled_time,
                # the retry keeps the run's deployment concurrency slot
                deployment_concurrency_lease_id=initial.state_details.deployment_concurrency_lease_id,
            ),
        )
        self.reject_transition(retry, "Retrying")
