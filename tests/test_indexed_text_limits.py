"""Text that PostgreSQL indexes is bounded in bytes, so that no client text is INTERNAL:
a B-tree index entry holds at most about 2,700 bytes, and incompressible text beyond that
(1,000 characters of 4-byte UTF-8 fit the old character limits) failed the INSERT on
PostgreSQL while SQLite stored it. Both databases now answer INVALID_ARGUMENT alike."""

from __future__ import annotations

import random

import grpc
import pytest

from flowrun.v1 import flow_run_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.helpers.rich_errors import expect_error


def noise(characters: int) -> str:
    """Incompressible text of 4-byte UTF-8 characters."""
    draw = random.Random(characters)
    return "".join(chr(0x20000 + draw.randrange(40_000)) for _ in range(characters))


async def create_run(runs, flow_id: str, **fields):
    return await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id, **fields))


async def create_task(app, run_id: str, **fields):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        request = tasks_pb.CreateTaskRunRequest(flow_run_id=run_id, **fields)
        return await task_run_service_pb2_grpc.TaskRunServiceStub(channel).CreateTaskRun(request)


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("flow_version", lambda app, runs, flow_id, run_id: create_run(runs, flow_id, flow_version=noise(1_000))),
        ("work_queue_name", lambda app, runs, flow_id, run_id: create_run(runs, flow_id, work_queue_name=noise(1_000))),
        ("idempotency_key", lambda app, runs, flow_id, run_id: create_run(runs, flow_id, idempotency_key=noise(1_000))),
        (
            "flow_run.flow_version",
            lambda app, runs, flow_id, run_id: runs.UpdateFlowRun(
                runs_pb.UpdateFlowRunRequest(
                    flow_run=flow_run_pb2.FlowRun(id=run_id, flow_version=noise(1_000)),
                    update_mask={"paths": ["flow_version"]},
                )
            ),
        ),
        ("task_key", lambda app, runs, flow_id, run_id: create_task(app, run_id, task_key=noise(1_000))),
        (
            "dynamic_key",
            lambda app, runs, flow_id, run_id: create_task(app, run_id, task_key="t", dynamic_key=noise(999)),
        ),
    ],
)
async def test_indexed_text_over_its_byte_limit_is_invalid_on_both_databases(served, unique, field, call):
    app, flows, runs = await served()
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"indexed-{unique}"))).flow
    run = (await create_run(runs, flow.id)).flow_run
    error = await expect_error(call(app, runs, flow.id, run.id))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "bytes" in error.field_violations[field]


async def test_text_at_the_limits_is_stored(served, unique):
    app, flows, runs = await served()
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"indexed-{unique}"))).flow
    key = noise(250)  # 1,000 bytes
    run = (await create_run(runs, flow.id, idempotency_key=key, flow_version="v" * 1_000)).flow_run
    assert (await create_run(runs, flow.id, idempotency_key=key)).flow_run.id == run.id
    task = await create_task(app, run.id, task_key=noise(250), dynamic_key=noise(250))
    assert task.created
