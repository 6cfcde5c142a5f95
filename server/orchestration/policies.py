"""Policies: ordered lists of rules and transforms. The order is the priority: earlier
rules see the original proposal first, and bookkeeping runs last.

Adding a rule means adding it to a list here; the interceptor never changes."""

from __future__ import annotations

from server.orchestration import bookkeeping as book
from server.orchestration.core_rules import (
    CopyScheduledTime,
    EnforceCancellingToCancelledTransition,
    EnsureOnlyScheduledFlowsMarkedLate,
    HandleFlowTerminalStateTransitions,
    PreventDuplicateTransitions,
    PreventPendingTransitions,
    WaitForScheduledTime,
)
from server.orchestration.lease_rules import PreserveDeploymentConcurrencyLeaseId
from server.orchestration.minimal_rules import BypassCancellingFlowRunsWithNoInfra, PreventResultDataLoss
from server.orchestration.pause_rules import HandlePausingFlows, HandleResumingPausedFlows
from server.orchestration.retry_rules import RetryFailedFlows
from server.orchestration.rules import GlobalTransform, OrchestrationRule
from server.orchestration.slot_rules import (
    ReleaseFlowConcurrencySlots,
    SecureFlowConcurrencySlots,
    ValidateDeploymentConcurrencyAtRunning,
)
from server.orchestration.subflow_rules import UpdateSubflowParentTask

Policy = tuple[type[OrchestrationRule] | type[GlobalTransform], ...]

#: Used for unforced proposals: Prefect's CoreFlowPolicy, in its order.
CORE_POLICY: Policy = (
    PreserveDeploymentConcurrencyLeaseId,
    PreventDuplicateTransitions,
    HandleFlowTerminalStateTransitions,
    EnforceCancellingToCancelledTransition,
    BypassCancellingFlowRunsWithNoInfra,
    PreventPendingTransitions,
    ValidateDeploymentConcurrencyAtRunning,
    SecureFlowConcurrencySlots,
    # RemoveDeploymentConcurrencyLeaseForOldClientVersions: only for clients older than
    # 3.4.11; flowrun behaves as the reference does for current clients.
    EnsureOnlyScheduledFlowsMarkedLate,
    HandlePausingFlows,
    HandleResumingPausedFlows,
    CopyScheduledTime,
    WaitForScheduledTime,
    RetryFailedFlows,
    # The reference's InstrumentFlowRunStateTransitions emits events; flowrun has no
    # event stream.
    ReleaseFlowConcurrencySlots,
)

#: Used when `force` is set and for the initial state of a new run.
MINIMAL_POLICY: Policy = (
    PreserveDeploymentConcurrencyLeaseId,
    PreventResultDataLoss,
    BypassCancellingFlowRunsWithNoInfra,
    ReleaseFlowConcurrencySlots,
)

#: The bookkeeping flow runs and task runs share: state columns and timing.
RUN_BOOKKEEPING: Policy = (
    book.EnsureFlowRunStateTimestampIsUnique,
    book.SetRunStateType,
    book.SetRunStateName,
    book.SetRunStateTimestamp,
    book.SetStartTime,
    book.SetEndTime,
    book.IncrementRunTime,
    book.SetExpectedStartTime,
    book.SetNextScheduledStartTime,
)

#: Applied after either policy, always.
GLOBAL_POLICY: Policy = (
    *RUN_BOOKKEEPING,
    book.UpdateStateDetails,
    UpdateSubflowParentTask,
    book.UpdateSubflowStateDetails,
    book.IncrementFlowRunCount,
    book.RemoveResumingIndicator,
)


def policy_for(force: bool) -> Policy:
    return MINIMAL_POLICY if force else CORE_POLICY
