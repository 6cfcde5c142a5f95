"""Cross-entity filters (spec 3.8): deployment, work pool, work queue and task run filters
on ListFlowRuns / CountFlowRuns / ListFlows / CountFlows, alone and combined with flow and
flow-run filters. Every list is checked against its count.

The world of each test (ids in `World`):

    flow A ── deployment dA (pool P1 "docker", queue "gpu", tags prod)
           ├─ run a1: deployment dA, on P1/gpu         task t1 "extract" COMPLETED, tags io
           └─ run a2: no deployment, on P1/default
    flow B ── deployment dB (no pool, paused)
           ├─ run b1: deployment dB, on P2/default     task t2 "load" (parent of subflow c1)
           └─ run b2: no deployment, no queue, stored work_queue_name "gpu"
    flow C ── deployment dC (pool P2 "process")
           └─ run c1: subflow of t2
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.json_format import ParseDict

from flowrun.v1 import deployment_service_pb2 as dep_pb
from flowrun.v1 import (
    deployment_service_pb2_grpc,
    filters_pb2,
    state_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
    work_pool_service_pb2_grpc,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import work_pool_service_pb2 as pools_pb
from tests.helpers.rich_errors import expect_error


@dataclass
class World:
    unique: str
    flows: dict[str, str]  # "A" -> flow id
    runs: dict[str, str]  # "a1" -> run id
    deployments: dict[str, str]  # "dA" -> deployment id
    pools: dict[str, str]  # "P1" -> pool name
    queues: dict[str, str]  # "P1/gpu" -> queue id
    tasks: dict[str, str]  # "t1" -> task run id


async def add_task_run(channel, flow_run_id: str, name: str, **fields) -> str:
    """The one place these tests create task runs: through TaskRunService, as users do."""
    stub = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
    request = task_run_service_pb2.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key=name, name=name, **fields)
    return (await stub.CreateTaskRun(request)).task_run.id


@pytest.fixture(scope="module")
async def world(channel, flows, runs) -> World:
    """One world per backend for the tests that only read it: building it is most of
    their time. A test that changes it takes `own_world`."""
    return await build_world(channel, flows, runs, uuid.uuid4().hex[:10])


@pytest.fixture
async def own_world(channel, flows, runs, unique) -> World:
    return await build_world(channel, flows, runs, unique)


async def build_world(channel, flows, runs, unique: str) -> World:
    pools = work_pool_service_pb2_grpc.WorkPoolServiceStub(channel)
    deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
    w = World(unique, {}, {}, {}, {}, {}, {})
    for key, pool_type in (("P1", "docker"), ("P2", "process")):
        name = f"{key.lower()}-{unique}"
        pool = (await pools.CreateWorkPool(pools_pb.CreateWorkPoolRequest(name=name, type=pool_type))).work_pool
        w.pools[key] = name
        w.queues[f"{key}/default"] = pool.default_queue_id
    gpu = await pools.CreateWorkQueue(pools_pb.CreateWorkQueueRequest(work_pool_name=w.pools["P1"], name="gpu"))
    w.queues["P1/gpu"] = gpu.work_queue.id
    for key in "ABC":
        request = flows_pb.CreateFlowRequest(name=f"xflow-{key}-{unique}")
        w.flows[key] = (await flows.CreateFlow(request)).flow.id

    async def deployment(key: str, flow: str, **fields) -> None:
        request = dep_pb.CreateDeploymentRequest(flow_id=w.flows[flow], name=f"{key}-{unique}", **fields)
        w.deployments[key] = (await deployments.CreateDeployment(request)).deployment.id

    await deployment("dA", "A", work_pool_name=w.pools["P1"], work_queue_name="gpu", tags=["prod"])
    await deployment("dB", "B", paused=True)
    await deployment("dC", "C", work_pool_name=w.pools["P2"])

    async def run(key: str, flow: str, **fields) -> None:
        request = runs_pb.CreateFlowRunRequest(flow_id=w.flows[flow], name=f"{key}-{unique}", **fields)
        w.runs[key] = (await runs.CreateFlowRun(request)).flow_run.id

    await run("a1", "A", deployment_id=w.deployments["dA"], work_pool_name=w.pools["P1"], work_queue_name="gpu")
    await run("a2", "A", work_pool_name=w.pools["P1"])
    await run("b1", "B", deployment_id=w.deployments["dB"], work_pool_name=w.pools["P2"])
    await run("b2", "B", work_queue_name="gpu")
    completed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    w.tasks["t1"] = await add_task_run(channel, w.runs["a1"], "extract", tags=["io"], state=completed)
    w.tasks["t2"] = await add_task_run(channel, w.runs["b1"], "load")
    await run("c1", "C", parent_task_run_id=w.tasks["t2"])
    return w


def message(cls, body: dict | None):
    return None if body is None else ParseDict(body, cls())


async def run_keys(runs, w: World, **filters) -> set[str]:
    """Keys of this world's runs that ListFlowRuns returns (checked against CountFlowRuns).
    Filters are JSON dicts; a flow filter scoping the query to this world is added unless
    one is given."""
    fields = {
        "flow_filter": message(
            filters_pb2.FlowFilter, filters.pop("flow", None) or {"id": {"any": list(w.flows.values())}}
        ),
        "flow_run_filter": message(filters_pb2.FlowRunFilter, filters.pop("flow_run", None)),
        "task_run_filter": message(filters_pb2.TaskRunFilter, filters.pop("task_run", None)),
        "deployment_filter": message(filters_pb2.DeploymentFilter, filters.pop("deployment", None)),
        "work_pool_filter": message(filters_pb2.WorkPoolFilter, filters.pop("work_pool", None)),
        "work_queue_filter": message(filters_pb2.WorkQueueFilter, filters.pop("work_queue", None)),
    }
    assert not filters, filters
    fields = {name: value for name, value in fields.items() if value is not None}
    listed = await runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(**fields))
    counted = await runs.CountFlowRuns(runs_pb.CountFlowRunsRequest(**fields))
    by_id = {run_id: key for key, run_id in w.runs.items()}
    keys = {by_id[run.id] for run in listed.flow_runs}
    assert counted.count == len(listed.flow_runs) == len(keys)
    return keys


async def flow_keys(flows, w: World, **filters) -> set[str]:
    """Keys of this world's flows that ListFlows returns (checked against CountFlows)."""
    fields = {
        "flow_filter": message(
            filters_pb2.FlowFilter, filters.pop("flow", None) or {"id": {"any": list(w.flows.values())}}
        ),
        "flow_run_filter": message(filters_pb2.FlowRunFilter, filters.pop("flow_run", None)),
        "task_run_filter": message(filters_pb2.TaskRunFilter, filters.pop("task_run", None)),
        "deployment_filter": message(filters_pb2.DeploymentFilter, filters.pop("deployment", None)),
        "work_pool_filter": message(filters_pb2.WorkPoolFilter, filters.pop("work_pool", None)),
    }
    assert not filters, filters
    fields = {name: value for name, value in fields.items() if value is not None}
    listed = await flows.ListFlows(flows_pb.ListFlowsRequest(**fields))
    counted = await flows.CountFlows(flows_pb.CountFlowsRequest(**fields))
    by_id = {flow_id: key for key, flow_id in w.flows.items()}
    keys = {by_id[flow.id] for flow in listed.flows}
    assert counted.count == len(listed.flows) == len(keys)
    return keys


