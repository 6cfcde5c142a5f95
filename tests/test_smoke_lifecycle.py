"""A run's plain life cycle through the public API, on both backends."""

from __future__ import annotations

from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import state_pb2


async def test_create_flow_run_and_complete(flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"etl-{unique}"))).flow
    created = await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))
    run = created.flow_run
    assert created.created
    assert run.state.type == state_pb2.STATE_TYPE_PENDING
    assert run.expected_start_time == run.state.timestamp

    running = await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
        )
    )
    assert running.status == state_pb2.SET_STATE_STATUS_ACCEPT
    assert running.state.type == state_pb2.STATE_TYPE_RUNNING

    done = await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
        )
    )
    assert done.status == state_pb2.SET_STATE_STATUS_ACCEPT
    final = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run
    assert final.state_type == state_pb2.STATE_TYPE_COMPLETED
    assert final.run_count == 1
    assert final.start_time == running.state.timestamp
    assert final.end_time == done.state.timestamp
    history = (await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id))).states
    assert [s.type for s in history] == [
        state_pb2.STATE_TYPE_PENDING,
        state_pb2.STATE_TYPE_RUNNING,
        state_pb2.STATE_TYPE_COMPLETED,
    ]
