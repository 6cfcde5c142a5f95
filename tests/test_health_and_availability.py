"""Health reports the truth, and a database outage surfaces as UNAVAILABLE."""

from __future__ import annotations

import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import flow_service_pb2_grpc
from server.app import build_app
from tests.conftest import settings_for
from tests.rich_errors import expect_error

SERVICES = ("", "flowrun.v1.FlowService", "flowrun.v1.FlowRunService")


@pytest.mark.parametrize("service", SERVICES)
async def test_health_is_serving_once_the_database_answers(channel, service):
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_unknown_service_health_is_not_found(channel):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="nope.v1.Nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_graceful_shutdown_reports_not_serving_before_draining(database_url):
    app = await build_app(settings_for(database_url))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
            await app.health.enter_graceful_shutdown()  # the first step of App.stop
            for service in SERVICES:
                status = (await health.Check(health_pb2.HealthCheckRequest(service=service))).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await app.stop(grace=0)


async def test_unreachable_database_is_unavailable_and_not_serving():
    """PostgreSQL down (nothing listens on port 1)."""
    app = await build_app(settings_for("postgresql+asyncpg://postgres@127.0.0.1:1/flowrun", migrate_on_start=False))
    await app.server.start()  # serve without the database: App.start would refuse
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            for call in (
                flows.GetFlow(flows_pb.GetFlowRequest(flow_id=str(uuid.uuid4()))),
                flows.CreateFlow(flows_pb.CreateFlowRequest(name="x")),
                runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=str(uuid.uuid4()))),
            ):
                error = await expect_error(call)
                assert error.code == grpc.StatusCode.UNAVAILABLE, error
                assert error.reason == "DATABASE_UNAVAILABLE"
                assert error.retry_delay_seconds and error.retry_delay_seconds > 0
    finally:
        await app.stop(grace=0)
