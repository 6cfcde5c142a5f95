"""Every write whose stored result could not be sent back whole is refused before anything
is written (INVALID_ARGUMENT naming the field and the limit), and everything that is
accepted can be read back by Get, List and a watch snapshot with a client's default 4 MiB
receive limit (server/config.py: Settings.write_max_bytes says why the budget suffices)."""

from __future__ import annotations

import asyncio
import json

import grpc
from google.protobuf import struct_pb2

from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    filters_pb2,
    flow_pb2,
    state_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)
from flowrun.v1 import flow_run_pb2 as run_pb
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

BIG = 5 * 1024 * 1024  # over any write budget of the default settings
CLIENT_LIMIT = 4 * 1024 * 1024  # grpc's default receive limit


def struct_of(**values) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def filled(build, size: int):
    """build(n) (a request holding an n-character blob) with n chosen so that its
    ByteSize() is exactly `size`."""
    n = size
    for _ in range(5):
        message = build(n)
        n += size - message.ByteSize()
    message = build(n)
    assert message.ByteSize() == size
    return message


def run_filter(flow_id: str) -> dict:
    return {"flow_filter": filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=[flow_id]))}


async def count_runs(runs, flow_id: str) -> int:
    return (await runs.CountFlowRuns(runs_pb.CountFlowRunsRequest(**run_filter(flow_id)))).count


def assert_too_large(error, field: str) -> None:
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert field in error.field_violations, error.field_violations
    assert "bytes" in error.field_violations[field]
    assert int(error.metadata["max_bytes"]) > 0


async def test_huge_context_is_refused_and_no_run_exists(served, unique):
    _, flows, runs = await served()
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    request = runs_pb.CreateFlowRunRequest(flow_id=flow.id, context=struct_of(blob="x" * BIG))
    error = await expect_error(runs.CreateFlowRun(request))
    assert_too_large(error, "context")
    keyed = runs_pb.CreateFlowRunRequest(flow_id=flow.id, idempotency_key="k", context=struct_of(blob="x" * BIG))
    assert_too_large(await expect_error(runs.CreateFlowRun(keyed)), "context")
    assert await count_runs(runs, flow.id) == 0


async def test_huge_state_data_is_refused_and_the_state_is_unchanged(served, unique):
    _, flows, runs = await served()
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    huge = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    huge.data.string_value = "x" * BIG
    error = await expect_error(runs.SetFlowRunState(runs_pb.SetFlowRunStateRequest(flow_run_id=run.id, state=huge)))
    assert_too_large(error, "state.data")
    after = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
    assert (after.state_id, after.state.type) == (run.state_id, run.state.type)


async def test_huge_writes_of_every_kind_are_refused(served, unique):
    app, flows, runs = await served()
    labels_request = flows_pb.CreateFlowRequest(name=f"big-{unique}", labels=struct_of(blob="x" * BIG))
    assert_too_large(await expect_error(flows.CreateFlow(labels_request)), "labels")
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    update = runs_pb.UpdateFlowRunRequest(
        flow_run=run_pb.FlowRun(id=run.id, job_variables=struct_of(blob="x" * BIG)),
        update_mask={"paths": ["job_variables"]},
    )
    assert_too_large(await expect_error(runs.UpdateFlowRun(update)), "flow_run.job_variables")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        tasks = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
        task = task_run_service_pb2.CreateTaskRunRequest(
            flow_run_id=run.id, task_key="t", labels=struct_of(blob="x" * BIG)
        )
        assert_too_large(await expect_error(tasks.CreateTaskRun(task)), "labels")
        plain_task = task_run_service_pb2.CreateTaskRunRequest(flow_run_id=run.id, task_key="t")
        task_run = (await tasks.CreateTaskRun(plain_task)).task_run
        huge = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING, data=struct_pb2.Value(string_value="x" * BIG))
        set_task = task_run_service_pb2.SetTaskRunStateRequest(task_run_id=task_run.id, state=huge)
        assert_too_large(await expect_error(tasks.SetTaskRunState(set_task)), "state.data")
        deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
        deployment = deployment_service_pb2.CreateDeploymentRequest(
            flow_id=flow.id, name=f"big-{unique}", job_variables=struct_of(blob="x" * BIG)
        )
        assert_too_large(await expect_error(deployments.CreateDeployment(deployment)), "job_variables")
    tags = flows_pb.UpdateFlowRequest(
        flow=flow_pb2.Flow(id=flow.id, tags=["t" * 1000] * (BIG // 1000)), update_mask={"paths": ["tags"]}
    )
    assert_too_large(await expect_error(flows.UpdateFlow(tags)), "flow.tags")


async def test_updates_of_separate_fields_cannot_add_up_past_the_limit(served, unique, database_url):
    """Each write fits the write budget, but together they would not fit a response with
    the largest state: the update that would make the run too large is refused, and
    changes nothing."""
    _, flows, runs = await served()
    budget = settings_for(database_url).write_max_bytes
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"big-{unique}"))).flow
    create = runs_pb.CreateFlowRunRequest(flow_id=flow.id, context=struct_of(blob="x" * (budget - 1024)))
    run = (await runs.CreateFlowRun(create)).flow_run

    def update(path: str, **fields) -> runs_pb.UpdateFlowRunRequest:
        return runs_pb.UpdateFlowRunRequest(flow_run=run_pb.FlowRun(id=run.id, **fields), update_mask={"paths": [path]})

    await runs.UpdateFlowRun(update("infrastructure_pid", infrastructure_pid="p" * (budget - 1024)))
    too_much = update("parameters", parameters=struct_of(blob="q" * (500 * 1024)))
    assert_too_large(await expect_error(runs.UpdateFlowRun(too_much)), "flow_run")
    got = await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))
    assert not got.flow_run.parameters.fields and got.flow_run.infrastructure_pid.startswith("p")


