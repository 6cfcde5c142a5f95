"""A run's retry delay is bounded (MAX_RETRY_DELAY_SECONDS, 100 years), so that a run
whose policy passed validation can always fail: a delay of 8,000 years (within the
10,000 years any Duration may hold) made every RUNNING -> FAILED proposal INTERNAL
(`now + delay` overflowed datetime), and the deprecated retry_delay_seconds took any
finite double (negative ones too; 1e300 made UpdateFlowRun itself INTERNAL). Rows
stored before the bound are clamped by the rule and by the response, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from sqlalchemy import select, update

from flowrun.server.db import tables
from flowrun.server.orchestration.retry_rules import MAX_RETRY_DELAY_SECONDS
from flowrun.v1 import flow_run_pb2, state_pb2, task_run_pb2, task_run_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import task_run_service_pb2 as tasks_pb
from tests.helpers.rich_errors import expect_error

YEAR = 31_557_600


def update_policy(run_id: str, policy: flow_run_pb2.FlowRunPolicy) -> runs_pb.UpdateFlowRunRequest:
    return runs_pb.UpdateFlowRunRequest(
        flow_run=flow_run_pb2.FlowRun(id=run_id, empirical_policy=policy),
        update_mask=field_mask_pb2.FieldMask(paths=["empirical_policy"]),
    )


async def new_run(flows, runs, unique: str, **fields) -> str:
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"retry-limit-{unique}"))).flow
    return (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, **fields))).flow_run.id


async def propose(runs, run_id: str, state_type: state_pb2.StateType) -> runs_pb.SetFlowRunStateResponse:
    request = runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type))
    return await runs.SetFlowRunState(request)


@pytest.mark.parametrize(
    ("field", "policy"),
    [
        ("flow_run.empirical_policy.retry_delay", {"retry_delay": duration_pb2.Duration(seconds=8000 * YEAR)}),
        (
            "flow_run.empirical_policy.retry_delay",
            {"retry_delay": duration_pb2.Duration(seconds=MAX_RETRY_DELAY_SECONDS + 1)},
        ),
        ("flow_run.empirical_policy.retry_delay_seconds", {"retry_delay_seconds": 3e11}),
        ("flow_run.empirical_policy.retry_delay_seconds", {"retry_delay_seconds": 1e300}),
        ("flow_run.empirical_policy.retry_delay_seconds", {"retry_delay_seconds": -5}),
        ("flow_run.empirical_policy.retry_delay", {"retry_delay": duration_pb2.Duration(seconds=-5)}),
    ],
)
async def test_a_retry_delay_beyond_the_limit_is_invalid_and_the_run_can_still_fail(flows, runs, unique, field, policy):
    run_id = await new_run(flows, runs, unique)
    error = await expect_error(
        runs.UpdateFlowRun(update_policy(run_id, flow_run_pb2.FlowRunPolicy(retries=1, **policy)))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.field_violations) == {field}
    assert "100 years" in error.field_violations[field] or "negative" in error.field_violations[field]

    # The run was left as it was: it runs and fails like any other.
    assert (await propose(runs, run_id, state_pb2.STATE_TYPE_RUNNING)).status == state_pb2.SET_STATE_STATUS_ACCEPT
    failed = await propose(runs, run_id, state_pb2.STATE_TYPE_FAILED)
    assert failed.status == state_pb2.SET_STATE_STATUS_ACCEPT


async def test_a_create_with_a_delay_beyond_the_limit_is_invalid(flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"retry-limit-{unique}"))).flow
    request = runs_pb.CreateFlowRunRequest(
        flow_id=flow.id, empirical_policy=flow_run_pb2.FlowRunPolicy(retries=1, retry_delay_seconds=3e11)
    )
    error = await expect_error(runs.CreateFlowRun(request))
    assert set(error.field_violations) == {"empirical_policy.retry_delay_seconds"}


async def test_a_task_run_delay_beyond_the_limit_is_invalid(app, flows, runs, unique):
    run_id = await new_run(flows, runs, unique)
    request = tasks_pb.CreateTaskRunRequest(
        flow_run_id=run_id,
        task_key="t",
        empirical_policy=task_run_pb2.TaskRunPolicy(retry_delay=duration_pb2.Duration(seconds=8000 * YEAR)),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        error = await expect_error(task_run_service_pb2_grpc.TaskRunServiceStub(channel).CreateTaskRun(request))
    assert set(error.field_violations) == {"empirical_policy.retry_delay"}


async def test_the_longest_delay_retries_at_now_plus_it(flows, runs, unique):
    policy = flow_run_pb2.FlowRunPolicy(retries=1, retry_delay=duration_pb2.Duration(seconds=MAX_RETRY_DELAY_SECONDS))
    run_id = await new_run(flows, runs, unique)
    updated = (await runs.UpdateFlowRun(update_policy(run_id, policy))).flow_run
    assert updated.empirical_policy.retry_delay.seconds == MAX_RETRY_DELAY_SECONDS
    await propose(runs, run_id, state_pb2.STATE_TYPE_RUNNING)
    failed = await propose(runs, run_id, state_pb2.STATE_TYPE_FAILED)
    assert failed.status == state_pb2.SET_STATE_STATUS_REJECT and failed.state.name == "AwaitingRetry"
    due = failed.state.state_details.scheduled_time.ToDatetime(tzinfo=UTC)
    assert due - failed.state.timestamp.ToDatetime(tzinfo=UTC) == timedelta(seconds=MAX_RETRY_DELAY_SECONDS)


@pytest.mark.parametrize("stored", [8000 * YEAR, 1e300, -5.0])
async def test_a_delay_stored_before_the_limit_is_clamped_not_a_crash(app, flows, runs, unique, stored):
    run_id = await new_run(flows, runs, unique)
    async with app.database.engine.begin() as connection:
        row = (
            await connection.execute(select(tables.flow_run.c.empirical_policy).where(tables.flow_run.c.id == run_id))
        ).one()
        policy = dict(row.empirical_policy or {}, retries=1, retry_delay=stored, retry_delay_seconds=stored)
        await connection.execute(
            update(tables.flow_run).where(tables.flow_run.c.id == run_id).values(empirical_policy=policy)
        )

    read = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run
    clamped = min(max(stored, 0), MAX_RETRY_DELAY_SECONDS)
    assert read.empirical_policy.retry_delay.ToTimedelta() == timedelta(seconds=clamped)

    await propose(runs, run_id, state_pb2.STATE_TYPE_RUNNING)
    failed = await propose(runs, run_id, state_pb2.STATE_TYPE_FAILED)
    assert failed.status == state_pb2.SET_STATE_STATUS_REJECT and failed.state.name == "AwaitingRetry"
    due = failed.state.state_details.scheduled_time.ToDatetime(tzinfo=UTC)
    assert due - failed.state.timestamp.ToDatetime(tzinfo=UTC) == timedelta(seconds=clamped)
    assert due < datetime.max.replace(tzinfo=UTC)


def test_a_task_runs_stored_delay_is_answered_clamped():
    """As a flow run's: a delay stored before the limit is answered within it, never as a
    Duration beyond what the protobuf spec allows (strict clients reject those)."""
    from flowrun.server.domain.task_runs import TaskRunPolicy
    from flowrun.server.services.to_proto import task_run_policy

    assert task_run_policy(TaskRunPolicy(retry_delay=8000 * YEAR)).retry_delay.seconds == MAX_RETRY_DELAY_SECONDS
    assert task_run_policy(TaskRunPolicy(retry_delay=-5)).retry_delay.seconds == 0
