"""GetTaskRunDependencies and GetFlowRunGraph read a run's task inputs a batch at a time
and stop at the batch that passes the response limit: before, every row's task_inputs
(up to the write budget each, 10,000 task runs a run) was loaded before the answer was
counted, so one call of any reader held the rows' total size in server memory. A spy on
the repositories' batch reader (server/repositories/batched_reads.py) counts the rows
that were read with task inputs: a refused answer has read at most what passes the limit
plus one batch, far from all of them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from flowrun.server.repositories import batched_reads
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from flowrun.v1 import task_run_service_pb2_grpc
from tests.helpers.rich_errors import expect_error
from tests.helpers.watching import make_flow
from tests.test_graph_response_size import LIMIT, assert_too_large, create_task, new_flow_run, serve_small

# A server-side cursor on PostgreSQL: behind pgbouncer's transaction pooling too.
pytestmark = pytest.mark.pgbouncer

ID_ENTRY_BYTES = 38  # an id in a repeated string field of the answer: tag, length, 36 bytes


@pytest.fixture
def rows_read(monkeypatch) -> list[int]:
    """The number of rows naming other task runs (with inputs) each batch of the reader held."""
    counts: list[int] = []
    read = batched_reads.rows_in_batches

    async def spy(connection, query):
        async for batch in read(connection, query):
            counts.append(sum(1 for row in batch if any(json.loads(row.task_inputs_json).values())))
            yield batch

    monkeypatch.setattr(batched_reads, "rows_in_batches", spy)
    return counts


async def test_a_dependency_map_past_the_limit_stops_reading_rows(served, unique, rows_read):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        task_runs, upstream = 40, 200
        for k in range(task_runs):
            await create_task(tasks, run_id, f"t{k}", [str(uuid.uuid4()) for _ in range(upstream)])
        request = runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run_id)
        assert_too_large(await expect_error(runs.GetTaskRunDependencies(request)), run_id)

        # Each entry holds at least its 200 ids: the map passes the limit at entry 9.
        passing = LIMIT // (upstream * ID_ENTRY_BYTES) + 1
        assert passing + batched_reads.BATCH_ROWS < task_runs
        assert sum(rows_read) <= passing + batched_reads.BATCH_ROWS

        # The reader stopped early left the server's connections usable.
        smaller = await new_flow_run(flows, runs, unique + "-b")
        await create_task(tasks, smaller, "t", [str(uuid.uuid4())])
        served_map = await runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=smaller))
        assert len(served_map.dependencies) == 1


async def test_a_graph_past_the_limit_stops_reading_rows(served, unique, rows_read):
    flows, runs, tasks, channel = await serve_small(served)
    async with channel:
        run_id = await new_flow_run(flows, runs, unique)
        # Task runs that each name the same 50 hubs: each adds 50 parent and 50 child
        # edges to the graph whatever the order it is read in.
        hubs = [await create_task(tasks, run_id, f"hub{k}", []) for k in range(50)]
        naming = 60
        for k in range(naming):
            await create_task(tasks, run_id, f"t{k}", hubs)
        request = runs_pb.GetFlowRunGraphRequest(flow_run_id=run_id)
        assert_too_large(await expect_error(runs.GetFlowRunGraph(request)), run_id)

        passing = LIMIT // (2 * len(hubs) * ID_ENTRY_BYTES) + 1
        assert passing + batched_reads.BATCH_ROWS < naming
        assert sum(rows_read) <= passing + batched_reads.BATCH_ROWS

        smaller = await new_flow_run(flows, runs, unique + "-b")
        first = await create_task(tasks, smaller, "a", [])
        await create_task(tasks, smaller, "b", [first])
        graph = (await runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=smaller))).graph
        assert sorted(len(node.parent_ids) + len(node.child_ids) for node in graph.nodes) == [1, 1]


@dataclass
class TwoTasks:
    """A flow run whose task run b names task run a in its inputs (a -> b)."""

    runs: Any
    flow_id: str
    run_id: str
    a: str
    b: str

    async def graph(self):
        return (await self.runs.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=self.run_id))).graph

    async def subflow_of_b(self) -> str:
        request = runs_pb.CreateFlowRunRequest(flow_id=self.flow_id, parent_task_run_id=self.b)
        return (await self.runs.CreateFlowRun(request)).flow_run.id


@pytest.fixture
async def a_to_b(served, unique) -> AsyncIterator[TwoTasks]:
    app, flows, runs = await served()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        tasks = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        flow_id = await make_flow(flows, unique)
        run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow_id))).flow_run
        a = (await tasks.CreateTaskRun(tasks_pb.CreateTaskRunRequest(flow_run_id=run.id, task_key="a"))).task_run.id
        request = tasks_pb.CreateTaskRunRequest(flow_run_id=run.id, task_key="b")
        request.task_inputs["x"].inputs.add(task_run_id=a)
        b = (await tasks.CreateTaskRun(request)).task_run.id
        yield TwoTasks(runs, flow_id, run.id, a, b)


async def test_a_subflow_created_during_the_read_keeps_its_task_runs_edges(a_to_b, monkeypatch):
    """The nodes and their inputs are two statements (two snapshots on PostgreSQL): a
    subflow created in between changes its task run's node id (a node is its subflow's
    when it has one), so the inputs must be matched to the nodes by task run id, never
    by a node id read again. Found by an attacker: a -> b vanished and b became a root."""
    reading = batched_reads.rows_in_batches
    subflows: list[str] = []

    async def with_a_subflow_created_first(connection, query):
        if not subflows:  # between the node statement and the inputs statement
            subflows.append(await a_to_b.subflow_of_b())
        async for batch in reading(connection, query):
            yield batch

    monkeypatch.setattr(batched_reads, "rows_in_batches", with_a_subflow_created_first)
    graph = await a_to_b.graph()
    assert subflows
    edges = {node.id: (sorted(node.parent_ids), sorted(node.child_ids)) for node in graph.nodes}
    assert edges == {a_to_b.a: ([], [a_to_b.b]), a_to_b.b: ([a_to_b.a], [])}
    assert list(graph.root_node_ids) == [a_to_b.a]


async def test_a_task_run_with_many_subflows_has_its_inputs_read_once_per_node(a_to_b, monkeypatch):
    """A task run with k subflows comes back k times from the inputs statement (the
    subflow join): its inputs go to its k nodes once, not k times each (k² work on the
    event loop, unbounded by the byte limit: a reviewer's finding)."""
    from flowrun.server.repositories import graphs

    subflows = [await a_to_b.subflow_of_b() for _ in range(4)]
    calls: list[str] = []
    adding = graphs._Edges.add_inputs

    def counted(self, node_id, node_inputs):
        calls.append(node_id)
        adding(self, node_id, node_inputs)

    monkeypatch.setattr(graphs._Edges, "add_inputs", counted)
    graph = await a_to_b.graph()
    assert sorted(calls) == sorted([a_to_b.a, *subflows])
    parents = {node.id: list(node.parent_ids) for node in graph.nodes}
    assert parents == {a_to_b.a: [], **{subflow: [a_to_b.a] for subflow in subflows}}
