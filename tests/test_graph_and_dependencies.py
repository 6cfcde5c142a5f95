"""A flow run's task-run dependency map and graph, and subflow runs mirrored into their
parent task runs, through the public API on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest

from flowrun.server.app import build_app
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, graph_pb2, state_pb2, task_run_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

TASK_RUN = graph_pb2.GRAPH_NODE_KIND_TASK_RUN
FLOW_RUN = graph_pb2.GRAPH_NODE_KIND_FLOW_RUN


@pytest.fixture(scope="session")
def tasks(channel) -> task_run_service_pb2_grpc.TaskRunServiceStub:
    return task_run_service_pb2_grpc.TaskRunServiceStub(channel)


def task_input(**kwargs) -> task_run_pb2.TaskRunInput:
    return task_run_pb2.TaskRunInput(**kwargs)


class Scenario:
    """One flow (named by the test) and helpers to build its runs and task runs."""

    def __init__(self, flows, runs, tasks, unique: str) -> None:
        self.flows, self.runs, self.tasks, self.unique = flows, runs, tasks, unique
        self.flow_id = ""

    async def flow_run(self, name: str = "", **kwargs) -> runs_pb.CreateFlowRunResponse:
        if not self.flow_id:
            flow = await self.flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"graph-{self.unique}"))
            self.flow_id = flow.flow.id
        return (
            await self.runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=self.flow_id, name=name, **kwargs))
        ).flow_run

    async def task_run(self, flow_run_id: str, key: str, **task_inputs: list[task_run_pb2.TaskRunInput]):
        request = tasks_pb.CreateTaskRunRequest(
            flow_run_id=flow_run_id,
            task_key=key,
            task_inputs={name: task_run_pb2.TaskRunInputs(inputs=items) for name, items in task_inputs.items()},
        )
        return (await self.tasks.CreateTaskRun(request)).task_run

    async def set_task(self, task_run_id: str, state_type: int, **kwargs):
        request = tasks_pb.SetTaskRunStateRequest(
            task_run_id=task_run_id, state=state_pb2.StateCreate(type=state_type, **kwargs)
        )
        return await self.tasks.SetTaskRunState(request)

    async def set_flow(self, flow_run_id: str, state_type: int, *, force: bool = False):
        request = runs_pb.SetFlowRunStateRequest(
            flow_run_id=flow_run_id, state=state_pb2.StateCreate(type=state_type), force=force
        )
        return await self.runs.SetFlowRunState(request)

    async def graph(self, flow_run_id: str, since: datetime | None = None, runs=None) -> graph_pb2.FlowRunGraph:
        request = runs_pb.GetFlowRunGraphRequest(flow_run_id=flow_run_id)
        if since is not None:
            request.since.FromDatetime(since)
        return (await (runs or self.runs).GetFlowRunGraph(request)).graph


@pytest.fixture
def scenario(flows, runs, tasks, unique) -> Scenario:
    return Scenario(flows, runs, tasks, unique)


# -- GetTaskRunDependencies -------------------------------------------------------------------


async def test_dependencies_include_parents_and_ignore_non_task_inputs(scenario, runs):
    run = await scenario.flow_run()
    other_run = await scenario.flow_run()
    a = await scenario.task_run(run.id, "a")
    b = await scenario.task_run(run.id, "b", x=[task_input(task_run_id=a.id)])
    c = await scenario.task_run(
        run.id,
        "c",
        x=[task_input(task_run_id=b.id), task_input(task_run_id=a.id)],
        y=[task_input(task_run_id=b.id), task_input(parameter="limit"), task_input(constant_type="int")],
        z=[task_input(flow_run_id=other_run.id)],
        __parents__=[task_input(task_run_id=a.id)],
    )
    await scenario.set_task(a.id, state_pb2.STATE_TYPE_RUNNING)
    await scenario.set_task(
        a.id, state_pb2.STATE_TYPE_COMPLETED, state_details=state_pb2.StateDetails(untrackable_result=True)
    )
    await scenario.set_task(b.id, state_pb2.STATE_TYPE_RUNNING)

    response = await runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run.id))
    by_id = {item.task_run_id: item for item in response.dependencies}
    assert [item.task_run_id for item in response.dependencies] == sorted(by_id, reverse=True)  # newest id first
    assert set(by_id) == {a.id, b.id, c.id}
    assert list(by_id[a.id].upstream_task_run_ids) == []
    assert list(by_id[b.id].upstream_task_run_ids) == [a.id]
    # De-duplicated; __parents__ counts; parameters, constants and flow-run results do not.
    assert sorted(by_id[c.id].upstream_task_run_ids) == sorted([a.id, b.id])

    done = by_id[a.id]
    assert done.name == "a" and done.state.type == state_pb2.STATE_TYPE_COMPLETED
    assert done.untrackable_result
    assert done.HasField("start_time") and done.HasField("end_time") and done.HasField("expected_start_time")
    assert done.estimated_run_time == done.total_run_time
    running = by_id[b.id]
    assert not running.untrackable_result and not running.HasField("end_time")
    assert running.estimated_run_time.ToTimedelta() >= running.total_run_time.ToTimedelta()
    assert by_id[c.id].state.type == state_pb2.STATE_TYPE_PENDING


async def test_dependencies_errors_and_empty_run(scenario, runs):
    run = await scenario.flow_run()
    empty = await runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=run.id))
    assert list(empty.dependencies) == []
    missing = str(uuid.uuid4())
    error = await expect_error(runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id=missing)))
    assert error.code == grpc.StatusCode.NOT_FOUND and error.reason == "FLOW_RUN_NOT_FOUND"
    error = await expect_error(runs.GetTaskRunDependencies(runs_pb.GetTaskRunDependenciesRequest(flow_run_id="x")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and set(error.field_violations) == {"flow_run_id"}


# -- GetFlowRunGraph ------------------------------------------------------------------------------


async def test_graph_nodes_edges_roots_and_states(scenario):
    run = await scenario.flow_run()
    await scenario.set_flow(run.id, state_pb2.STATE_TYPE_RUNNING)
    outer = await scenario.task_run(run.id, "outer")
    await scenario.set_task(outer.id, state_pb2.STATE_TYPE_RUNNING)
    a = await scenario.task_run(run.id, "a", __parents__=[task_input(task_run_id=outer.id)])
    await scenario.set_task(a.id, state_pb2.STATE_TYPE_RUNNING)
    await scenario.set_task(a.id, state_pb2.STATE_TYPE_COMPLETED)
    b = await scenario.task_run(
        run.id,
        "b",
        x=[task_input(task_run_id=a.id), task_input(parameter="p")],
        y=[task_input(task_run_id=a.id), task_input(task_run_id=str(uuid.uuid4()))],  # unknown id: no edge
        __parents__=[task_input(task_run_id=outer.id), task_input(task_run_id=outer.id)],
    )
    await scenario.set_task(b.id, state_pb2.STATE_TYPE_RUNNING)
    await scenario.set_task(b.id, state_pb2.STATE_TYPE_COMPLETED)
    await scenario.set_task(outer.id, state_pb2.STATE_TYPE_COMPLETED)
    c = await scenario.task_run(run.id, "c", x=[task_input(task_run_id=a.id)], y=[task_input(task_run_id=b.id)])

    graph = await scenario.graph(run.id)
    nodes = {node.id: node for node in graph.nodes}
    assert [node.id for node in graph.nodes] == [outer.id, a.id, b.id, c.id]  # by start time
    assert all(node.kind == TASK_RUN for node in graph.nodes)
    assert [nodes[i].label for i in (outer.id, a.id, b.id, c.id)] == ["outer", "a", "b", "c"]
    assert nodes[c.id].state_type == state_pb2.STATE_TYPE_PENDING and not nodes[c.id].HasField("end_time")
    assert nodes[b.id].state_type == state_pb2.STATE_TYPE_COMPLETED and nodes[b.id].HasField("end_time")

    assert list(nodes[a.id].encapsulating_ids) == [outer.id]
    assert list(nodes[b.id].encapsulating_ids) == [outer.id]  # de-duplicated
    assert list(nodes[b.id].parent_ids) == [a.id]
    assert list(nodes[c.id].parent_ids) == [a.id, b.id]  # ordered by the parent's start time
    assert list(nodes[a.id].child_ids) == [b.id, c.id]
    assert list(nodes[b.id].child_ids) == [c.id]
    assert list(nodes[outer.id].child_ids) == []  # encapsulation is not a data edge
    assert list(graph.root_node_ids) == [outer.id, a.id]
    assert all(len(node.artifacts) == 0 for node in graph.nodes) and len(graph.artifacts) == 0

    assert [state.type for state in graph.states] == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING]
    flow_run = (await scenario.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
    assert graph.start_time == flow_run.start_time and not graph.HasField("end_time")
    assert [state.id for state in graph.states][-1] == flow_run.state.id


async def test_graph_since_keeps_recent_and_unfinished_nodes_with_edges_to_older_ones(scenario):
    run = await scenario.flow_run()
    old = await scenario.task_run(run.id, "old")
    await scenario.set_task(old.id, state_pb2.STATE_TYPE_RUNNING)
    await scenario.set_task(old.id, state_pb2.STATE_TYPE_COMPLETED)
    since = datetime.now(UTC)
    recent = await scenario.task_run(run.id, "recent", x=[task_input(task_run_id=old.id)])
    await scenario.set_task(recent.id, state_pb2.STATE_TYPE_RUNNING)
    await scenario.set_task(recent.id, state_pb2.STATE_TYPE_COMPLETED)
    open_ = await scenario.task_run(run.id, "open", x=[task_input(task_run_id=recent.id)])

    everything = await scenario.graph(run.id)
    assert [node.id for node in everything.nodes] == [old.id, recent.id, open_.id]
    graph = await scenario.graph(run.id, since=since)
    nodes = {node.id: node for node in graph.nodes}
    assert [node.id for node in graph.nodes] == [recent.id, open_.id]
    # Edges are found before the cut: "recent" still names its parent, so it is no root.
    assert list(nodes[recent.id].parent_ids) == [old.id]
    assert list(nodes[recent.id].child_ids) == [open_.id]
    assert list(graph.root_node_ids) == []
    later = await scenario.graph(run.id, since=datetime.now(UTC))
    assert [node.id for node in later.nodes] == [open_.id]


async def test_graph_of_unknown_run_is_not_found(scenario):
    missing = str(uuid.uuid4())
    request = runs_pb.GetFlowRunGraphRequest(flow_run_id=missing)
    error = await expect_error(scenario.runs.GetFlowRunGraph(request))
    assert error.code == grpc.StatusCode.NOT_FOUND and error.reason == "FLOW_RUN_NOT_FOUND"
    assert error.message == f"Flow run {missing} not found"


async def test_graph_larger_than_the_limit_fails_with_too_large(database_url, scenario):
    run = await scenario.flow_run()
    made = [await scenario.task_run(run.id, f"t{index}") for index in range(4)]
    for task in made[:2]:
        await scenario.set_task(task.id, state_pb2.STATE_TYPE_COMPLETED)
    since = datetime.now(UTC)
    app = await build_app(settings_for(database_url, graph_max_nodes=3))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            small = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            error = await expect_error(small.GetFlowRunGraph(runs_pb.GetFlowRunGraphRequest(flow_run_id=run.id)))
            assert error.code == grpc.StatusCode.FAILED_PRECONDITION
            assert error.reason == "TOO_LARGE"
            assert error.message == f"The graph of flow run {run.id} has more than 3 nodes."
            # The limit counts the nodes returned: after `since`, two remain.
            graph = await scenario.graph(run.id, since=since, runs=small)
            assert [node.id for node in graph.nodes] == [task.id for task in made[2:]]
            exactly = await scenario.flow_run()
            for index in range(3):
                await scenario.task_run(exactly.id, f"t{index}")
            assert len((await scenario.graph(exactly.id, runs=small)).nodes) == 3
    finally:
        await app.stop(grace=0)


# -- subflows ----------------------------------------------------------------------------------------


async def test_subflow_run_replaces_its_parent_task_in_the_graph(scenario):
    parent = await scenario.flow_run()
    before = await scenario.task_run(parent.id, "before")
    await scenario.set_task(before.id, state_pb2.STATE_TYPE_COMPLETED)
    parent_task = await scenario.task_run(parent.id, "child-flow", x=[task_input(task_run_id=before.id)])
    child = await scenario.flow_run(name=f"child-{scenario.unique}", parent_task_run_id=parent_task.id)
    await scenario.set_flow(child.id, state_pb2.STATE_TYPE_RUNNING)
    by_task = await scenario.task_run(parent.id, "uses-task", x=[task_input(task_run_id=parent_task.id)])
    by_flow = await scenario.task_run(parent.id, "uses-flow", x=[task_input(flow_run_id=child.id)])

    graph = await scenario.graph(parent.id)
    nodes = {node.id: node for node in graph.nodes}
    assert parent_task.id not in nodes
    node = nodes[child.id]
    assert node.kind == FLOW_RUN
    assert node.label == f"graph-{scenario.unique} / child-{scenario.unique}"
    assert node.state_type == state_pb2.STATE_TYPE_RUNNING and not node.HasField("end_time")
    child_run = (await scenario.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=child.id))).flow_run
    assert node.start_time == child_run.start_time
    assert list(node.parent_ids) == [before.id]  # the parent task's own inputs
    # A reference to the subflow's parent task id matches no node; one to the subflow run does.
    assert list(nodes[by_task.id].parent_ids) == []
    assert list(nodes[by_flow.id].parent_ids) == [child.id]
    assert list(node.child_ids) == [by_flow.id]
    # The subflow's own task runs belong to the subflow's graph, not the parent's.
    inner = await scenario.task_run(child.id, "inner")
    assert inner.id not in {n.id for n in (await scenario.graph(parent.id)).nodes}
    assert [n.id for n in (await scenario.graph(child.id)).nodes] == [inner.id]

    subflow_tasks = await scenario.tasks.ListTaskRuns(
        tasks_pb.ListTaskRunsRequest(
            task_run_filter={"flow_run_id": {"any": [parent.id]}, "subflow_runs": {"exists": True}}
        )
    )
    assert [task.id for task in subflow_tasks.task_runs] == [parent_task.id]


async def test_subflow_states_are_mirrored_onto_the_parent_task_run(scenario):
    parent = await scenario.flow_run()
    parent_task = await scenario.task_run(parent.id, "child-flow")
    child = await scenario.flow_run(parent_task_run_id=parent_task.id)
    assert child.state.state_details.task_run_id == parent_task.id

    async def parent_task_now() -> task_run_pb2.TaskRun:
        return (await scenario.tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=parent_task.id))).task_run

    # Creation (PENDING) mirrors already.
    mirrored = await parent_task_now()
    assert mirrored.state.type == state_pb2.STATE_TYPE_PENDING
    assert mirrored.state.state_details.child_flow_run_id == child.id

    for state_type in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
        outcome = await scenario.set_flow(child.id, state_type)
        assert outcome.status == state_pb2.SET_STATE_STATUS_ACCEPT
        mirrored = await parent_task_now()
        assert mirrored.state.type == outcome.state.type
        assert mirrored.state.name == outcome.state.name
        assert mirrored.state.id != outcome.state.id  # a fresh copy, not the same row
        details = mirrored.state.state_details
        assert details.child_flow_run_id == child.id
        assert details.task_run_id == parent_task.id
        assert details.flow_run_id == parent.id

    # The parent task's bookkeeping follows: it ran once and ended with the subflow.
    assert mirrored.run_count == 1
    assert mirrored.HasField("start_time") and mirrored.HasField("end_time")

    # A proposal that writes nothing (here: ABORT) is not mirrored.
    aborted = await scenario.set_flow(child.id, state_pb2.STATE_TYPE_CRASHED)
    assert aborted.status == state_pb2.SET_STATE_STATUS_ABORT
    assert (await parent_task_now()).state == mirrored.state


async def test_runs_without_a_parent_task_leave_task_runs_alone(scenario):
    run = await scenario.flow_run()
    task = await scenario.task_run(run.id, "t")
    await scenario.set_flow(run.id, state_pb2.STATE_TYPE_RUNNING)
    unchanged = (await scenario.tasks.GetTaskRun(tasks_pb.GetTaskRunRequest(task_run_id=task.id))).task_run
    assert unchanged == task
