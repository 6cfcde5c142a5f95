"""The Python client and the `flowrun` command line against a real server."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from flowrun.client import FlowrunClient, InvalidArgumentError, NotFoundError, cli
from flowrun.v1 import deployment_pb2, filters_pb2, state_pb2, task_run_pb2


@pytest.fixture
async def client(app):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        yield client


async def test_client_drives_a_run_and_pages(client, unique):
    flow, created = await client.create_flow(f"client-{unique}", tags=[unique], labels={"team": "data"})
    assert created and await client.get_flow_labels(flow.id) == {"team": "data"}
    run_ids = set()
    for index in range(5):
        run, _ = await client.create_flow_run(flow.id, tags=[unique], parameters={"n": index})
        run_ids.add(run.id)
    result = await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_RUNNING, transition_id=str(uuid.uuid4()))
    assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
    run_filter = filters_pb2.FlowRunFilter(tags=filters_pb2.TagsFilter(all=[unique]))
    seen = [item.id async for item in client.iter_flow_runs(flow_run_filter=run_filter, page_size=2)]
    assert sorted(seen) == sorted(run_ids)
    assert await client.count_flow_runs(flow_run_filter=run_filter) == 5
    updated = await client.update_flow_run(run.id, name=f"renamed-{unique}", tags=["x"])
    assert (updated.name, list(updated.tags)) == (f"renamed-{unique}", ["x"])


async def test_client_errors_keep_code_reason_and_fields(client):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as not_found:
        await client.get_flow_run(missing)
    assert not_found.value.code == grpc.StatusCode.NOT_FOUND
    assert not_found.value.reason == "FLOW_RUN_NOT_FOUND"
    assert not_found.value.metadata == {"flow_run_id": missing}
    with pytest.raises(InvalidArgumentError) as invalid:
        await client.get_flow("nope")
    ((field, description),) = invalid.value.field_violations
    assert field == "flow_id" and description.startswith("must be a UUID") and "'nope'" in description


async def test_client_drives_deployments_and_renews_a_lease(client, unique):
    flow, _ = await client.create_flow(f"client-deploy-{unique}")
    deployment = await client.create_deployment(
        flow.id,
        "limited",
        version="v1",
        tags=[unique],
        parameters={"n": 1},
        concurrency_limit=1,
        collision_strategy=deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW,
        grace_period_seconds=120,
    )
    assert (deployment.flow_id, deployment.name, deployment.concurrency_limit) == (flow.id, "limited", 1)
    assert deployment.concurrency_options.collision_strategy == deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW
    assert deployment.concurrency_options.grace_period.seconds == 120
    assert (await client.get_deployment(deployment.id)).version == "v1"
    by_tag = filters_pb2.DeploymentFilter(tags=filters_pb2.TagsFilter(all=[unique]))
    listed, next_page_token = await client.list_deployments(deployment_filter=by_tag)
    assert ([item.id for item in listed], next_page_token) == ([deployment.id], "")

    scheduled = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    run, _ = await client.create_flow_run(flow.id, deployment_id=deployment.id, state=scheduled)
    outcome = await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_PENDING)
    assert outcome.status == state_pb2.SET_STATE_STATUS_ACCEPT
    lease_id = outcome.state.state_details.deployment_concurrency_lease_id
    assert lease_id and (await client.get_deployment(deployment.id)).active_slots == 1
    renewed = await client.renew_concurrency_lease(lease_id)
    assert renewed.ttl.seconds == 120 and renewed.HasField("expiration")

    await client.delete_deployment(deployment.id)
    with pytest.raises(NotFoundError) as not_found:
        await client.get_deployment(deployment.id)
    assert not_found.value.reason == "DEPLOYMENT_NOT_FOUND"
    assert (await client.list_deployments(deployment_filter=by_tag)) == ([], "")


async def test_client_drives_work_pools_and_queues(client, unique):
    pool_name = f"pool-{unique}"
    pool = await client.create_work_pool(pool_name, type="docker", description="d", concurrency_limit=3)
    assert (pool.name, pool.type, pool.concurrency_limit) == (pool_name, "docker", 3) and pool.default_queue_id
    queue = await client.create_work_queue(pool_name, "gpu", priority=5, concurrency_limit=2, description="g")
    assert (queue.work_pool_id, queue.work_pool_name, queue.priority) == (pool.id, pool_name, 5)
    assert (await client.get_work_pool(pool_name)).id == pool.id
    assert (await client.get_work_queue(pool_name, "gpu")).id == queue.id
    by_name = filters_pb2.WorkPoolFilter(name=filters_pb2.StringFilter(any=[pool_name]))
    pools, next_page_token = await client.list_work_pools(work_pool_filter=by_name)
    assert ([item.id for item in pools], next_page_token) == ([pool.id], "")
    queues, next_page_token = await client.list_work_queues(pool_name)
    assert (sorted(item.name for item in queues), next_page_token) == (["default", "gpu"], "")
    only_gpu = filters_pb2.WorkQueueFilter(name=filters_pb2.StringFilter(startswith=["g"]))
    assert [item.id for item in (await client.list_work_queues(pool_name, work_queue_filter=only_gpu))[0]] == [queue.id]

    flow, _ = await client.create_flow(f"client-pool-{unique}")
    run, _ = await client.create_flow_run(flow.id, work_pool_name=pool_name, work_queue_name="gpu")
    assert (run.work_pool_name, run.work_queue_name) == (pool_name, "gpu")
    assert (await client.get_flow_run(run.id)).work_pool_name == pool_name

    await client.delete_work_queue(pool_name, "gpu")
    with pytest.raises(NotFoundError):
        await client.get_work_queue(pool_name, "gpu")
    await client.delete_work_pool(pool_name)
    with pytest.raises(NotFoundError) as not_found:
        await client.get_work_pool(pool_name)
    assert not_found.value.reason == "WORK_POOL_NOT_FOUND"
    assert not_found.value.metadata == {"work_pool_name": pool_name}
    with pytest.raises(NotFoundError) as not_found:
        await client.list_work_queues(pool_name)
    assert not_found.value.reason == "WORK_POOL_NOT_FOUND"


async def test_client_drives_task_runs(client, unique):
    flow, _ = await client.create_flow(f"client-tasks-{unique}")
    run, _ = await client.create_flow_run(flow.id, parameters={"limit": 3})
    upstream, created = await client.create_task_run(run.id, "extract")
    assert created and upstream.state_type == state_pb2.STATE_TYPE_PENDING
    inputs = {
        "rows": [task_run_pb2.TaskRunInput(task_run_id=upstream.id)],
        "limit": [task_run_pb2.TaskRunInput(parameter="limit")],
    }
    task_run, created = await client.create_task_run(
        run.id, "load", dynamic_key="0", name="load-0", task_inputs=inputs, tags=[unique], labels={"k": "v"}
    )
    assert created and task_run.name == "load-0"
    assert [item.task_run_id for item in task_run.task_inputs["rows"].inputs] == [upstream.id]
    again, created = await client.create_task_run(run.id, "load", dynamic_key="0", name="other")
    assert not created and (again.id, again.name) == (task_run.id, "load-0")
    fetched = await client.get_task_run(task_run.id)
    assert (fetched.flow_run_id, fetched.task_key, fetched.dynamic_key) == (run.id, "load", "0")

    by_run = filters_pb2.TaskRunFilter(flow_run_id=filters_pb2.IdFilter(any=[run.id]))
    listed, next_page_token = await client.list_task_runs(
        task_run_filter=by_run, sort=filters_pb2.TASK_RUN_SORT_NAME_ASC
    )
    assert ([item.id for item in listed], next_page_token) == ([upstream.id, task_run.id], "")
    first, next_page_token = await client.list_task_runs(task_run_filter=by_run, page_size=1)
    rest, last_token = await client.list_task_runs(task_run_filter=by_run, page_size=1, page_token=next_page_token)
    assert len(first) == len(rest) == 1 and next_page_token and not last_token
    assert {first[0].id, rest[0].id} == {upstream.id, task_run.id}

    result = await client.set_task_run_state(task_run.id, state_pb2.STATE_TYPE_RUNNING, name="Running")
    assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
    assert result.state.type == state_pb2.STATE_TYPE_RUNNING
    running = await client.get_task_run(task_run.id)
    assert (running.state_type, running.run_count) == (state_pb2.STATE_TYPE_RUNNING, 1)


async def test_command_line(app, unique, capsys):
    target = f"127.0.0.1:{app.port}"
    assert await asyncio.to_thread(cli.main, ["--target", target, "flow", "create", f"cli-{unique}"]) == 0
    flow = json.loads(capsys.readouterr().out)["flow"]
    assert await asyncio.to_thread(cli.main, ["--target", target, "run", "create", flow["id"]]) == 0
    run = json.loads(capsys.readouterr().out)["flow_run"]
    code = await asyncio.to_thread(cli.main, ["--target", target, "run", "set-state", run["id"], "running"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SET_STATE_STATUS_ACCEPT"
    code = await asyncio.to_thread(cli.main, ["--target", target, "run", "get", "not-a-uuid"])
    assert code == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