# -- flow runs ----------------------------------------------------------------------------


async def test_flow_runs_by_deployment(runs, world):
    w = world
    assert await run_keys(runs, w) == {"a1", "a2", "b1", "b2", "c1"}
    # A given filter with no criteria still needs the deployment to exist.
    assert await run_keys(runs, w, deployment={}) == {"a1", "b1"}
    assert await run_keys(runs, w, deployment={"name": {"any": [f"dA-{w.unique}"]}}) == {"a1"}
    assert await run_keys(runs, w, deployment={"id": {"not_any": [w.deployments["dA"]]}}) == {"b1"}
    assert await run_keys(runs, w, deployment={"paused": {"eq": True}}) == {"b1"}
    assert await run_keys(runs, w, deployment={"tags": {"all": ["prod"]}}) == {"a1"}
    assert await run_keys(runs, w, deployment={"work_queue_name": {"any": ["gpu"]}}) == {"a1"}
    by_flow_name = {"flow_or_deployment_name": {"like": f"XFLOW-b-{w.unique}"}}
    assert await run_keys(runs, w, deployment=by_flow_name) == {"b1"}
    either = {"operator": "FILTER_OPERATOR_OR", "paused": {"eq": True}, "tags": {"any": ["prod"]}}
    assert await run_keys(runs, w, deployment=either) == {"a1", "b1"}


