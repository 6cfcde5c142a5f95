"""DeploymentService and WorkPoolService through the generated stubs, and what they
change about flow runs: queueing a run on a pool or queue by name, reads showing the
run's queue and pool, deployment labels and versions on runs, and what deletes leave
behind (spec 1.10, 1.12, 2.1, 2.2, 5.2).

Concurrency leases are created by the slot rules (a run of a limited deployment entering
PENDING); tests/test_concurrency_slots.py covers taking, freeing and reaping them. Here:
what RenewConcurrencyLease and active_slots show for a live, an unknown and an expired
lease."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct

from flowrun.server.app import build_app
from flowrun.server.error_mapping import DOMAIN
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2_grpc,
    filters_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2_grpc,
    state_pb2,
    work_pool_service_pb2_grpc,
)
from flowrun.v1 import deployment_service_pb2 as dep_pb
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import work_pool_service_pb2 as pools_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error


@pytest.fixture(scope="session")
def deployments(channel) -> deployment_service_pb2_grpc.DeploymentServiceStub:
    return deployment_service_pb2_grpc.DeploymentServiceStub(channel)


@pytest.fixture(scope="session")
def pools(channel) -> work_pool_service_pb2_grpc.WorkPoolServiceStub:
    return work_pool_service_pb2_grpc.WorkPoolServiceStub(channel)


def struct(**values) -> Struct:
    message = Struct()
    message.update(values)
    return message


async def new_flow(flows, name: str, **labels) -> str:
    response = await flows.CreateFlow(flows_pb.CreateFlowRequest(name=name, labels=struct(**labels)))
    return response.flow.id


async def new_pool(pools, name: str, **fields):
    return (await pools.CreateWorkPool(pools_pb.CreateWorkPoolRequest(name=name, **fields))).work_pool


async def new_queue(pools, pool_name: str, name: str, **fields):
    request = pools_pb.CreateWorkQueueRequest(work_pool_name=pool_name, name=name, **fields)
    return (await pools.CreateWorkQueue(request)).work_queue


async def new_deployment(deployments, flow_id: str, name: str, **fields):
    request = dep_pb.CreateDeploymentRequest(flow_id=flow_id, name=name, **fields)
    return (await deployments.CreateDeployment(request)).deployment


async def new_run(runs, flow_id: str, **fields):
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id, **fields))).flow_run


async def get_run(runs, run_id: str):
    return (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run


async def list_all(call, request, field: str, page_size: int) -> list:
    """Follows next_page_token to the end; every page but the last is full."""
    items, pages = [], []
    while True:
        response = await call(request)
        page = list(getattr(response, field))
        pages.append(len(page))
        items += page
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert all(size == page_size for size in pages[:-1]), pages
    return items


# -- work pools -------------------------------------------------------------------------


async def test_create_work_pool_with_its_default_queue(pools, unique):
    pool = await new_pool(pools, f"pool-{unique}", description="cpu boxes", concurrency_limit=3)
    uuid.UUID(pool.id)
    assert (pool.name, pool.type, pool.description, pool.is_paused) == (f"pool-{unique}", "process", "cpu boxes", False)
    assert pool.HasField("concurrency_limit") and pool.concurrency_limit == 3
    assert pool.created.ToDatetime() == pool.updated.ToDatetime()

    fetched = (await pools.GetWorkPool(pools_pb.GetWorkPoolRequest(name=pool.name))).work_pool
    assert fetched == pool
    default = (
        await pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=pool.name, name="default"))
    ).work_queue
    assert default.id == pool.default_queue_id
    assert (default.priority, default.work_pool_id, default.work_pool_name) == (1, pool.id, pool.name)
    assert not default.HasField("concurrency_limit")

    other = await new_pool(pools, f"k8s-{unique}", type="kubernetes", is_paused=True)
    assert (other.type, other.is_paused, other.HasField("concurrency_limit")) == ("kubernetes", True, False)


async def test_create_work_pool_twice_is_already_exists(pools, unique):
    name = f"dup-{unique}"
    first = await new_pool(pools, name)
    error = await expect_error(pools.CreateWorkPool(pools_pb.CreateWorkPoolRequest(name=name, type="docker")))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert (error.reason, error.domain, error.metadata) == ("ALREADY_EXISTS", DOMAIN, {"work_pool_name": name})
    # Nothing changed, and the pool still has exactly one queue.
    assert (await pools.GetWorkPool(pools_pb.GetWorkPoolRequest(name=name))).work_pool == first
    queues = await pools.ListWorkQueues(pools_pb.ListWorkQueuesRequest(work_pool_name=name))
    assert [queue.name for queue in queues.work_queues] == ["default"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok-{unique}", "concurrency_limit": -1}, "concurrency_limit"),
    ],
)
async def test_create_work_pool_rejects_bad_input(pools, unique, request_fields, field):
    fields = {
        key: value.format(unique=unique) if isinstance(value, str) else value for key, value in request_fields.items()
    }
    error = await expect_error(pools.CreateWorkPool(pools_pb.CreateWorkPoolRequest(**fields)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.field_violations


async def test_get_and_delete_missing_work_pool(pools, unique):
    for call in (
        pools.GetWorkPool(pools_pb.GetWorkPoolRequest(name=f"none-{unique}")),
        pools.DeleteWorkPool(pools_pb.DeleteWorkPoolRequest(name=f"none-{unique}")),
    ):
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.NOT_FOUND
        assert (error.reason, error.metadata) == ("WORK_POOL_NOT_FOUND", {"work_pool_name": f"none-{unique}"})
    error = await expect_error(pools.GetWorkPool(pools_pb.GetWorkPoolRequest()))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "name" in error.field_violations


async def test_list_work_pools_filters_and_pages_by_name(pools, unique):
    names = [f"lp-{unique}-{suffix}" for suffix in ("e", "B", "a", "c", "D")]
    created = {
        name: await new_pool(pools, name, type="docker" if name.endswith(("a", "c")) else "process") for name in names
    }
    await new_pool(pools, f"other-{unique}")
    by_prefix = filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(startswith=[f"LP-{unique}"]))

    listed = await list_all(
        pools.ListWorkPools, pools_pb.ListWorkPoolsRequest(work_pool_filter=by_prefix, page_size=2), "work_pools", 2
    )
    assert [pool.name for pool in listed] == sorted(names)  # byte order: upper case first

    docker = filters_pb2.WorkPoolFilter(
        name=filters_pb2.StringFilter(startswith=[f"lp-{unique}"]), type=filters_pb2.StringFilter(any=["docker"])
    )
    response = await pools.ListWorkPools(pools_pb.ListWorkPoolsRequest(work_pool_filter=docker))
    assert [pool.name for pool in response.work_pools] == [f"lp-{unique}-a", f"lp-{unique}-c"]
    by_id = filters_pb2.WorkPoolFilter(id=filters_pb2.IdFilter(any=[created[names[0]].id]))
    response = await pools.ListWorkPools(pools_pb.ListWorkPoolsRequest(work_pool_filter=by_id))
    assert [pool.name for pool in response.work_pools] == [names[0]]

    first = await pools.ListWorkPools(pools_pb.ListWorkPoolsRequest(work_pool_filter=by_prefix, page_size=1))
    error = await expect_error(
        pools.ListWorkPools(
            pools_pb.ListWorkPoolsRequest(work_pool_filter=docker, page_size=1, page_token=first.next_page_token)
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    error = await expect_error(pools.ListWorkPools(pools_pb.ListWorkPoolsRequest(page_size=-1)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in error.field_violations
    error = await expect_error(
        pools.ListWorkPools(
            pools_pb.ListWorkPoolsRequest(
                work_pool_filter=filters_pb2.WorkPoolFilter(id=filters_pb2.IdFilter(any=["x"]))
            )
        )
    )
    assert "work_pool_filter.id.any[0]" in error.field_violations


# -- work queues ------------------------------------------------------------------------


async def test_work_queues_create_get_and_errors(pools, unique):
    pool = await new_pool(pools, f"wq-{unique}")
    queue = await new_queue(pools, pool.name, "gpu", priority=5, concurrency_limit=2, description="big", is_paused=True)
    assert (queue.name, queue.priority, queue.concurrency_limit, queue.description, queue.is_paused) == (
        "gpu",
        5,
        2,
        "big",
        True,
    )
    assert (queue.work_pool_id, queue.work_pool_name) == (pool.id, pool.name)
    got = (await pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=pool.name, name="gpu"))).work_queue
    assert got == queue
    assert (await new_queue(pools, pool.name, "cheap")).priority == 1  # 0 means highest

    error = await expect_error(
        pools.CreateWorkQueue(pools_pb.CreateWorkQueueRequest(work_pool_name=pool.name, name="gpu"))
    )
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert (error.reason, error.metadata) == ("ALREADY_EXISTS", {"work_pool_name": pool.name, "work_queue_name": "gpu"})
    # The same queue name in another pool is fine.
    other = await new_pool(pools, f"wq2-{unique}")
    assert (await new_queue(pools, other.name, "gpu")).work_pool_id == other.id

    error = await expect_error(
        pools.CreateWorkQueue(pools_pb.CreateWorkQueueRequest(work_pool_name=f"no-{unique}", name="q"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")
    error = await expect_error(pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=pool.name, name="nope")))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_QUEUE_NOT_FOUND")
    assert error.metadata == {"work_pool_name": pool.name, "work_queue_name": "nope"}
    error = await expect_error(
        pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=f"no-{unique}", name="q"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")
    error = await expect_error(pools.CreateWorkQueue(pools_pb.CreateWorkQueueRequest(name="q", priority=-1)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"work_pool_name", "priority"} <= set(error.field_violations)
    error = await expect_error(pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=pool.name)))
    assert "name" in error.field_violations


async def test_list_work_queues_by_priority_then_name(pools, unique):
    pool = await new_pool(pools, f"lq-{unique}")
    for name, priority in (("b", 2), ("a", 10), ("c", 2), ("Z", 9), ("d", 1)):
        await new_queue(pools, pool.name, name, priority=priority)
    listed = await list_all(
        pools.ListWorkQueues, pools_pb.ListWorkQueuesRequest(work_pool_name=pool.name, page_size=2), "work_queues", 2
    )
    # Numeric priority order (10 after 9), then names byte-wise.
    assert [(queue.priority, queue.name) for queue in listed] == [
        (1, "d"),
        (1, "default"),
        (2, "b"),
        (2, "c"),
        (9, "Z"),
        (10, "a"),
    ]
    by_prefix = filters_pb2.WorkQueueFilter(name=filters_pb2.StringFilter(startswith=["D", "z"]))
    response = await pools.ListWorkQueues(
        pools_pb.ListWorkQueuesRequest(work_pool_name=pool.name, work_queue_filter=by_prefix)
    )
    assert [queue.name for queue in response.work_queues] == ["d", "default", "Z"]
    error = await expect_error(pools.ListWorkQueues(pools_pb.ListWorkQueuesRequest(work_pool_name=f"no-{unique}")))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")


async def test_startswith_treats_like_wildcards_literally(pools, unique):
    pool = await new_pool(pools, f"esc-{unique}")
    for name in ("a_b", "axb", "a\\c", "abc"):  # names cannot hold "%"
        await new_queue(pools, pool.name, name)
    for prefix, expected in (("a_", ["a_b"]), ("A\\", ["a\\c"]), ("a", ["a\\c", "a_b", "abc", "axb"])):
        f = filters_pb2.WorkQueueFilter(name=filters_pb2.StringFilter(startswith=[prefix]))
        response = await pools.ListWorkQueues(
            pools_pb.ListWorkQueuesRequest(work_pool_name=pool.name, work_queue_filter=f)
        )
        assert [queue.name for queue in response.work_queues] == expected, prefix


# -- flow runs on pools and queues -------------------------------------------------------


async def test_create_flow_run_on_a_pool_and_queue(flows, runs, pools, unique):
    flow_id = await new_flow(flows, f"queued-{unique}")
    pool = await new_pool(pools, f"runs-{unique}")
    gpu = await new_queue(pools, pool.name, "gpu")

    on_default = await new_run(runs, flow_id, work_pool_name=pool.name)
    assert (on_default.work_queue_id, on_default.work_queue_name) == (pool.default_queue_id, "default")
    assert (on_default.work_pool_id, on_default.work_pool_name) == (pool.id, pool.name)

    on_gpu = await new_run(runs, flow_id, work_pool_name=pool.name, work_queue_name="gpu")
    assert (on_gpu.work_queue_id, on_gpu.work_queue_name, on_gpu.work_pool_name) == (gpu.id, "gpu", pool.name)

    unpooled = await new_run(runs, flow_id, work_queue_name="legacy")
    assert (unpooled.work_queue_id, unpooled.work_queue_name, unpooled.work_pool_id, unpooled.work_pool_name) == (
        "",
        "legacy",
        "",
        "",
    )

    # Every read shows the queue and pool: get, list, and the orchestrated write.
    assert (await get_run(runs, on_gpu.id)).work_pool_name == pool.name
    listed = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(flow_filter=filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=[flow_id])))
    )
    assert {(run.id, run.work_queue_name, run.work_pool_name) for run in listed.flow_runs} == {
        (on_default.id, "default", pool.name),
        (on_gpu.id, "gpu", pool.name),
        (unpooled.id, "legacy", ""),
    }
    outcome = await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=on_gpu.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
        )
    )
    assert outcome.status == state_pb2.SET_STATE_STATUS_ACCEPT
    after = await get_run(runs, on_gpu.id)
    assert (after.state.type, after.work_queue_id, after.work_pool_id) == (
        state_pb2.STATE_TYPE_RUNNING,
        gpu.id,
        pool.id,
    )


async def test_create_flow_run_on_missing_pool_or_queue_is_not_found(flows, runs, pools, unique):
    flow_id = await new_flow(flows, f"lost-{unique}")
    pool = await new_pool(pools, f"known-{unique}")
    error = await expect_error(
        runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id, work_pool_name=f"no-{unique}"))
    )
    assert (error.code, error.reason, error.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "WORK_POOL_NOT_FOUND",
        {"work_pool_name": f"no-{unique}"},
    )
    error = await expect_error(
        runs.CreateFlowRun(
            runs_pb.CreateFlowRunRequest(flow_id=flow_id, work_pool_name=f"no-{unique}", work_queue_name="q")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")
    error = await expect_error(
        runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id, work_pool_name=pool.name, work_queue_name="q"))
    )
    assert (error.code, error.reason, error.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "WORK_QUEUE_NOT_FOUND",
        {"work_pool_name": pool.name, "work_queue_name": "q"},
    )
    count = await runs.CountFlowRuns(
        runs_pb.CountFlowRunsRequest(flow_filter=filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=[flow_id])))
    )
    assert count.count == 0


async def test_delete_work_queue_takes_it_off_runs_and_deployments(flows, runs, pools, deployments, unique):
    flow_id = await new_flow(flows, f"dq-{unique}")
    pool = await new_pool(pools, f"dq-{unique}")
    await new_queue(pools, pool.name, "doomed")
    doomed_run = await new_run(runs, flow_id, work_pool_name=pool.name, work_queue_name="doomed")
    default_run = await new_run(runs, flow_id, work_pool_name=pool.name)
    deployment = await new_deployment(deployments, flow_id, "d", work_pool_name=pool.name, work_queue_name="doomed")

    error = await expect_error(
        pools.DeleteWorkQueue(pools_pb.DeleteWorkQueueRequest(work_pool_name=pool.name, name="default"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION")
    await pools.DeleteWorkQueue(pools_pb.DeleteWorkQueueRequest(work_pool_name=pool.name, name="doomed"))

    orphan = await get_run(runs, doomed_run.id)
    # The run keeps the queue name it was created with, and nothing else.
    assert (orphan.work_queue_id, orphan.work_queue_name, orphan.work_pool_id, orphan.work_pool_name) == (
        "",
        "doomed",
        "",
        "",
    )
    assert (await get_run(runs, default_run.id)).work_queue_id == pool.default_queue_id
    kept = (await deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=deployment.id))).deployment
    assert (kept.work_queue_id, kept.work_pool_name, kept.work_queue_name) == ("", "", "doomed")

    error = await expect_error(
        pools.DeleteWorkQueue(pools_pb.DeleteWorkQueueRequest(work_pool_name=pool.name, name="doomed"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_QUEUE_NOT_FOUND")
    error = await expect_error(
        pools.DeleteWorkQueue(pools_pb.DeleteWorkQueueRequest(work_pool_name=f"no-{unique}", name="x"))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")


async def test_delete_work_pool_takes_its_queues_off_runs_and_deployments(flows, runs, pools, deployments, unique):
    flow_id = await new_flow(flows, f"dp-{unique}")
    pool = await new_pool(pools, f"dp-{unique}")
    survivor = await new_pool(pools, f"dp-keep-{unique}")
    await new_queue(pools, pool.name, "extra")
    on_default = await new_run(runs, flow_id, work_pool_name=pool.name)
    on_extra = await new_run(runs, flow_id, work_pool_name=pool.name, work_queue_name="extra")
    elsewhere = await new_run(runs, flow_id, work_pool_name=survivor.name)
    deployment = await new_deployment(deployments, flow_id, "d", work_pool_name=pool.name)
    assert (deployment.work_pool_name, deployment.work_queue_name) == (pool.name, "default")

    await pools.DeleteWorkPool(pools_pb.DeleteWorkPoolRequest(name=pool.name))

    for run_id, stored_name in ((on_default.id, ""), (on_extra.id, "extra")):
        run = await get_run(runs, run_id)
        assert (run.work_queue_id, run.work_queue_name, run.work_pool_name) == ("", stored_name, "")
    assert (await get_run(runs, elsewhere.id)).work_pool_name == survivor.name
    kept = (await deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=deployment.id))).deployment
    assert (kept.work_queue_id, kept.work_pool_name) == ("", "")
    error = await expect_error(pools.GetWorkQueue(pools_pb.GetWorkQueueRequest(work_pool_name=pool.name, name="extra")))
    assert error.reason == "WORK_POOL_NOT_FOUND"
    error = await expect_error(pools.DeleteWorkPool(pools_pb.DeleteWorkPoolRequest(name=pool.name)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "WORK_POOL_NOT_FOUND")
    # The name is free again.
    assert (await new_pool(pools, pool.name)).id != pool.id


# -- deployments ------------------------------------------------------------------------


async def test_create_and_get_deployment(flows, deployments, pools, unique):
    flow_id = await new_flow(flows, f"dep-{unique}")
    pool = await new_pool(pools, f"dep-{unique}")
    gpu = await new_queue(pools, pool.name, "gpu")
    options = deployment_pb2.ConcurrencyOptions(
        collision_strategy=deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW, grace_period=Duration(seconds=120)
    )
    created = await new_deployment(
        deployments,
        flow_id,
        "nightly",
        version="1.2",
        work_pool_name=pool.name,
        work_queue_name="gpu",
        paused=True,
        tags=["etl", "nightly"],
        labels=struct(team="data", tier=1),
        parameters=struct(day="monday"),
        job_variables=struct(image="python:3.12"),
        concurrency_limit=2,
        concurrency_options=options,
    )
    uuid.UUID(created.id)
    assert (created.name, created.flow_id, created.version, created.paused) == ("nightly", flow_id, "1.2", True)
    assert (created.work_pool_name, created.work_queue_name, created.work_queue_id) == (pool.name, "gpu", gpu.id)
    assert list(created.tags) == ["etl", "nightly"]
    assert dict(created.labels) == {"team": "data", "tier": 1}
    assert dict(created.parameters) == {"day": "monday"}
    assert dict(created.job_variables) == {"image": "python:3.12"}
    assert created.HasField("concurrency_limit") and created.concurrency_limit == 2
    assert created.concurrency_options == options
    assert created.active_slots == 0
    fetched = (await deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=created.id))).deployment
    assert fetched == created

    plain = await new_deployment(deployments, flow_id, "plain")
    assert not plain.HasField("concurrency_limit")
    assert plain.concurrency_options.collision_strategy == deployment_pb2.COLLISION_STRATEGY_ENQUEUE
    assert not plain.concurrency_options.HasField("grace_period")
    assert (plain.work_pool_name, plain.work_queue_name, plain.work_queue_id, plain.version) == ("", "", "", "")
    legacy = await new_deployment(deployments, flow_id, "legacy", work_queue_name="old-queue")
    assert (legacy.work_pool_name, legacy.work_queue_name, legacy.work_queue_id) == ("", "old-queue", "")
    on_default = await new_deployment(deployments, flow_id, "on-default", work_pool_name=pool.name, concurrency_limit=0)
    assert (on_default.work_queue_id, on_default.work_queue_name) == (pool.default_queue_id, "default")
    assert on_default.HasField("concurrency_limit") and on_default.concurrency_limit == 0


async def test_create_deployment_twice_is_already_exists(flows, deployments, unique):
    flow_id = await new_flow(flows, f"dupdep-{unique}")
    other_flow_id = await new_flow(flows, f"dupdep2-{unique}")
    await new_deployment(deployments, flow_id, "prod")
    error = await expect_error(
        deployments.CreateDeployment(dep_pb.CreateDeploymentRequest(flow_id=flow_id, name="prod"))
    )
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert (error.reason, error.domain, error.metadata) == (
        "ALREADY_EXISTS",
        DOMAIN,
        {"flow_id": flow_id, "name": "prod"},
    )
    # Names are unique per flow only.
    assert (await new_deployment(deployments, other_flow_id, "prod")).flow_id == other_flow_id


async def test_create_deployment_not_found_cases(flows, deployments, pools, unique):
    flow_id = await new_flow(flows, f"nfdep-{unique}")
    pool = await new_pool(pools, f"nfdep-{unique}")
    missing_flow = str(uuid.uuid4())
    cases = [
        ({"flow_id": missing_flow}, "FLOW_NOT_FOUND"),
        ({"flow_id": flow_id, "work_pool_name": f"no-{unique}"}, "WORK_POOL_NOT_FOUND"),
        ({"flow_id": flow_id, "work_pool_name": pool.name, "work_queue_name": "nope"}, "WORK_QUEUE_NOT_FOUND"),
    ]
    for fields, reason in cases:
        error = await expect_error(deployments.CreateDeployment(dep_pb.CreateDeploymentRequest(name="d", **fields)))
        assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, reason), fields


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"flow_id": "nope", "name": "d"}, "flow_id"),
        ({"name": "d"}, "flow_id"),
        ({"name": ""}, "name"),
        ({"name": "a>b"}, "name"),
        ({"name": "d", "concurrency_limit": -1}, "concurrency_limit"),
        ({"name": "d", "grace": Duration(seconds=59)}, "concurrency_options.grace_period"),
        ({"name": "d", "grace": Duration(seconds=86401)}, "concurrency_options.grace_period"),
        ({"name": "d", "grace": Duration(seconds=90, nanos=5)}, "concurrency_options.grace_period"),
        ({"name": "d", "strategy": 7}, "concurrency_options.collision_strategy"),
        ({"name": "d", "labels": struct(nested={"a": 1})}, "labels.nested"),
    ],
)
async def test_create_deployment_rejects_bad_input(flows, deployments, unique, fields, field):
    fields = dict(fields)
    if "flow_id" not in fields and field != "flow_id":
        fields["flow_id"] = await new_flow(flows, f"baddep-{unique}")
    options = deployment_pb2.ConcurrencyOptions()
    if "grace" in fields:
        options.grace_period.CopyFrom(fields.pop("grace"))
    if "strategy" in fields:
        options.collision_strategy = fields.pop("strategy")
    error = await expect_error(
        deployments.CreateDeployment(dep_pb.CreateDeploymentRequest(concurrency_options=options, **fields))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.field_violations, error.field_violations


async def test_list_deployments_filters_and_pages(flows, deployments, pools, unique):
    alpha = await new_flow(flows, f"alpha-{unique}")
    beta = await new_flow(flows, f"beta-{unique}")
    pool = await new_pool(pools, f"ld-{unique}")
    made = {}
    for flow_id, name, fields in (
        (alpha, f"ld-{unique}-c", {"tags": ["x"], "paused": True}),
        (alpha, f"ld-{unique}-a", {"tags": ["x", "y"], "work_pool_name": pool.name}),
        (beta, f"ld-{unique}-b", {"work_queue_name": "legacy"}),
        (beta, f"ld-{unique}-A", {"paused": True}),
    ):
        made[name] = await new_deployment(deployments, flow_id, name, **fields)

    async def names(f: filters_pb2.DeploymentFilter, page_size: int = 0) -> list[str]:
        request = dep_pb.ListDeploymentsRequest(deployment_filter=f, page_size=page_size)
        return [d.name for d in await list_all(deployments.ListDeployments, request, "deployments", page_size or 200)]

    mine = filters_pb2.StringFilter(like=f"ld-{unique}")
    assert await names(filters_pb2.DeploymentFilter(name=mine), page_size=3) == sorted(made)
    assert await names(filters_pb2.DeploymentFilter(name=mine, paused=filters_pb2.BoolFilter(eq=True))) == [
        f"ld-{unique}-A",
        f"ld-{unique}-c",
    ]
    assert await names(filters_pb2.DeploymentFilter(name=mine, paused=filters_pb2.BoolFilter(eq=False))) == [
        f"ld-{unique}-a",
        f"ld-{unique}-b",
    ]
    assert await names(filters_pb2.DeploymentFilter(tags=filters_pb2.TagsFilter(all=["x", "y"]), name=mine)) == [
        f"ld-{unique}-a"
    ]
    by_flow_name = filters_pb2.DeploymentFilter(flow_or_deployment_name=filters_pb2.StringFilter(like=f"BETA-{unique}"))
    assert await names(by_flow_name) == [f"ld-{unique}-A", f"ld-{unique}-b"]
    by_own_name = filters_pb2.DeploymentFilter(flow_or_deployment_name=filters_pb2.StringFilter(like=f"{unique}-c"))
    assert await names(by_own_name) == [f"ld-{unique}-c"]
    queue_names = filters_pb2.DeploymentFilter(
        work_queue_name=filters_pb2.StringFilter(any=["legacy", "default"]), name=mine
    )
    assert await names(queue_names) == [f"ld-{unique}-a", f"ld-{unique}-b"]
    either = filters_pb2.DeploymentFilter(
        operator=filters_pb2.FILTER_OPERATOR_OR,
        id=filters_pb2.IdFilter(any=[made[f"ld-{unique}-c"].id]),
        name=filters_pb2.StringFilter(any=[f"ld-{unique}-b"]),
    )
    assert await names(either) == [f"ld-{unique}-b", f"ld-{unique}-c"]

    error = await expect_error(
        deployments.ListDeployments(
            dep_pb.ListDeploymentsRequest(
                deployment_filter=filters_pb2.DeploymentFilter(
                    flow_or_deployment_name=filters_pb2.StringFilter(any=["x"])
                )
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "deployment_filter.flow_or_deployment_name.any" in error.field_violations


async def test_delete_deployment_keeps_its_runs_readable(flows, runs, deployments, unique):
    flow_id = await new_flow(flows, f"deldep-{unique}")
    deployment = await new_deployment(deployments, flow_id, "gone", version="7")
    run = await new_run(runs, flow_id, deployment_id=deployment.id)

    await deployments.DeleteDeployment(dep_pb.DeleteDeploymentRequest(deployment_id=deployment.id))

    error = await expect_error(deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=deployment.id)))
    assert (error.code, error.reason, error.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "DEPLOYMENT_NOT_FOUND",
        {"deployment_id": deployment.id},
    )
    error = await expect_error(
        deployments.DeleteDeployment(dep_pb.DeleteDeploymentRequest(deployment_id=deployment.id))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "DEPLOYMENT_NOT_FOUND")
    kept = await get_run(runs, run.id)
    assert (kept.deployment_id, kept.deployment_version) == (deployment.id, "7")
    by_deployment = runs_pb.CountFlowRunsRequest(
        flow_run_filter=filters_pb2.FlowRunFilter(deployment_id=filters_pb2.IdFilter(any=[deployment.id]))
    )
    assert (await runs.CountFlowRuns(by_deployment)).count == 1
    error = await expect_error(deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id="123")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "deployment_id" in error.field_violations


async def test_runs_of_a_deployment_carry_its_labels_and_version(flows, runs, deployments, unique):
    flow_id = await new_flow(flows, f"labels-{unique}", owner="flow-team", shared="flow")
    deployment = await new_deployment(
        deployments, flow_id, "labelled", version="v3", labels=struct(env="prod", shared="deployment")
    )
    run = await new_run(runs, flow_id, deployment_id=deployment.id, labels=struct(env="staging", extra=True))
    assert run.deployment_version == "v3"
    # The deployment's labels replace the flow's; the run's own labels win.
    assert dict(run.labels) == {
        "env": "staging",
        "shared": "deployment",
        "extra": True,
        "prefect.flow.id": flow_id,
        "prefect.deployment.id": deployment.id,
    }
    dangling = str(uuid.uuid4())
    orphan = await new_run(runs, flow_id, deployment_id=dangling)
    assert (orphan.deployment_id, orphan.deployment_version) == (dangling, "")
    assert dict(orphan.labels) == {"owner": "flow-team", "shared": "flow", "prefect.flow.id": flow_id}


async def test_delete_flows_deletes_their_deployments(flows, runs, deployments, unique):
    doomed = await new_flow(flows, f"delflows-{unique}")
    single = await new_flow(flows, f"delflow-{unique}")
    kept = await new_flow(flows, f"keepflow-{unique}")
    doomed_deployments = [await new_deployment(deployments, doomed, name) for name in ("a", "b")]
    single_deployment = await new_deployment(deployments, single, "a")
    kept_deployment = await new_deployment(deployments, kept, "a")
    await new_run(runs, doomed, deployment_id=doomed_deployments[0].id)

    response = await flows.DeleteFlows(flows_pb.DeleteFlowsRequest(flow_ids=[doomed, str(uuid.uuid4())]))
    assert list(response.deleted_flow_ids) == [doomed]
    await flows.DeleteFlow(flows_pb.DeleteFlowRequest(flow_id=single))

    for deployment in (*doomed_deployments, single_deployment):
        error = await expect_error(deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=deployment.id)))
        assert error.reason == "DEPLOYMENT_NOT_FOUND"
    assert (await deployments.GetDeployment(dep_pb.GetDeploymentRequest(deployment_id=kept_deployment.id))).deployment
    listed = await deployments.ListDeployments(
        dep_pb.ListDeploymentsRequest(
            deployment_filter=filters_pb2.DeploymentFilter(
                id=filters_pb2.IdFilter(any=[d.id for d in (*doomed_deployments, single_deployment, kept_deployment)])
            )
        )
    )
    assert [d.id for d in listed.deployments] == [kept_deployment.id]


async def take_slot(flows, runs, deployments, unique: str, **deployment_fields) -> tuple[str, str]:
    """(deployment id, lease id): a run of a limited deployment enters PENDING."""
    flow_id = await new_flow(flows, f"lease-{unique}")
    deployment = await new_deployment(deployments, flow_id, "limited", concurrency_limit=1, **deployment_fields)
    scheduled = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    run = await new_run(runs, flow_id, deployment_id=deployment.id, state=scheduled)
    outcome = await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING)
        )
    )
    assert outcome.status == state_pb2.SET_STATE_STATUS_ACCEPT
    return deployment.id, outcome.state.state_details.deployment_concurrency_lease_id


async def test_renew_lease_by_the_deployment_grace_period(flows, runs, deployments, unique):
    grace = deployment_pb2.ConcurrencyOptions(grace_period=Duration(seconds=120))
    deployment_id, lease_id = await take_slot(flows, runs, deployments, unique, concurrency_options=grace)
    get = dep_pb.GetDeploymentRequest(deployment_id=deployment_id)
    assert (await deployments.GetDeployment(get)).deployment.active_slots == 1
    before = datetime.now(UTC)
    renewed = await deployments.RenewConcurrencyLease(dep_pb.RenewConcurrencyLeaseRequest(lease_id=lease_id))
    after = datetime.now(UTC)
    assert renewed.ttl == Duration(seconds=120)
    expiration = renewed.expiration.ToDatetime(tzinfo=UTC)
    assert before + timedelta(seconds=120) <= expiration <= after + timedelta(seconds=120)
    again = await deployments.RenewConcurrencyLease(dep_pb.RenewConcurrencyLeaseRequest(lease_id=lease_id))
    assert again.expiration.ToDatetime(tzinfo=UTC) >= expiration  # idempotent: extends again
    assert (await deployments.GetDeployment(get)).deployment.active_slots == 1


async def test_an_expired_lease_cannot_be_renewed(database_url, unique, move_clock):
    """Without a grace period the server default applies: 5 s here, which the server's
    clock moves past, and no reaper run before the renewal, so the expired lease row
    still exists."""
    settings = settings_for(database_url, deployment_lease_seconds=5, lease_reap_interval_seconds=3600)
    app = await build_app(settings)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
            deployment_id, lease_id = await take_slot(flows, runs, deployments, unique)
            get = dep_pb.GetDeploymentRequest(deployment_id=deployment_id)
            assert (await deployments.GetDeployment(get)).deployment.active_slots == 1
            move_clock(timedelta(seconds=6))
            error = await expect_error(
                deployments.RenewConcurrencyLease(dep_pb.RenewConcurrencyLeaseRequest(lease_id=lease_id))
            )
            assert (error.code, error.reason, error.metadata) == (
                grpc.StatusCode.NOT_FOUND,
                "LEASE_NOT_FOUND",
                {"lease_id": lease_id},
            )
            assert (await deployments.GetDeployment(get)).deployment.active_slots == 0
    finally:
        await app.stop(grace=0)


async def test_renew_unknown_lease_is_not_found(deployments):
    lease_id = str(uuid.uuid4())
    error = await expect_error(
        deployments.RenewConcurrencyLease(dep_pb.RenewConcurrencyLeaseRequest(lease_id=lease_id))
    )
    assert (error.code, error.reason, error.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
        {"lease_id": lease_id},
    )
    error = await expect_error(deployments.RenewConcurrencyLease(dep_pb.RenewConcurrencyLeaseRequest(lease_id="lease")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "lease_id" in error.field_violations


@pytest.mark.parametrize("target", ["queue", "pool"])
async def test_runs_created_while_their_queue_is_deleted_never_dangle(flows, runs, pools, unique, target):
    """Runs queued concurrently with the queue's (or pool's) deletion either fail with
    NOT_FOUND or end up on no queue: none keeps the id of a queue that no longer exists."""
    flow_id = await new_flow(flows, f"race-{target}-{unique}")
    pool = await new_pool(pools, f"race-{target}-{unique}")
    await new_queue(pools, pool.name, "busy")

    async def create():
        try:
            return await new_run(runs, flow_id, work_pool_name=pool.name, work_queue_name="busy")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
            return None

    async def delete():
        if target == "queue":
            await pools.DeleteWorkQueue(pools_pb.DeleteWorkQueueRequest(work_pool_name=pool.name, name="busy"))
        else:
            await pools.DeleteWorkPool(pools_pb.DeleteWorkPoolRequest(name=pool.name))

    before = [await create() for _ in range(2)]
    calls = [create() for _ in range(12)]
    calls.insert(4, delete())
    results = await asyncio.gather(*calls)
    created = [run for run in (*before, *results) if run is not None]
    for run in created:
        after = await get_run(runs, run.id)
        assert (after.work_queue_id, after.work_pool_id, after.work_queue_name) == ("", "", "busy")
