"""Filters that mean what they say (issue 14, item 7), on SQLite and PostgreSQL:

- inside a flow-run or task-run state filter, a `type` or `name` with no criteria is left
  out, as the reference leaves it out: under OR it no longer makes the filter true;
- `not_any` matches rows whose value is unset (stated in filters.proto); `is_null: false`
  beside it gives the reference's NOT IN;
- `strict_any: true` makes an empty `any` match nothing (an empty multi-select), while an
  empty `any` without it is still ignored (the contract is unchanged);
- `FlowFilter.deployment.is_null` selects flows without (true) or with (false) deployments.

The world of each test (a fresh one per backend, scoped by its flow ids):

    flow F ── deployment dF
           ├─ run late:    SCHEDULED "Late",  tags [x],    idempotency key k1, queue "gpu"
           ├─ run running: RUNNING "Running", tags [x, y], idempotency key k2
           └─ run pending: PENDING "Pending", no tags,     no idempotency key
    flow G (no deployment)
           └─ run g:       PENDING "Pending", tags [y]     task run t COMPLETED
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.json_format import ParseDict

from flowrun.server.domain import filters as domain
from flowrun.v1 import deployment_service_pb2 as dep_pb
from flowrun.v1 import (
    deployment_service_pb2_grpc,
    filters_pb2,
    state_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.rich_errors import expect_error

OR = "FILTER_OPERATOR_OR"
ALL_RUNS = {"late", "running", "pending", "g"}


@dataclass
class World:
    flows: dict[str, str]
    runs: dict[str, str]


@pytest.fixture(scope="module")
async def world(channel, flows, runs) -> World:
    unique = uuid.uuid4().hex[:10]
    w = World({}, {})
    for key in "FG":
        w.flows[key] = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"sem-{key}-{unique}"))).flow.id
    deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
    deployment = await deployments.CreateDeployment(dep_pb.CreateDeploymentRequest(flow_id=w.flows["F"], name=unique))

    async def run(key: str, flow: str, state_type: int, state_name: str, **fields) -> None:
        state = state_pb2.StateCreate(type=state_type, name=state_name)
        request = runs_pb.CreateFlowRunRequest(flow_id=w.flows[flow], name=f"{key}-{unique}", state=state, **fields)
        w.runs[key] = (await runs.CreateFlowRun(request)).flow_run.id

    scheduled, running, pending = (
        state_pb2.STATE_TYPE_SCHEDULED,
        state_pb2.STATE_TYPE_RUNNING,
        state_pb2.STATE_TYPE_PENDING,
    )
    await run(
        "late",
        "F",
        scheduled,
        "Late",
        tags=["x"],
        idempotency_key="k1",
        work_queue_name="gpu",
        deployment_id=deployment.deployment.id,
    )
    await run("running", "F", running, "Running", tags=["x", "y"], idempotency_key="k2")
    await run("pending", "F", pending, "Pending")
    await run("g", "G", pending, "Pending", tags=["y"])
    completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    task_runs = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
    await task_runs.CreateTaskRun(
        task_run_service_pb2.CreateTaskRunRequest(flow_run_id=w.runs["g"], task_key="t", name="t", state=completed)
    )
    return w


async def run_keys(runs, w: World, flow_run: dict | None = None, **filters) -> set[str]:
    """Keys of the world's runs ListFlowRuns returns (checked against CountFlowRuns)."""
    fields = {
        "flow_filter": ParseDict(filters.pop("flow", {"id": {"any": list(w.flows.values())}}), filters_pb2.FlowFilter())
    }
    if flow_run is not None:
        fields["flow_run_filter"] = ParseDict(flow_run, filters_pb2.FlowRunFilter())
    if "task_run" in filters:
        fields["task_run_filter"] = ParseDict(filters.pop("task_run"), filters_pb2.TaskRunFilter())
    assert not filters
    listed = await runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(**fields))
    counted = await runs.CountFlowRuns(runs_pb.CountFlowRunsRequest(**fields))
    by_id = {run_id: key for key, run_id in w.runs.items()}
    keys = {by_id[run.id] for run in listed.flow_runs if run.id in by_id}
    assert counted.count == len(listed.flow_runs) == len(keys)
    return keys