async def test_flow_runs_by_work_pool_and_queue(runs, world):
    w = world
    assert await run_keys(runs, w, work_pool={}) == {"a1", "a2", "b1"}
    assert await run_keys(runs, w, work_pool={"name": {"any": [w.pools["P1"]]}}) == {"a1", "a2"}
    assert await run_keys(runs, w, work_pool={"type": {"any": ["process"]}}) == {"b1"}
    assert await run_keys(runs, w, work_pool={"name": {"startswith": ["P2-"]}}) == {"b1"}
    # b2 stores work_queue_name "gpu" but is on no queue: queue filters never match it.
    assert await run_keys(runs, w, work_queue={"name": {"any": ["gpu"]}}) == {"a1"}
    assert await run_keys(runs, w, work_queue={"name": {"startswith": ["DEF"]}}) == {"a2", "b1"}
    assert await run_keys(runs, w, work_queue={"id": {"any": [w.queues["P2/default"]]}}) == {"b1"}
    assert await run_keys(runs, w, work_queue={}) == {"a1", "a2", "b1"}
    # The stored name is still what the flow-run filter sees.
    assert await run_keys(runs, w, flow_run={"work_queue_name": {"any": ["gpu"]}}) == {"a1", "b2"}
    both = {"work_pool": {"name": {"any": [w.pools["P1"]]}}, "work_queue": {"name": {"any": ["default"]}}}
    assert await run_keys(runs, w, **both) == {"a2"}


async def test_flow_runs_by_task_run(runs, world):
    w = world
    assert await run_keys(runs, w, task_run={}) == {"a1", "b1"}
    assert await run_keys(runs, w, task_run={"name": {"any": ["extract"]}}) == {"a1"}
    assert await run_keys(runs, w, task_run={"tags": {"all": ["io"]}}) == {"a1"}
    assert await run_keys(runs, w, task_run={"state": {"type": {"any": ["STATE_TYPE_COMPLETED"]}}}) == {"a1"}
    assert await run_keys(runs, w, task_run={"state": {"name": {"any": ["Pending"]}}}) == {"b1"}
    assert await run_keys(runs, w, task_run={"subflow_runs": {"exists": True}}) == {"b1"}
    assert await run_keys(runs, w, task_run={"subflow_runs": {"exists": False}}) == {"a1"}
    assert await run_keys(runs, w, task_run={"id": {"any": [w.tasks["t2"]]}}) == {"b1"}
    assert await run_keys(runs, w, task_run={"end_time": {"is_null": False}}) == {"a1"}


async def test_flow_runs_combine_every_filter(runs, world):
    w = world
    assert await run_keys(
        runs,
        w,
        flow={"name": {"any": [f"xflow-A-{w.unique}"]}},
        work_pool={"name": {"any": [w.pools["P1"]]}},
        flow_run={"deployment_id": {"is_null": True}},
    ) == {"a2"}
    assert await run_keys(
        runs,
        w,
        flow_run={"name": {"like": w.unique}},
        deployment={"paused": {"eq": False}},
        task_run={"name": {"any": ["extract"]}},
        work_queue={"name": {"any": ["gpu"]}},
        work_pool={"type": {"any": ["docker"]}},
    ) == {"a1"}
    # Every filter must hold: a1's task run is not "load".
    assert (
        await run_keys(runs, w, deployment={"tags": {"all": ["prod"]}}, task_run={"name": {"any": ["load"]}}) == set()
    )


async def test_a_deleted_deployment_matches_no_deployment_filter(channel, runs, own_world):
    w = own_world
    deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
    await deployments.DeleteDeployment(dep_pb.DeleteDeploymentRequest(deployment_id=w.deployments["dB"]))
    assert await run_keys(runs, w, deployment={}) == {"a1"}
    assert await run_keys(runs, w, flow_run={"deployment_id": {"any": [w.deployments["dB"]]}}) == {"b1"}


