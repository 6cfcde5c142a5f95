"""GetTaskRunDependencies and GetFlowRunGraph answers are bounded by the response limit
(the smaller of max_message_bytes and max_response_bytes), counted as they are built: a
few task runs naming thousands of upstream ids each (every write within the write
budget) made GetTaskRunDependencies fail RESOURCE_EXHAUSTED "Sent message larger than
max" for every caller after the whole answer was built in memory, and a graph whose
task runs name each other grows as the square of its nodes. Now both answer
FAILED_PRECONDITION (reason TOO_LARGE, metadata flow_run_id and max_bytes) as soon as
the answer being built passes the limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest

from flowrun.server import errors
from flowrun.server.domain.graphs import Graph, GraphNode
from flowrun.server.domain.task_runs import TaskRun
from flowrun.server.services import to_proto
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_pb2, task_run_service_pb2_grpc
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.helpers.rich_errors import expect_error

LIMIT = 64 * 1024  # the smallest response limit the settings allow
SMALL = {"max_response_bytes": LIMIT, "max_parameter_bytes": 8 * 1024}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def serve_small(served):
    app, flows, runs = await served(**SMALL)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    return flows, runs, task_run_service_pb2_grpc.TaskRunServiceStub(channel), channel


async def new_flow_run(flows, runs, unique: str) -> str:
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"graph-size-{unique}"))).flow
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run.id


async def create_task(tasks, flow_run_id: str, key: str, upstream: list[str]) -> str:
    request = tasks_pb.CreateTaskRunRequest(flow_run_id=flow_run_id, task_key=key)
    request.task_inputs["x"].inputs.extend(task_run_pb2.TaskRunInput(task_run_id=item) for item in upstream)
    return (await tasks.CreateTaskRun(request)).task_run.id


def assert_too_large(error, flow_run_id: str) -> None:
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "TOO_LARGE"
    assert error.metadata == {"flow_run_id": flow_run_id, "max_bytes": str(LIMIT)}
    assert f"{LIMIT} bytes" in error.message


async def test_dependencies_past_the_response_limit_are_refused(served, unique):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        # 10 task runs naming 200 (made-up) upstream ids each: ~80 KB of ids in all.
        for k in range(10):
            await create_task(tasks, run_id, f"t{k}", [str(uuid.uuid4()) for _ in range(200)])
        request = runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run_id)
        assert_too_large(await expect_error(runs.GetTaskRunDependencies(request)), run_id)


async def test_dependencies_within_the_response_limit_are_served(served, unique):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        for k in range(3):
            await create_task(tasks, run_id, f"t{k}", [str(uuid.uuid4()) for _ in range(200)])
        request = runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run_id)
        response = await runs.GetTaskRunDependencies(request)
        assert [len(item.upstream_task_run_ids) for item in response.dependencies] == [200, 200, 200]


async def test_a_graph_past_the_response_limit_is_refused(served, unique):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        # Every task run names all earlier ones: edges grow as the square of the nodes.
        made: list[str] = []
        for k in range(60):
            made.append(await create_task(tasks, run_id, f"t{k}", made))
        request = runs_pb.GetFlowRunGraphRequest(flow_run_id=run_id)
        error = await expect_error(runs.GetFlowRunGraph(request))
        assert_too_large(error, run_id)
        assert "since" in error.message


async def test_a_graph_within_the_response_limit_is_served(served, unique):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        made: list[str] = []
        for k in range(15):
            made.append(await create_task(tasks, run_id, f"t{k}", made))
        graph = (await runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=run_id))).graph
        assert len(graph.nodes) == 15
        assert sum(len(node.parent_ids) for node in graph.nodes) == 15 * 14 // 2


class Untouchable:
    """An item the builder must never reach: reading any attribute fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"built past the limit (read .{name})")


def task_run(upstream: int) -> TaskRun:
    ids = [{"input_type": "task_run", "id": str(uuid.uuid4())} for _ in range(upstream)]
    return TaskRun(
        id=str(uuid.uuid4()),
        created=NOW,
        updated=NOW,
        name="t",
        flow_run_id=None,
        task_key="t",
        dynamic_key="",
        task_inputs={"x": ids},
    )


def test_dependencies_stop_building_at_the_limit():
    items: list = [task_run(500), task_run(500), Untouchable()]  # 2 x ~19 KB already pass 30,000 bytes
    with pytest.raises(errors.TooLarge) as raised:
        to_proto.task_run_dependencies(items, NOW, max_bytes=30_000, flow_run_id="f")
    assert raised.value.metadata == {"flow_run_id": "f", "max_bytes": "30000"}


def test_dependencies_that_fit_are_exactly_within_the_limit():
    items = [task_run(100) for _ in range(5)]
    response = to_proto.task_run_dependencies(items, NOW, max_bytes=10**9, flow_run_id="f")
    size = response.ByteSize()
    assert to_proto.task_run_dependencies(items, NOW, max_bytes=size, flow_run_id="f").ByteSize() == size
    with pytest.raises(errors.TooLarge):
        to_proto.task_run_dependencies(items, NOW, max_bytes=size - 1, flow_run_id="f")


def node(edges: int) -> GraphNode:
    ids = [str(uuid.uuid4()) for _ in range(edges)]
    return GraphNode(
        kind="task-run", id=str(uuid.uuid4()), label="t", state_type=None, start_time=NOW, end_time=None, parent_ids=ids
    )


def test_a_graph_stops_building_at_the_limit():
    nodes: list = [node(500), node(500), Untouchable()]  # 2 x ~19 KB already pass 30,000 bytes
    value = Graph(start_time=NOW, end_time=None, root_node_ids=[], nodes=nodes, states=[])
    with pytest.raises(errors.TooLarge) as raised:
        to_proto.graph_response(value, max_bytes=30_000, flow_run_id="f")
    assert raised.value.metadata == {"flow_run_id": "f", "max_bytes": "30000"}


def test_a_graph_that_fits_is_exactly_within_the_limit():
    value = Graph(
        start_time=NOW, end_time=NOW, root_node_ids=["a", "b"], nodes=[node(100) for _ in range(5)], states=[]
    )
    size = to_proto.graph_response(value, max_bytes=10**9, flow_run_id="f").ByteSize()
    assert to_proto.graph_response(value, max_bytes=size, flow_run_id="f").ByteSize() == size
    with pytest.raises(errors.TooLarge):
        to_proto.graph_response(value, max_bytes=size - 1, flow_run_id="f")