async def flow_keys(flows, w: World, flow: dict) -> set[str]:
    scoped = {"operator": "FILTER_OPERATOR_AND", **flow}
    request_filter = ParseDict(scoped, filters_pb2.FlowFilter())
    listed = await flows.ListFlows(
        flows_pb.ListFlowsRequest(
            flow_filter=request_filter,
            flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=list(w.flows.values()))),
        )
    )
    by_id = {flow_id: key for key, flow_id in w.flows.items()}
    return {by_id[f.id] for f in listed.flows}


# -- state filters: an empty type or name is left out --------------------------------------


async def test_an_empty_state_sub_filter_no_longer_makes_an_or_true(runs, world):
    w = world
    late = {"state": {"operator": OR, "type": {}, "name": {"any": ["Late"]}}}
    assert await run_keys(runs, w, late) == {"late"}
    running = {"state": {"operator": OR, "type": {"any": ["STATE_TYPE_RUNNING"]}, "name": {}}}
    assert await run_keys(runs, w, running) == {"running"}
    # A name filter with only an operator is as empty as `{}`.
    only_operator = {"state": {"operator": OR, "type": {"any": ["STATE_TYPE_RUNNING"]}, "name": {"operator": OR}}}
    assert await run_keys(runs, w, only_operator) == {"running"}
    # With neither side holding a criterion, the state filter has none: every run.
    assert await run_keys(runs, w, {"state": {"operator": OR, "type": {}, "name": {}}}) == ALL_RUNS
    # AND was already right, and stays so.
    assert await run_keys(runs, w, {"state": {"type": {}, "name": {"any": ["Late"]}}}) == {"late"}
    # Either side still counts when it has criteria.
    both = {"state": {"operator": OR, "type": {"any": ["STATE_TYPE_RUNNING"]}, "name": {"any": ["Late"]}}}
    assert await run_keys(runs, w, both) == {"late", "running"}
    # Outside the state filter a given, empty sub-filter is still TRUE (Prefect's rule).
    assert await run_keys(runs, w, {"operator": OR, "name": {}, "tags": {"any": ["x"]}}) == ALL_RUNS


async def test_an_empty_task_run_state_sub_filter_is_left_out_too(runs, world):
    w = world
    completed = {"state": {"operator": OR, "type": {}, "name": {"any": ["Completed"]}}}
    assert await run_keys(runs, w, task_run=completed) == {"g"}
    nothing = {"state": {"operator": OR, "type": {}, "name": {"any": ["Nope"]}}}
    assert await run_keys(runs, w, task_run=nothing) == set()


# -- not_any and null --------------------------------------------------------------------


async def test_not_any_matches_unset_values_unless_is_null_false(runs, world):
    w = world
    assert await run_keys(runs, w, {"idempotency_key": {"not_any": ["k1"]}}) == {"running", "pending", "g"}
    reference = {"idempotency_key": {"not_any": ["k1"], "is_null": False}}
    assert await run_keys(runs, w, reference) == {"running"}
    assert await run_keys(runs, w, {"work_queue_name": {"not_any": ["gpu"]}}) == ALL_RUNS - {"late"}
    assert await run_keys(runs, w, {"deployment_id": {"not_any": [str(uuid.uuid4())]}}) == ALL_RUNS
    deployed = {"deployment_id": {"not_any": [str(uuid.uuid4())], "is_null": False}}
    assert await run_keys(runs, w, deployed) == {"late"}


# -- strict_any: an empty multi-select matches nothing -----------------------------------


