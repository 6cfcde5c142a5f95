"""A queued run's events name its work pool and queue, as GetFlowRun does: for its
initial state and for every later change (both databases; on PostgreSQL through the
two-round-trip SetState, and through the locking path too)."""

from __future__ import annotations

import pytest

from flowrun.server.orchestration import unlocked
from flowrun.v1 import filters_pb2, state_pb2, work_pool_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as pb
from flowrun.v1 import work_pool_service_pb2 as pools_pb
from tests.helpers.watching import make_flow, make_run, propose, start_watch


@pytest.mark.parametrize("path", ["unlocked", "locking"])
async def test_every_event_of_a_queued_run_names_its_pool_and_queue(channel, flows, runs, unique, path, monkeypatch):
    if path == "locking":  # every proposal handed over, as for a run with deployment slots
        monkeypatch.setattr(unlocked, "ATTEMPTS", 0)
    pools = work_pool_service_pb2_grpc.WorkPoolServiceStub(channel)
    pool = f"pool-{unique}"
    await pools.CreateWorkPool(pools_pb.CreateWorkPoolRequest(name=pool, type="process"))
    await pools.CreateWorkQueue(pools_pb.CreateWorkQueueRequest(work_pool_name=pool, name="gpu"))
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow, start=pb.WATCH_START_SNAPSHOT)
    await watch.first_progress()  # the (empty) snapshot's end: at once
    run = await make_run(runs, flow_id, work_pool_name=pool, work_queue_name="gpu")
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    await watch.until(lambda w: len(w.events) >= 2)
    watch.cancel()
    assert [(e.state.type, e.flow_run.work_pool_name, e.flow_run.work_queue_name) for e in watch.events] == [
        (state_pb2.STATE_TYPE_PENDING, pool, "gpu"),
        (state_pb2.STATE_TYPE_RUNNING, pool, "gpu"),
    ]