async def test_a_run_at_every_budget_is_readable_everywhere(served, unique, database_url):
    """The largest flow labels, create request and state data the budget lets through, on
    one run: Get, List and a watch snapshot all send it whole to a default client."""
    _, flows, runs = await served()
    budget = settings_for(database_url).write_max_bytes
    flow = (
        await flows.CreateFlow(
            filled(lambda n: flows_pb.CreateFlowRequest(name=f"big-{unique}", labels=struct_of(f="y" * n)), budget)
        )
    ).flow
    create = filled(lambda n: runs_pb.CreateFlowRunRequest(flow_id=flow.id, context=struct_of(blob="x" * n)), budget)
    run = (await runs.CreateFlowRun(create)).flow_run

    def state_request(n: int) -> runs_pb.SetFlowRunStateRequest:
        state = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING, name="R" * 200, message="m" * 100_000)
        state.data.string_value = "z" * n
        return runs_pb.SetFlowRunStateRequest(flow_run_id=run.id, state=state)

    result = await runs.SetFlowRunState(filled(state_request, budget))
    assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
    got = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
    assert got.state.data.string_value.startswith("z") and got.labels.fields["f"].string_value.startswith("y")
    assert got.ByteSize() > 3 * budget - 4096  # the run really is as large as the budget allows
    listed = await runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(**run_filter(flow.id)))
    assert [r.id for r in listed.flow_runs] == [run.id]
    one = runs.WatchFlowRun(runs_pb.WatchFlowRunRequest(flow_run_id=run.id), timeout=10)
    first = await asyncio.wait_for(one.read(), 10)
    one.cancel()
    assert first.WhichOneof("message") == "snapshot_run" and first.snapshot_run.id == run.id
    assert first.snapshot_run.state.data.string_value == got.state.data.string_value


async def test_a_parameter_limit_above_the_write_budget_still_refuses(served, unique, database_url):
    """FLOWRUN_MAX_PARAMETER_BYTES may be set above the write budget, and still applies:
    it counts compact JSON, where a control character takes six bytes (\\u0001) and a
    non-ASCII one up to twelve, while the budget counts the protobuf request. So JSON
    parameters larger than the budget are stored while their protobuf form fits it, the
    parameter limit refuses such parameters past it, and plain parameters past the budget
    meet the budget first."""
    budget = settings_for(database_url).write_max_bytes
    limit = 2 * 1024 * 1024  # above the budget, below the 4 MiB response limit
    assert budget < limit
    _, flows, runs = await served(max_parameter_bytes=limit)
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"params-{unique}"))).flow

    def create(text: str) -> runs_pb.CreateFlowRunRequest:
        return runs_pb.CreateFlowRunRequest(flow_id=flow.id, parameters=struct_of(p=text))

    stored = create("\x01" * 300_000)  # JSON 1.8 MB, over the budget; protobuf 0.3 MB
    assert len(json.dumps({"p": "\x01" * 300_000}, separators=(",", ":"))) > budget > stored.ByteSize()
    run = (await runs.CreateFlowRun(stored)).flow_run
    assert run.parameters.fields["p"].string_value == "\x01" * 300_000
    too_many = create("\x01" * 400_000)  # JSON 2.4 MB, over the parameter limit; protobuf 0.4 MB
    error = await expect_error(runs.CreateFlowRun(too_many))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "max_bytes" not in error.metadata
    assert error.field_violations == {"parameters": f"must be at most {limit} bytes serialized"}
    plain = create("x" * budget)  # JSON below the parameter limit, protobuf over the budget
    assert_too_large(await expect_error(runs.CreateFlowRun(plain)), "parameters")
    assert await count_runs(runs, flow.id) == 1
