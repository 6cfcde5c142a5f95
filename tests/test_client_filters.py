"""FlowrunClient passes every filter the list and count RPCs take: the task-run,
deployment, work-pool and work-queue filters narrow flows and runs in list_*, iter_* and
count_* alike (each case fails if the client drops that argument)."""

from __future__ import annotations

import uuid

import pytest

from flowrun.client import FlowrunClient
from flowrun.v1 import filters_pb2


@pytest.fixture(scope="module")
async def client(app):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        yield client


@pytest.fixture(scope="module")
def unique() -> str:
    """One suffix for the module: its world is built once per backend and only read."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
async def world(client, unique):
    """Two tagged flows: `with_all` has a deployment on a pool, a run on another pool's queue and a task
    run; `bare` has one plain run. Every run carries the tag too."""
    with_all, _ = await client.create_flow(f"all-{unique}", tags=[unique])
    bare, _ = await client.create_flow(f"bare-{unique}", tags=[unique])
    await client.create_work_pool(f"dpool-{unique}")
    deployment = await client.create_deployment(with_all.id, f"dep-{unique}", work_pool_name=f"dpool-{unique}")
    pool = await client.create_work_pool(f"pool-{unique}")
    await client.create_work_queue(pool.name, f"queue-{unique}")
    deployed, _ = await client.create_flow_run(with_all.id, deployment_id=deployment.id, tags=[unique])
    queued, _ = await client.create_flow_run(
        with_all.id, work_pool_name=pool.name, work_queue_name=f"queue-{unique}", tags=[unique]
    )
    tasked, _ = await client.create_flow_run(with_all.id, tags=[unique])
    await client.create_task_run(tasked.id, f"task-{unique}", name=f"task-{unique}")
    plain, _ = await client.create_flow_run(bare.id, tags=[unique])
    return {
        "flows": {"with_all": with_all.id, "bare": bare.id},
        "runs": {"deployed": deployed.id, "queued": queued.id, "tasked": tasked.id, "plain": plain.id},
        "filters": {
            "deployment_filter": filters_pb2.DeploymentFilter(name=filters_pb2.StringFilter(any=[f"dep-{unique}"])),
            "work_pool_filter": filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(any=[f"pool-{unique}"])),
            "work_queue_filter": filters_pb2.WorkQueueFilter(name=filters_pb2.StringFilter(any=[f"queue-{unique}"])),
            "task_run_filter": filters_pb2.TaskRunFilter(name=filters_pb2.StringFilter(any=[f"task-{unique}"])),
            # A flow is on a pool through its deployments (as in the reference).
            "deployment_pool": filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(any=[f"dpool-{unique}"])),
        },
    }


RUN_CASES = {
    "deployment_filter": ["deployed"],
    "work_pool_filter": ["queued"],
    "work_queue_filter": ["queued"],
    "task_run_filter": ["tasked"],
}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
async def test_flow_run_filters_reach_the_server(client, world, unique, name):
    tagged = filters_pb2.FlowRunFilter(tags=filters_pb2.TagsFilter(all=[unique]))
    arguments = {"flow_run_filter": tagged, name: world["filters"][name]}
    expected = sorted(world["runs"][key] for key in RUN_CASES[name])
    runs, _ = await client.list_flow_runs(**arguments)
    assert sorted(run.id for run in runs) == expected
    assert sorted([run.id async for run in client.iter_flow_runs(**arguments, page_size=1)]) == expected
    assert await client.count_flow_runs(**arguments) == len(expected)
    assert await client.count_flow_runs(flow_run_filter=tagged) == 4


FLOW_CASES = ["deployment_filter", "work_pool_filter", "task_run_filter"]


@pytest.mark.parametrize("name", FLOW_CASES)
async def test_flow_filters_reach_the_server(client, world, unique, name):
    tagged = filters_pb2.FlowFilter(tags=filters_pb2.TagsFilter(all=[unique]))
    arguments = {
        "flow_filter": tagged,
        name: world["filters"]["deployment_pool" if name == "work_pool_filter" else name],
    }
    flows, _ = await client.list_flows(**arguments)
    assert [flow.id for flow in flows] == [world["flows"]["with_all"]]
    assert [flow.id async for flow in client.iter_flows(**arguments)] == [world["flows"]["with_all"]]
    assert await client.count_flows(**arguments) == 1
    assert await client.count_flows(flow_filter=tagged) == 2


async def test_every_paged_list_has_an_iterator(client, world, unique):
    pool = f"pool-{unique}"
    deployments = [
        d.name async for d in client.iter_deployments(deployment_filter=world["filters"]["deployment_filter"])
    ]
    assert deployments == [f"dep-{unique}"]
    pools = [p.name async for p in client.iter_work_pools(work_pool_filter=world["filters"]["work_pool_filter"])]
    assert pools == [pool]
    assert sorted([q.name async for q in client.iter_work_queues(pool, page_size=1)]) == ["default", f"queue-{unique}"]
    tasks = [t.name async for t in client.iter_task_runs(task_run_filter=world["filters"]["task_run_filter"])]
    assert tasks == [f"task-{unique}"]
    states = [s.type async for s in client.iter_flow_run_states(world["runs"]["plain"], page_size=1)]
    assert len(states) == 1


def test_every_filter_and_sort_of_a_request_is_a_parameter():
    """A filter added to a List/Count request later must reach the client's methods too."""
    import inspect

    from flowrun.v1 import (
        deployment_service_pb2,
        flow_run_service_pb2,
        flow_service_pb2,
        task_run_service_pb2,
        work_pool_service_pb2,
    )

    requests = {
        ("list_flows", "iter_flows"): flow_service_pb2.ListFlowsRequest,
        ("count_flows",): flow_service_pb2.CountFlowsRequest,
        ("list_flow_runs", "iter_flow_runs"): flow_run_service_pb2.ListFlowRunsRequest,
        ("count_flow_runs",): flow_run_service_pb2.CountFlowRunsRequest,
        ("list_task_runs", "iter_task_runs"): task_run_service_pb2.ListTaskRunsRequest,
        ("list_deployments", "iter_deployments"): deployment_service_pb2.ListDeploymentsRequest,
        ("list_work_pools", "iter_work_pools"): work_pool_service_pb2.ListWorkPoolsRequest,
        ("list_work_queues", "iter_work_queues"): work_pool_service_pb2.ListWorkQueuesRequest,
    }
    for methods, request in requests.items():
        wanted = {field.name for field in request.DESCRIPTOR.fields if field.name.endswith("_filter")}
        wanted |= {"sort"} & set(request.DESCRIPTOR.fields_by_name)
        assert wanted, request
        for method in methods:
            parameters = set(inspect.signature(getattr(FlowrunClient, method)).parameters)
            assert wanted <= parameters, (method, wanted - parameters)
