"""A SetFlowRunState that cannot get the run's lock in time gives ABORTED with RetryInfo,
and writes nothing; once the lock is free, the same proposal goes through."""

from __future__ import annotations

import uuid

import asyncpg
import grpc
import pytest

from flowrun.server.app import build_app
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2, flow_service_pb2_grpc, state_pb2
from tests.conftest import create_postgres_database, drop_postgres_database, settings_for
from tests.helpers.rich_errors import expect_error


@pytest.mark.slow  # a database of its own, migrated
@pytest.mark.parametrize("through", ["postgres", pytest.param("pgbouncer", marks=pytest.mark.multiprocess)])
async def test_lock_timeout_is_aborted_with_retry_info(unique, through, request):
    """Also behind pgbouncer, where lock_timeout is set per transaction (SET LOCAL)."""
    name, url = await create_postgres_database()
    served = request.getfixturevalue("pgbouncer").url(name) if through == "pgbouncer" else url
    app = await build_app(settings_for(served, lock_timeout_ms=200, db_pgbouncer=through == "pgbouncer"))
    await app.start()
    holder = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"locked-{unique}"))).flow
            run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
            request = runs_pb.SetFlowRunStateRequest(
                flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
            )

            locked = holder.transaction()
            await locked.start()
            await holder.execute("SELECT 1 FROM flow_run WHERE id = $1 FOR UPDATE", uuid.UUID(run.id))
            error = await expect_error(runs.SetFlowRunState(request, timeout=10))
            assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "CONFLICT")
            assert error.retry_delay_seconds and error.retry_delay_seconds > 0
            await locked.rollback()

            history = await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id))
            assert [state.type for state in history.states] == [state_pb2.STATE_TYPE_PENDING]
            retried = await runs.SetFlowRunState(request)
            assert retried.status == state_pb2.SET_STATE_STATUS_ACCEPT
    finally:
        await holder.close()
        await app.stop(grace=0)
        await drop_postgres_database(name)
