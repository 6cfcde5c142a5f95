"""Who may call what: the one table of the minimum role of every RPC.

Roles are ordered, each allowing what the one below it allows: `reader` reads
everything; `writer` also drives runs (creates them, proposes their states, reports task
runs, renews leases); `admin` also deletes, forces states and configures deployments,
work pools and work queues. The choices that are not obvious from the verb:

- CreateFlow, UpdateFlow: writer. A worker registers its flow (get or create by name)
  before it creates a run of it, and may re-tag it; a flow is a name, tags and labels,
  not configuration that others depend on.
- UpdateFlowRun: writer. Workers set infrastructure_pid, name and job variables of the
  runs they drive; the state is not writable here.
- RenewConcurrencyLease: writer. Workers hold deployment concurrency slots while a run
  runs; renewing one is part of driving the run.
- HeartbeatFlowRun: writer. The executor of a run reports that it is alive; that is
  part of driving the run (it never changes a state, but a missing one crashes it).
- SetFlowRunState, SetTaskRunState: writer, but admin when the request sets `force`
  (it skips the orchestration policy). That check needs the decoded request, so
  server/auth.py makes it after decoding (FORCE_ROLE).
- CreateDeployment, CreateWorkPool, CreateWorkQueue and every Delete: admin. Their
  reads (Get, List) are reader.

Health (`grpc.health.v1.Health/*`) is open to everyone, load balancers included.
Reflection (`grpc.reflection.*`) needs any authenticated caller. Any other method not in
the table needs admin: new methods are denied to non-admins until they are listed
(tests/test_auth_roles.py fails while one is missing).

This module is standard library only: the `flowrun token` command imports it."""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """Comparable: `caller.role >= required` allows the call."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """`reader`, `writer` or `admin` (any case); ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r} (choose from {', '.join(ROLE_NAMES)})") from None


ROLE_NAMES = tuple(str(role) for role in Role)

READER, WRITER, ADMIN = Role.READER, Role.WRITER, Role.ADMIN

# Full gRPC method name (what grpc puts in HandlerCallDetails.method) -> minimum role.
METHOD_ROLES: dict[str, Role] = {
    # FlowService
    "/flowrun.v1.FlowService/CreateFlow": WRITER,
    "/flowrun.v1.FlowService/GetFlow": READER,
    "/flowrun.v1.FlowService/GetFlowByName": READER,
    "/flowrun.v1.FlowService/ListFlows": READER,
    "/flowrun.v1.FlowService/CountFlows": READER,
    "/flowrun.v1.FlowService/UpdateFlow": WRITER,
    "/flowrun.v1.FlowService/DeleteFlow": ADMIN,
    "/flowrun.v1.FlowService/DeleteFlows": ADMIN,
    "/flowrun.v1.FlowService/GetFlowLabels": READER,
    # FlowRunService
    "/flowrun.v1.FlowRunService/CreateFlowRun": WRITER,
    "/flowrun.v1.FlowRunService/GetFlowRun": READER,
    "/flowrun.v1.FlowRunService/WatchFlowRuns": READER,
    "/flowrun.v1.FlowRunService/WatchFlowRun": READER,
    "/flowrun.v1.FlowRunService/ListFlowRuns": READER,
    "/flowrun.v1.FlowRunService/CountFlowRuns": READER,
    "/flowrun.v1.FlowRunService/UpdateFlowRun": WRITER,
    "/flowrun.v1.FlowRunService/DeleteFlowRun": ADMIN,
    "/flowrun.v1.FlowRunService/SetFlowRunState": WRITER,  # force: ADMIN
    "/flowrun.v1.FlowRunService/GetTaskRunDependencies": READER,
    "/flowrun.v1.FlowRunService/GetFlowRunGraph": READER,
    "/flowrun.v1.FlowRunService/GetFlowRunState": READER,
    "/flowrun.v1.FlowRunService/ListFlowRunStates": READER,
    "/flowrun.v1.FlowRunService/DeleteFlowRunState": ADMIN,
    "/flowrun.v1.FlowRunService/HeartbeatFlowRun": WRITER,
    # TaskRunService
    "/flowrun.v1.TaskRunService/CreateTaskRun": WRITER,
    "/flowrun.v1.TaskRunService/GetTaskRun": READER,
    "/flowrun.v1.TaskRunService/ListTaskRuns": READER,
    "/flowrun.v1.TaskRunService/SetTaskRunState": WRITER,  # force: ADMIN
    # DeploymentService
    "/flowrun.v1.DeploymentService/CreateDeployment": ADMIN,
    "/flowrun.v1.DeploymentService/GetDeployment": READER,
    "/flowrun.v1.DeploymentService/ListDeployments": READER,
    "/flowrun.v1.DeploymentService/DeleteDeployment": ADMIN,
    "/flowrun.v1.DeploymentService/RenewConcurrencyLease": WRITER,
    # WorkPoolService
    "/flowrun.v1.WorkPoolService/CreateWorkPool": ADMIN,
    "/flowrun.v1.WorkPoolService/GetWorkPool": READER,
    "/flowrun.v1.WorkPoolService/ListWorkPools": READER,
    "/flowrun.v1.WorkPoolService/DeleteWorkPool": ADMIN,
    "/flowrun.v1.WorkPoolService/CreateWorkQueue": ADMIN,
    "/flowrun.v1.WorkPoolService/GetWorkQueue": READER,
    "/flowrun.v1.WorkPoolService/ListWorkQueues": READER,
    "/flowrun.v1.WorkPoolService/DeleteWorkQueue": ADMIN,
}

# Methods whose request has a `force` flag; a forced call needs FORCE_ROLE.
FORCEABLE_METHODS = frozenset(
    {
        "/flowrun.v1.FlowRunService/SetFlowRunState",
        "/flowrun.v1.TaskRunService/SetTaskRunState",
    }
)
FORCE_ROLE = ADMIN

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
AUTHENTICATED_PREFIXES = ("/grpc.reflection.",)


def required_role(method: str) -> Role | None:
    """The minimum role for `method`; None when it is open to unauthenticated callers."""
    role = METHOD_ROLES.get(method)
    if role is not None:
        return role
    if method.startswith(OPEN_PREFIXES):
        return None
    if method.startswith(AUTHENTICATED_PREFIXES):
        return READER
    return ADMIN


def changes_data(method: str) -> bool:
    """True for every flowrun method above reader: the calls the audit log records."""
    return METHOD_ROLES.get(method, READER) > READER
