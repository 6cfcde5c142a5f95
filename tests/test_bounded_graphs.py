"""Bounded graph reads: GetTaskRunDependencies and GetFlowRunGraph's state list and
`since` cut stop at their limits and answer FAILED_PRECONDITION (TOO_LARGE) instead of
reading every row. A server of its own with tiny limits, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest

from flowrun.server.app import build_app
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc, state_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

LIMIT = 3


@pytest.fixture(scope="module")
async def stubs(database_url: str) -> AsyncIterator[tuple]:
    app = await build_app(settings_for(database_url, graph_max_nodes=LIMIT, graph_max_states=LIMIT))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield (
                flow_service_pb2_grpc.FlowServiceStub(channel),
                flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
                task_run_service_pb2_grpc.TaskRunServiceStub(channel),
            )
    finally:
        await app.stop(grace=0)


async def new_run(stubs, unique: str) -> str:
    flows, runs, _ = stubs
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"bounded-{unique}"))).flow
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run.id


async def add_tasks(stubs, run_id: str, count: int, *, complete: bool = False) -> list[str]:
    _, _, tasks = stubs
    made = []
    for index in range(count):
        request = tasks_pb.CreateTaskRunRequest(
            flow_run_id=run_id, task_key=f"t{index}-{datetime.now(UTC).timestamp()}"
        )
        task = (await tasks.CreateTaskRun(request)).task_run
        if complete:
            await tasks.SetTaskRunState(
                tasks_pb.SetTaskRunStateRequest(
                    task_run_id=task.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
                )
            )
        made.append(task.id)
    return made


def too_large(error, run_id: str, what: str) -> bool:
    return (
        error.code == grpc.StatusCode.FAILED_PRECONDITION
        and error.reason == "TOO_LARGE"
        and what in error.message
        and error.metadata == {"flow_run_id": run_id}
    )


async def test_dependency_map_at_the_limit_is_served_and_past_it_refused(stubs, unique):
    _, runs, _ = stubs
    run_id = await new_run(stubs, unique)
    await add_tasks(stubs, run_id, LIMIT)
    request = runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run_id)
    assert len((await runs.GetTaskRunDependencies(request)).dependencies) == LIMIT

    await add_tasks(stubs, run_id, 1)
    error = await expect_error(runs.GetTaskRunDependencies(request))
    assert too_large(error, run_id, f"more than {LIMIT} task runs")


async def test_graph_with_more_states_than_the_limit_is_refused(stubs, unique):
    _, runs, _ = stubs
    run_id = await new_run(stubs, unique)  # PENDING: one state
    for state_type in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
        await runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type))
        )
    request = runs_pb.GetFlowRunGraphRequest(flow_run_id=run_id)
    assert len((await runs.GetFlowRunGraph(request)).graph.states) == LIMIT

    await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run_id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING), force=True
        )
    )
    error = await expect_error(runs.GetFlowRunGraph(request))
    assert too_large(error, run_id, f"more than {LIMIT} states")


async def test_graph_since_reads_at_most_the_limit_of_older_nodes(stubs, unique):
    _, runs, _ = stubs
    run_id = await new_run(stubs, unique)
    await add_tasks(stubs, run_id, LIMIT, complete=True)
    since = datetime.now(UTC)
    recent = await add_tasks(stubs, run_id, 1)
    request = runs_pb.GetFlowRunGraphRequest(flow_run_id=run_id)
    request.since.FromDatetime(since)
    assert [node.id for node in (await runs.GetFlowRunGraph(request)).graph.nodes] == recent

    await add_tasks(stubs, run_id, 1, complete=True)  # a fourth node that ended...
    request.since.FromDatetime(datetime.now(UTC))  # ...before the new `since`
    error = await expect_error(runs.GetFlowRunGraph(request))
    assert too_large(error, run_id, "ended before `since`")
