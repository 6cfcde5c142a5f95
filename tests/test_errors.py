"""Every error path carries a decodable google.rpc.Status with ErrorInfo, and the right code."""

from __future__ import annotations

import uuid

import grpc
import pytest

from flowrun.server.error_mapping import DOMAIN, to_grpc_status
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import state_pb2
from tests.helpers.rich_errors import expect_error


async def test_missing_flow_is_not_found_with_error_info(flows):
    flow_id = str(uuid.uuid4())
    error = await expect_error(flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow_id)))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert (error.reason, error.domain) == ("FLOW_NOT_FOUND", DOMAIN)
    assert error.metadata == {"flow_id": flow_id}


async def test_missing_flow_by_name(flows, unique):
    error = await expect_error(flows.GetFlowByName(flows_pb.GetFlowByNameRequest(name=f"nope-{unique}")))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_NOT_FOUND"


@pytest.mark.parametrize(
    "call",
    [
        lambda runs: runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=str(uuid.uuid4()))),
        lambda runs: runs.DeleteFlowRun(runs_pb.DeleteFlowRunRequest(flow_run_id=str(uuid.uuid4()))),
        lambda runs: runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(
                flow_run_id=str(uuid.uuid4()), state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
            )
        ),
        lambda runs: runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=str(uuid.uuid4()))),
        lambda runs: runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=str(uuid.uuid4()))),
    ],
    ids=["get", "delete", "set-state", "dependencies", "graph"],
)
async def test_missing_flow_run_is_not_found(runs, call):
    error = await expect_error(call(runs))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_RUN_NOT_FOUND"
    assert set(error.metadata) == {"flow_run_id"}


async def test_missing_state_is_not_found(runs):
    error = await expect_error(runs.GetFlowRunState(runs_pb.GetFlowRunStateRequest(state_id=str(uuid.uuid4()))))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_RUN_STATE_NOT_FOUND"


async def test_create_run_of_unknown_flow_is_not_found(runs):
    error = await expect_error(runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=str(uuid.uuid4()))))
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "FLOW_NOT_FOUND"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.flows.GetFlow(flows_pb.GetFlowRequest(flow_id="not-a-uuid")), "flow_id"),
        (lambda s: s.flows.GetFlow(flows_pb.GetFlowRequest()), "flow_id"),
        (lambda s: s.flows.CreateFlow(flows_pb.CreateFlowRequest(name="")), "name"),
        (lambda s: s.flows.CreateFlow(flows_pb.CreateFlowRequest(name="a/b")), "name"),
        (lambda s: s.flows.CreateFlow(flows_pb.CreateFlowRequest(name="x" * 201)), "name"),
        (lambda s: s.flows.ListFlows(flows_pb.ListFlowsRequest(limit=-1)), "limit"),
        (lambda s: s.flows.ListFlows(flows_pb.ListFlowsRequest(limit=201)), "limit"),
        (lambda s: s.flows.ListFlows(flows_pb.ListFlowsRequest(page_size=-5)), "page_size"),
        (lambda s: s.flows.ListFlows(flows_pb.ListFlowsRequest(offset=-1)), "offset"),
        (lambda s: s.flows.ListFlows(flows_pb.ListFlowsRequest(page_token="garbage")), "page_token"),
        (lambda s: s.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id="1234")), "flow_run_id"),
        (
            lambda s: s.runs.SetFlowRunState(
                runs_pb.SetFlowRunStateRequest(flow_run_id=str(uuid.uuid4()), state=state_pb2.StateCreate())
            ),
            "state.type",
        ),
        (
            lambda s: s.runs.SetFlowRunState(
                runs_pb.SetFlowRunStateRequest(flow_run_id=str(uuid.uuid4()), state=state_pb2.StateCreate(type=42))
            ),
            "state.type",
        ),
        (lambda s: s.runs.SetFlowRunState(runs_pb.SetFlowRunStateRequest(flow_run_id=str(uuid.uuid4()))), "state"),
        (
            lambda s: s.runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=str(uuid.uuid4()), deployment_id="x")),
            "deployment_id",
        ),
    ],
    ids=[
        "malformed-uuid",
        "missing-id",
        "empty-name",
        "slash-in-name",
        "long-name",
        "negative-limit",
        "limit-above-max",
        "negative-page-size",
        "negative-offset",
        "bad-page-token",
        "malformed-run-id",
        "unspecified-state-type",
        "unknown-state-type",
        "missing-state",
        "malformed-deployment-id",
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(flows, runs, call, field):
    stubs = type("Stubs", (), {"flows": flows, "runs": runs})
    error = await expect_error(call(stubs))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason in {"INVALID_ARGUMENT", "INVALID_PAGE_TOKEN"}
    assert field in error.field_violations, error.field_violations
    assert "google.rpc.BadRequest" in error.detail_types


async def test_all_violations_reported_at_once(flows):
    error = await expect_error(flows.CreateFlow(flows_pb.CreateFlowRequest(name="bad/name", tags=["ok", ""])))
    assert set(error.field_violations) == {"name", "tags[1]"}


async def test_oversized_parameters_are_rejected(flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    request = runs_pb.CreateFlowRunRequest(flow_id=flow.id)
    request.parameters.update({"blob": "x" * (512 * 1024 + 1)})
    error = await expect_error(runs.CreateFlowRun(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameters" in error.field_violations
    assert (await runs.CountFlowRuns(runs_pb.CountFlowRunsRequest())).count >= 0


def test_internal_errors_hide_their_details():
    status = to_grpc_status(RuntimeError("password=hunter2 at /srv/app.py line 3"), "/x/Y")
    assert status.code == grpc.StatusCode.INTERNAL
    assert "hunter2" not in status.details and "app.py" not in status.details
    assert "see the server log" in status.details
