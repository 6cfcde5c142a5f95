"""The orchestration decision table of the reference (PREFECT-SPEC section 7), cell by cell,
through the public API and on both backends.

Every case sets a run up in some state, proposes one state with SetFlowRunState and
checks what a client sees: the status, the resulting state (type and name), the
reject/abort/wait reason, the wait delay, and whether a state was written (the run's
history before and after). The plain table is spelled out as in the spec, one line per
current state; each cell becomes one test case, unforced (core policy) and forced
(minimal policy). The named sub-states and the spec's "other variants" follow as one row
per case. The cases live in tests/helpers/decision_table.py; the in-memory table
(tests/test_policy_engine_decision_table.py) runs the same ones against set_state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import field_mask_pb2, json_format, struct_pb2

from flowrun.v1 import flow_run_pb2, state_pb2, task_run_service_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.decision_table import CORE_TABLE, FORCED_TABLE, Expect, Proposal, Start, table_cases, variant_cases
from tests.helpers.factories import create_deployment

# Hundreds of cases through gRPC on both databases take seconds; the fast loop runs the
# same cases in memory (test_policy_engine_decision_table.py).
pytestmark = pytest.mark.slow

# --- talking to the server ---------------------------------------------------------------


def json_value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


def state_create(
    type_: str, name: str = "", details: dict[str, Any] | None = None, data: Any = None, message: str = ""
):
    """A StateCreate; timedelta detail values are taken relative to now."""
    now = datetime.now(UTC)
    values = {key: now + value if isinstance(value, timedelta) else value for key, value in (details or {}).items()}
    state = state_pb2.StateCreate(
        type=state_pb2.StateType.Value(f"STATE_TYPE_{type_}"),
        name=name,
        message=message,
        state_details=state_pb2.StateDetails(**values),
    )
    if data is not None:
        state.data.CopyFrom(json_value(data))
    return state


async def create_parent_task_run(channel, runs, flow_id: str) -> str:
    """A task run in another flow run, to be the parent of a subflow run."""
    parent = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id))).flow_run
    task_runs = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
    request = task_run_service_pb2.CreateTaskRunRequest(flow_run_id=parent.id, task_key="subflow")
    return (await task_runs.CreateTaskRun(request)).task_run.id


async def create_run(channel, flows, runs, start: Start) -> flow_run_pb2.FlowRun:
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name="orchestration-decision-table"))).flow
    request = runs_pb.CreateFlowRunRequest(
        flow_id=flow.id,
        state=state_create(start.type or "PENDING", start.name, start.details, start.data),
        empirical_policy=flow_run_pb2.FlowRunPolicy(**start.policy),
        deployment_id=await create_deployment(channel, flow.id) if start.deployment else "",
        parent_task_run_id=await create_parent_task_run(channel, runs, flow.id) if start.subflow else "",
    )
    run = (await runs.CreateFlowRun(request)).flow_run
    if start.infrastructure_pid:
        await runs.UpdateFlowRun(
            runs_pb.UpdateFlowRunRequest(
                flow_run=flow_run_pb2.FlowRun(id=run.id, infrastructure_pid=start.infrastructure_pid),
                update_mask=field_mask_pb2.FieldMask(paths=["infrastructure_pid"]),
            )
        )
    if start.type is None:  # the only way to a run without a current state
        await runs.DeleteFlowRunState(runs_pb.DeleteFlowRunStateRequest(state_id=run.state.id))
    return (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run


async def history(runs, run_id: str) -> list[str]:
    states = (await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id))).states
    return [state.id for state in states]


def policy_fields(policy: flow_run_pb2.FlowRunPolicy) -> dict[str, Any]:
    return {
        "pause_keys": sorted(policy.pause_keys),
        "resuming": policy.resuming,
        "retry_type": policy.retry_type if policy.HasField("retry_type") else None,
        "retries": policy.retries if policy.HasField("retries") else None,
    }


STATUS_NAMES = {
    state_pb2.SetStateStatus.Value(f"SET_STATE_STATUS_{name}"): name for name in ("ACCEPT", "REJECT", "ABORT", "WAIT")
}
DETAILS_OF = {"ACCEPT": "accept", "REJECT": "reject", "ABORT": "abort", "WAIT": "wait"}


async def check(channel, flows, runs, start: Start, proposal: Proposal, expect: Expect) -> None:
    run = await create_run(channel, flows, runs, start)
    before = await history(runs, run.id)

    response = await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id,
            state=state_create(proposal.type, proposal.name, proposal.details, proposal.data, proposal.message),
            force=proposal.force,
        )
    )

    status = STATUS_NAMES[response.status]
    details = response.WhichOneof("details")
    reason = getattr(response, details).reason if details != "accept" else ""
    assert (status, details, reason) == (expect.status, DETAILS_OF[expect.status], expect.reason)
    if expect.delay is not None:
        low, high = expect.delay
        assert low <= response.wait.delay.seconds <= high
        assert response.wait.delay.nanos == 0

    after = await history(runs, run.id)
    current = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
    if expect.state is None:  # nothing written: the current state comes back unchanged
        assert after == before
        assert response.HasField("state") == run.HasField("state")
        assert response.state == run.state
        assert current.state_id == run.state_id
    else:
        state_type, name = expect.state
        assert (state_pb2.StateType.Name(response.state.type), response.state.name) == (
            f"STATE_TYPE_{state_type}",
            name,
        )
        assert after == [*before, response.state.id]
        assert current.state_id == response.state.id
        assert (current.state_type, current.state_name) == (response.state.type, name)
        assert response.state.message == expect.message
    if expect.keeps_policy:
        assert current.empirical_policy == run.empirical_policy
    if expect.policy:
        actual = policy_fields(current.empirical_policy)
        assert {key: actual[key] for key in expect.policy} == {
            key: sorted(value) if isinstance(value, list) else value for key, value in expect.policy.items()
        }


@pytest.mark.parametrize(("start", "proposal", "expect"), table_cases(CORE_TABLE, force=False))
async def test_core_policy(channel, flows, runs, start, proposal, expect):
    await check(channel, flows, runs, start, proposal, expect)


@pytest.mark.parametrize(("start", "proposal", "expect"), table_cases(FORCED_TABLE, force=True))
async def test_forced(channel, flows, runs, start, proposal, expect):
    await check(channel, flows, runs, start, proposal, expect)


@pytest.mark.parametrize(("start", "proposal", "expect"), variant_cases())
async def test_variant(channel, flows, runs, start, proposal, expect):
    await check(channel, flows, runs, start, proposal, expect)
