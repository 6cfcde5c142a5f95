"""Every RPC that stores its request is bounded by the write budget, and none is
forgotten: the test walks every RPC of every flowrun service in the proto descriptors.
A storing RPC (server/services/write_size.py: bounded_by_write_budget) must have an
over-budget case below, which a real server refuses with INVALID_ARGUMENT (ErrorInfo
metadata max_bytes, request_bytes) storing nothing; every other RPC is declared a read
or a write that stores nothing it was sent. The budget interceptor leaves those methods'
handlers untouched, so they pay nothing for it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf.message import Message

import flowrun.v1
from flowrun.server.app import App
from flowrun.server.roles import METHOD_ROLES, READER
from flowrun.server.services.write_size import (
    WRITES_STORING_NOTHING_SENT,
    WriteBudgetInterceptor,
    WriteTooLarge,
    bounded_by_write_budget,
)
from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_pb2,
    flow_run_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2_grpc,
    state_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
    work_pool_service_pb2,
    work_pool_service_pb2_grpc,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.rich_errors import expect_error
from tests.test_write_size_limits import filled, struct_of


def flowrun_rpcs() -> list[str]:
    """The full method name of every RPC of every service in flowrun.v1's *_pb2 modules."""
    names = []
    for module in pkgutil.iter_modules(flowrun.v1.__path__):
        if module.name.endswith("_pb2"):
            descriptor = importlib.import_module(f"flowrun.v1.{module.name}").DESCRIPTOR
            for service in descriptor.services_by_name.values():
                names += [f"/{service.full_name}/{method.name}" for method in service.methods]
    return sorted(names)


@dataclass
class Stubs:
    flows: object
    runs: object
    tasks: object
    deployments: object
    pools: object


# An over-budget case: (stubs, unique name, size) -> (the call for a request of `size`
# bytes, a check that nothing was stored).
Case = Callable[[Stubs, str, int], Awaitable[tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]]]


async def not_found(call) -> None:
    assert (await expect_error(call)).code == grpc.StatusCode.NOT_FOUND


async def new_flow(s: Stubs, unique: str) -> flow_pb2.Flow:
    return (await s.flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"budget-{unique}", tags=["kept"]))).flow


async def new_run(s: Stubs, unique: str) -> flow_run_pb2.FlowRun:
    flow = await new_flow(s, unique)
    return (await s.runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run


def running_state(n: int) -> state_pb2.StateCreate:
    state = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    state.data.string_value = "x" * n
    return state


async def create_flow(s: Stubs, unique: str, size: int):
    name = f"budget-{unique}"
    request = filled(lambda n: flows_pb.CreateFlowRequest(name=name, labels=struct_of(blob="x" * n)), size)

    async def nothing_stored() -> None:
        await not_found(s.flows.GetFlowByName(flows_pb.GetFlowByNameRequest(name=name)))

    return lambda: s.flows.CreateFlow(request), nothing_stored


async def update_flow(s: Stubs, unique: str, size: int):
    flow = await new_flow(s, unique)
    request = filled(
        lambda n: flows_pb.UpdateFlowRequest(
            flow=flow_pb2.Flow(id=flow.id, tags=["t" * 1000] * (n // 1000) + ["t" * (n % 1000)]),
            update_mask={"paths": ["tags"]},
        ),
        size,
    )

    async def nothing_stored() -> None:
        got = (await s.flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id))).flow
        assert list(got.tags) == ["kept"]

    return lambda: s.flows.UpdateFlow(request), nothing_stored


async def create_flow_run(s: Stubs, unique: str, size: int):
    flow = await new_flow(s, unique)
    request = filled(lambda n: runs_pb.CreateFlowRunRequest(flow_id=flow.id, context=struct_of(blob="x" * n)), size)

    async def nothing_stored() -> None:
        count = await s.runs.CountFlowRuns(runs_pb.CountFlowRunsRequest(flow_filter={"id": {"any": [flow.id]}}))
        assert count.count == 0

    return lambda: s.runs.CreateFlowRun(request), nothing_stored


async def update_flow_run(s: Stubs, unique: str, size: int):
    run = await new_run(s, unique)
    request = filled(
        lambda n: runs_pb.UpdateFlowRunRequest(
            flow_run=flow_run_pb2.FlowRun(id=run.id, job_variables=struct_of(blob="x" * n)),
            update_mask={"paths": ["job_variables"]},
        ),
        size,
    )

    async def nothing_stored() -> None:
        got = (await s.runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
        assert not got.job_variables.fields

    return lambda: s.runs.UpdateFlowRun(request), nothing_stored


async def set_flow_run_state(s: Stubs, unique: str, size: int):
    run = await new_run(s, unique)
    request = filled(lambda n: runs_pb.SetFlowRunStateRequest(flow_run_id=run.id, state=running_state(n)), size)

    async def nothing_stored() -> None:
        states = await s.runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id))
        assert [state.id for state in states.states] == [run.state_id]

    return lambda: s.runs.SetFlowRunState(request), nothing_stored