async def test_page_tokens_are_bound_to_the_cross_entity_filters(runs, world):
    w = world
    scope = filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=list(w.flows.values())))
    pool_filter = filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(any=[w.pools["P1"]]))
    first = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(flow_filter=scope, work_pool_filter=pool_filter, page_size=1)
    )
    second = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(
            flow_filter=scope, work_pool_filter=pool_filter, page_size=1, page_token=first.next_page_token
        )
    )
    assert {first.flow_runs[0].id, second.flow_runs[0].id} == {w.runs["a1"], w.runs["a2"]}
    assert second.next_page_token == ""
    for changed in (
        {"work_pool_filter": filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(any=[w.pools["P2"]]))},
        {"work_pool_filter": pool_filter, "work_queue_filter": filters_pb2.WorkQueueFilter()},
        {"work_pool_filter": pool_filter, "task_run_filter": filters_pb2.TaskRunFilter()},
    ):
        error = await expect_error(
            runs.ListFlowRuns(
                runs_pb.ListFlowRunsRequest(flow_filter=scope, page_size=1, page_token=first.next_page_token, **changed)
            )
        )
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_bad_cross_entity_filters_name_their_field(runs, flows):
    request = runs_pb.ListFlowRunsRequest(
        deployment_filter=filters_pb2.DeploymentFilter(id=filters_pb2.IdFilter(any=["nope"])),
        work_queue_filter=filters_pb2.WorkQueueFilter(id=filters_pb2.IdFilter(not_any=["bad"])),
        task_run_filter=filters_pb2.TaskRunFilter(
            state=filters_pb2.TaskRunStateFilter(
                type=filters_pb2.StateTypeFilter(any=[state_pb2.STATE_TYPE_UNSPECIFIED])
            )
        ),
    )
    error = await expect_error(runs.ListFlowRuns(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {
        "deployment_filter.id.any[0]",
        "work_queue_filter.id.not_any[0]",
        "task_run_filter.state.type.any[0]",
    } <= set(error.field_violations)
    error = await expect_error(
        flows.CountFlows(
            flows_pb.CountFlowsRequest(work_pool_filter=filters_pb2.WorkPoolFilter(id=filters_pb2.IdFilter(any=["x"])))
        )
    )
    assert "work_pool_filter.id.any[0]" in error.field_violations


# -- flows --------------------------------------------------------------------------------


async def test_flows_by_deployment_and_work_pool(flows, world):
    w = world
    assert await flow_keys(flows, w) == {"A", "B", "C"}
    assert await flow_keys(flows, w, deployment={}) == {"A", "B", "C"}
    assert await flow_keys(flows, w, deployment={"paused": {"eq": True}}) == {"B"}
    assert await flow_keys(flows, w, deployment={"name": {"like": f"dc-{w.unique}"}}) == {"C"}
    # Through the deployments' queues, not the runs': B's run b1 is on P2, but B's
    # deployment is on no pool.
    assert await flow_keys(flows, w, work_pool={"name": {"any": [w.pools["P1"]]}}) == {"A"}
    assert await flow_keys(flows, w, work_pool={"type": {"any": ["process"]}}) == {"C"}
    assert await flow_keys(flows, w, work_pool={}) == {"A", "C"}
    # Both on the same deployment.
    assert (
        await flow_keys(flows, w, deployment={"tags": {"any": ["prod"]}}, work_pool={"type": {"any": ["process"]}})
        == set()
    )
    assert await flow_keys(
        flows,
        w,
        deployment={"name": {"any": [f"dA-{w.unique}", f"dC-{w.unique}"]}},
        work_pool={"type": {"any": ["docker"]}},
    ) == {"A"}


async def test_flows_by_task_run_and_flow_run(flows, world):
    w = world
    assert await flow_keys(flows, w, task_run={}) == {"A", "B"}
    assert await flow_keys(flows, w, task_run={"name": {"any": ["load"]}}) == {"B"}
    assert await flow_keys(flows, w, task_run={"subflow_runs": {"exists": True}}) == {"B"}
    # The flow-run and task-run filters hold for the same run: a2 has no task run.
    assert await flow_keys(flows, w, flow_run={"id": {"any": [w.runs["a2"]]}}, task_run={}) == set()
    assert await flow_keys(flows, w, flow_run={"id": {"any": [w.runs["a1"]]}}, task_run={}) == {"A"}
    assert await flow_keys(flows, w, flow_run={"parent_task_run_id": {"is_null": False}}) == {"C"}
    assert await flow_keys(
        flows,
        w,
        flow={"name": {"like": f"xflow-b-{w.unique}"}, "tags": {"is_null": True}},
        flow_run={"deployment_id": {"is_null": False}},
        task_run={"state": {"type": {"not_any": ["STATE_TYPE_COMPLETED"]}}},
        deployment={"paused": {"eq": True}},
    ) == {"B"}


async def test_deleting_flows_drops_them_from_deployment_filters(flows, own_world):
    w = own_world
    await flows.DeleteFlows(flows_pb.DeleteFlowsRequest(flow_ids=[w.flows["C"]]))
    assert await flow_keys(flows, w, deployment={}) == {"A", "B"}
