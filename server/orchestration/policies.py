"""Flow-run policies: ordered lists of rules and transforms. The order is the priority:
earlier rules see the original proposal first, and bookkeeping runs last. FLOW_RUNS ties
them to the flow-run repository for set_state.

Adding a rule means adding it to a list here; the interceptor never changes."""

from __future__ import annotations

from operator import attrgetter

from flowrun.server import errors
from flowrun.server.orchestration import bookkeeping as book
from flowrun.server.orchestration.core_rules import (
    CopyScheduledTime,
    EnforceCancellingToCancelledTransition,
    EnsureOnlyScheduledFlowsMarkedLate,
    HandleFlowTerminalStateTransitions,
    PreventDuplicateTransitions,
    PreventPendingTransitions,
    WaitForScheduledTime,
)
from flowrun.server.orchestration.lease_rules import PreserveDeploymentConcurrencyLeaseId
from flowrun.server.orchestration.liveness_rules import EnforceDeploymentConcurrencyOnLate, SetHeartbeatDeadline
from flowrun.server.orchestration.minimal_rules import BypassCancellingFlowRunsWithNoInfra, PreventResultDataLoss
from flowrun.server.orchestration.pause_rules import HandlePausingFlows, HandleResumingPausedFlows
from flowrun.server.orchestration.retry_rules import RetryFailedFlows
from flowrun.server.orchestration.rules import Policy
from flowrun.server.orchestration.slot_rules import (
    ReleaseFlowConcurrencySlots,
    SecureFlowConcurrencySlots,
    ValidateDeploymentConcurrencyAtRunning,
)
from flowrun.server.orchestration.subflow_rules import UpdateSubflowParentTask
from flowrun.server.orchestration.transitions import RunKind, append_flow_run_event

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

#: Used by the late-runs sweep (server/liveness/late_runs.py): the reference's
#: MarkLateRunsPolicy, without its InstrumentFlowRunStateTransitions (as in CORE_POLICY).
MARK_LATE_RUNS_POLICY: Policy = (
    EnsureOnlyScheduledFlowsMarkedLate,
    EnforceDeploymentConcurrencyOnLate,
)

#: Applied after any policy, always.
GLOBAL_POLICY: Policy = (
    *book.RUN_BOOKKEEPING,
    SetHeartbeatDeadline,
    book.UpdateStateDetails,
    UpdateSubflowParentTask,
    book.UpdateSubflowStateDetails,
    book.IncrementFlowRunCount,
    book.RemoveResumingIndicator,
)


def policy_for(force: bool) -> Policy:
    return MINIMAL_POLICY if force else CORE_POLICY


FLOW_RUNS = RunKind(
    name="flow_run",
    store=attrgetter("flow_runs"),
    not_found=errors.flow_run_not_found,
    policy=policy_for,
    bookkeeping=GLOBAL_POLICY,
    unlocked=True,
    after_store=append_flow_run_event,
)