async def create_task_run(s: Stubs, unique: str, size: int):
    run = await new_run(s, unique)

    def create(n: int) -> task_run_service_pb2.CreateTaskRunRequest:
        return task_run_service_pb2.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="t", labels=struct_of(blob="x" * n)
        )

    request = filled(create, size)

    async def nothing_stored() -> None:
        assert (await s.tasks.CreateTaskRun(create(0))).created  # the same key: not there before

    return lambda: s.tasks.CreateTaskRun(request), nothing_stored


async def set_task_run_state(s: Stubs, unique: str, size: int):
    run = await new_run(s, unique)
    task = (
        await s.tasks.CreateTaskRun(task_run_service_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t"))
    ).task_run
    request = filled(
        lambda n: task_run_service_pb2.SetTaskRunStateRequest(task_run_id=task.id, state=running_state(n)), size
    )

    async def nothing_stored() -> None:
        got = (await s.tasks.GetTaskRun(task_run_service_pb2.GetTaskRunRequest(task_run_id=task.id))).task_run
        assert (got.state_id, got.state.type) == (task.state_id, task.state.type)

    return lambda: s.tasks.SetTaskRunState(request), nothing_stored


async def create_deployment(s: Stubs, unique: str, size: int):
    flow = await new_flow(s, unique)

    def create(n: int) -> deployment_service_pb2.CreateDeploymentRequest:
        return deployment_service_pb2.CreateDeploymentRequest(
            flow_id=flow.id, name=f"budget-{unique}", job_variables=struct_of(blob="x" * n) if n else None
        )

    request = filled(create, size)

    async def nothing_stored() -> None:
        await s.deployments.CreateDeployment(create(0))  # the same name: ALREADY_EXISTS had one been stored

    return lambda: s.deployments.CreateDeployment(request), nothing_stored


async def create_work_pool(s: Stubs, unique: str, size: int):
    name = f"budget-{unique}"
    request = filled(lambda n: work_pool_service_pb2.CreateWorkPoolRequest(name=name, description="d" * n), size)

    async def nothing_stored() -> None:
        await not_found(s.pools.GetWorkPool(work_pool_service_pb2.GetWorkPoolRequest(name=name)))

    return lambda: s.pools.CreateWorkPool(request), nothing_stored


async def create_work_queue(s: Stubs, unique: str, size: int):
    pool = (
        await s.pools.CreateWorkPool(work_pool_service_pb2.CreateWorkPoolRequest(name=f"budget-{unique}"))
    ).work_pool
    request = filled(
        lambda n: work_pool_service_pb2.CreateWorkQueueRequest(work_pool_name=pool.name, name="q", description="d" * n),
        size,
    )

    async def nothing_stored() -> None:
        get = work_pool_service_pb2.GetWorkQueueRequest(work_pool_name=pool.name, name="q")
        await not_found(s.pools.GetWorkQueue(get))

    return lambda: s.pools.CreateWorkQueue(request), nothing_stored


OVER_BUDGET: dict[str, Case] = {
    "/flowrun.v1.FlowService/CreateFlow": create_flow,
    "/flowrun.v1.FlowService/UpdateFlow": update_flow,
    "/flowrun.v1.FlowRunService/CreateFlowRun": create_flow_run,
    "/flowrun.v1.FlowRunService/UpdateFlowRun": update_flow_run,
    "/flowrun.v1.FlowRunService/SetFlowRunState": set_flow_run_state,
    "/flowrun.v1.TaskRunService/CreateTaskRun": create_task_run,
    "/flowrun.v1.TaskRunService/SetTaskRunState": set_task_run_state,
    "/flowrun.v1.DeploymentService/CreateDeployment": create_deployment,
    "/flowrun.v1.WorkPoolService/CreateWorkPool": create_work_pool,
    "/flowrun.v1.WorkPoolService/CreateWorkQueue": create_work_queue,
}


def test_every_rpc_is_declared_storing_or_not_and_every_storing_one_has_a_case():
    rpcs = flowrun_rpcs()
    assert len(rpcs) > 30  # the walk found the services
    undeclared = [rpc for rpc in rpcs if rpc not in METHOD_ROLES]
    assert not undeclared, f"add these RPCs to server/roles.py (and so to the write budget's rule): {undeclared}"
    storing = {rpc for rpc in rpcs if bounded_by_write_budget(rpc)}
    missing = sorted(storing - OVER_BUDGET.keys())
    assert not missing, f"storing RPCs without an over-budget case here: {missing}"
    assert set(OVER_BUDGET) <= storing, sorted(set(OVER_BUDGET) - storing)
    # Every exception names a real write: a read is never bounded, it need not be listed.
    assert WRITES_STORING_NOTHING_SENT <= {rpc for rpc in rpcs if METHOD_ROLES[rpc] > READER}


@pytest.mark.parametrize("method", sorted(OVER_BUDGET))
async def test_a_storing_rpc_one_byte_over_the_budget_is_refused_and_stores_nothing(
    method: str, app: App, channel: grpc.aio.Channel, unique: str
):
    stubs = Stubs(
        flows=flow_service_pb2_grpc.FlowServiceStub(channel),
        runs=flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
        tasks=task_run_service_pb2_grpc.TaskRunServiceStub(channel),
        deployments=deployment_service_pb2_grpc.DeploymentServiceStub(channel),
        pools=work_pool_service_pb2_grpc.WorkPoolServiceStub(channel),
    )
    budget = app.settings.write_max_bytes
    call, nothing_stored = await OVER_BUDGET[method](stubs, unique, budget + 1)
    error = await expect_error(call())
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.metadata["max_bytes"] == str(budget)
    assert error.metadata["request_bytes"] == str(budget + 1)
    assert error.field_violations, "BadRequest names the largest field"
    await nothing_stored()


# The interceptor on its own: what it adds to each method.


def unary_handler(calls: list[Message]) -> grpc.RpcMethodHandler:
    async def behaviour(request, context):
        calls.append(request)
        return "stored"

    return grpc.unary_unary_rpc_method_handler(behaviour)


async def intercept(interceptor: WriteBudgetInterceptor, method: str, handler: grpc.RpcMethodHandler):
    async def continuation(_details):
        return handler

    return await interceptor.intercept_service(continuation, SimpleNamespace(method=method, invocation_metadata=()))


@pytest.mark.parametrize("method", [rpc for rpc in flowrun_rpcs() if not bounded_by_write_budget(rpc)])
async def test_a_method_that_stores_nothing_sent_keeps_its_handler_untouched(method: str):
    handler = unary_handler([])
    assert await intercept(WriteBudgetInterceptor(10), method, handler) is handler


async def test_a_storing_method_is_wrapped_once_and_refuses_before_its_handler_runs():
    interceptor = WriteBudgetInterceptor(100)
    calls: list[Message] = []
    handler = unary_handler(calls)
    method = "/flowrun.v1.FlowService/CreateFlow"
    wrapped = await intercept(interceptor, method, handler)
    assert wrapped is not handler and await intercept(interceptor, method, handler) is wrapped
    fits = filled(lambda n: flows_pb.CreateFlowRequest(name="x" * n), 100)
    assert await wrapped.unary_unary(fits, None) == "stored" and calls == [fits]
    with pytest.raises(WriteTooLarge):
        await wrapped.unary_unary(filled(lambda n: flows_pb.CreateFlowRequest(name="x" * n), 101), None)
    assert calls == [fits]