@pytest.mark.parametrize(
    "sub_filter",
    [
        {"id": {"strict_any": True}},
        {"name": {"strict_any": True}},
        {"tags": {"strict_any": True}},
        {"flow_id": {"strict_any": True}},
        {"deployment_id": {"strict_any": True}},
        {"parent_flow_run_id": {"strict_any": True}},
        {"state": {"type": {"strict_any": True}}},
        {"state": {"operator": OR, "type": {"strict_any": True}, "name": {}}},
        {"state": {"name": {"strict_any": True}}},
    ],
)
async def test_strict_any_with_an_empty_list_matches_nothing(runs, world, sub_filter):
    w = world
    assert await run_keys(runs, w, sub_filter) == set()
    # Without strict_any the empty list is ignored, as the contract always said.
    loose = {name: _without_strict(value) for name, value in sub_filter.items()}
    assert await run_keys(runs, w, loose) == ALL_RUNS


def _without_strict(body: dict) -> dict:
    return {k: _without_strict(v) if isinstance(v, dict) else v for k, v in body.items() if k != "strict_any"}


async def test_strict_any_with_values_is_plain_any(runs, world):
    w = world
    assert await run_keys(runs, w, {"tags": {"any": ["y"], "strict_any": True}}) == {"running", "g"}
    either = {"operator": OR, "name": {"strict_any": True}, "tags": {"any": ["x"]}}
    assert await run_keys(runs, w, either) == {"late", "running"}
    state = {"state": {"type": {"any": ["STATE_TYPE_PENDING"], "strict_any": True}}}
    assert await run_keys(runs, w, state) == {"pending", "g"}
    # On the flow filter too.
    assert await run_keys(runs, w, flow={"id": {"strict_any": True}}) == set()
    assert await run_keys(runs, w, flow={"id": {"any": [w.flows["G"]], "strict_any": True}}) == {"g"}


async def test_strict_any_is_part_of_what_a_page_token_is_bound_to(runs, world):
    w = world
    scope = filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=list(w.flows.values())))
    first = await runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(flow_filter=scope, page_size=1))
    strict = filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=list(w.flows.values()), strict_any=True))
    error = await expect_error(
        runs.ListFlowRuns(
            runs_pb.ListFlowRunsRequest(flow_filter=strict, page_size=1, page_token=first.next_page_token)
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_filters_without_the_new_fields_keep_their_fingerprint():
    """Tokens issued before strict_any and FlowFilter.deployment existed stay valid."""
    text = domain.fingerprint(
        domain.FlowFilter(id=domain.IdFilter(any=("a",)), name=domain.StringFilter(), tags=domain.TagsFilter()),
        domain.StateTypeFilter(),
    )
    assert "strict_any" not in text and "deployment" not in text
    assert "strict_any" in domain.fingerprint(domain.IdFilter(strict_any=True))
    assert "FlowDeploymentFilter" in domain.fingerprint(domain.FlowFilter(deployment=domain.FlowDeploymentFilter()))


async def test_strict_any_where_only_like_applies_is_invalid(runs):
    request = runs_pb.ListFlowRunsRequest(
        deployment_filter=filters_pb2.DeploymentFilter(
            flow_or_deployment_name=filters_pb2.StringFilter(like="x", strict_any=True)
        )
    )
    error = await expect_error(runs.ListFlowRuns(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.field_violations) == ["deployment_filter.flow_or_deployment_name.strict_any"]


# -- FlowFilter.deployment.is_null --------------------------------------------------------


async def test_flows_with_or_without_deployments(flows, runs, world):
    w = world
    assert await flow_keys(flows, w, {"deployment": {"is_null": True}}) == {"G"}
    assert await flow_keys(flows, w, {"deployment": {"is_null": False}}) == {"F"}
    assert await flow_keys(flows, w, {"deployment": {}}) == {"F", "G"}
    either = {"operator": OR, "deployment": {"is_null": False}, "id": {"any": [w.flows["G"]]}}
    assert await flow_keys(flows, w, either) == {"F", "G"}
    # On ListFlowRuns, through the run's flow.
    scoped = {"id": {"any": list(w.flows.values())}, "deployment": {"is_null": True}}
    assert await run_keys(runs, w, flow=scoped) == {"g"}
