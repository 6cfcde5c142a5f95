"""Policies: ordered lists of rules and transforms. The order is the priority: earlier
rules see the original proposal first, and bookkeeping runs last.

Adding a rule means adding it to a list here; the interceptor never changes."""

from __future__ import annotations

from server.orchestration import bookkeeping as book
from server.orchestration.lease_rules import PreserveDeploymentConcurrencyLeaseId
from server.orchestration.minimal_rules import BypassCancellingFlowRunsWithNoInfra, PreventResultDataLoss
from server.orchestration.rules import GlobalTransform, OrchestrationRule

Policy = tuple[type[OrchestrationRule] | type[GlobalTransform], ...]

#: Used for unforced proposals. The core rules of the reference are added by
#: server.orchestration.core_rules (issue "Orchestration").
CORE_POLICY: Policy = (PreserveDeploymentConcurrencyLeaseId,)

#: Used when `force` is set and for the initial state of a new run.
MINIMAL_POLICY: Policy = (
    PreserveDeploymentConcurrencyLeaseId,
    PreventResultDataLoss,
    BypassCancellingFlowRunsWithNoInfra,
)

#: Applied after either policy, always.
GLOBAL_POLICY: Policy = (
    book.EnsureFlowRunStateTimestampIsUnique,
    book.SetRunStateType,
    book.SetRunStateName,
    book.SetRunStateTimestamp,
    book.SetStartTime,
    book.SetEndTime,
    book.IncrementRunTime,
    book.SetExpectedStartTime,
    book.SetNextScheduledStartTime,
    book.UpdateStateDetails,
    book.UpdateSubflowStateDetails,
    book.IncrementFlowRunCount,
    book.RemoveResumingIndicator,
)


def policy_for(force: bool) -> Policy:
    return MINIMAL_POLICY if force else CORE_POLICY
