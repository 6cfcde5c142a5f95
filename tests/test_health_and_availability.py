"""Health reports the truth, and a database outage surfaces as UNAVAILABLE."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flowrun.server.app import FLOWRUN_SERVICES, build_app
from flowrun.server.health import DatabaseHealth
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

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
            assert (
                await health.Check(health_pb2.HealthCheckRequest())
            ).status == health_pb2.HealthCheckResponse.SERVING
            await app.health.enter_graceful_shutdown()  # the first step of App.stop
            for service in SERVICES:
                status = (await health.Check(health_pb2.HealthCheckRequest(service=service))).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await app.stop(grace=0)


async def test_unreachable_database_is_unavailable_and_not_serving():
    """PostgreSQL down (nothing listens on port 1). With a configured page-token secret,
    as without one build_app would read the database's key (server/shared_secrets.py)."""
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/flowrun"
    app = await build_app(settings_for(url, migrate_on_start=False, page_token_secret="configured"))
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


# --- health follows the database (server/health.py) ----------------------------------------

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING
INTERVAL = 0.05
ALL_SERVICES = ("", *FLOWRUN_SERVICES)


class FakeDatabase:
    """ping() answers, fails, or hangs, as the test says."""

    def __init__(self) -> None:
        self.mode = "up"
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.mode == "down":
            raise ConnectionRefusedError(111, "Connection refused")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "one stale connection":
            self.mode = "up"
            raise ConnectionResetError("connection was closed in the middle of operation")


async def statuses(servicer: health.aio.HealthServicer) -> set[int]:
    context = None  # Check needs a context only to abort on an unknown service
    return {
        (await servicer.Check(health_pb2.HealthCheckRequest(service=name), context)).status for name in ALL_SERVICES
    }


async def wait_for_statuses(servicer: health.aio.HealthServicer, expected: set[int], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while await statuses(servicer) != expected:
            await asyncio.sleep(INTERVAL / 2)


async def serving_servicer() -> health.aio.HealthServicer:
    servicer = health.aio.HealthServicer()
    for name in ALL_SERVICES:
        await servicer.set(name, SERVING)
    return servicer


@pytest.mark.parametrize("failure", ["down", "hang"])
async def test_every_service_is_not_serving_while_the_database_fails_and_serving_after(failure):
    """A refused connection and a ping that never answers (it times out after the
    interval) both mean NOT_SERVING for "" and every flowrun service; then SERVING."""
    database = FakeDatabase()
    servicer = await serving_servicer()
    monitor = DatabaseHealth(servicer, database, ALL_SERVICES, INTERVAL)
    await monitor.publish(SERVING)
    monitor.start()
    try:
        database.mode = failure
        await wait_for_statuses(servicer, {NOT_SERVING})
        database.mode = "up"
        await wait_for_statuses(servicer, {SERVING})
    finally:
        await monitor.stop()


async def test_one_dead_pooled_connection_is_not_an_outage():
    """The first ping after a database restart fails on a pooled connection that died
    with it; the immediate second ping (a fresh connection) answers: still SERVING."""
    database = FakeDatabase()
    servicer = await serving_servicer()
    monitor = DatabaseHealth(servicer, database, ALL_SERVICES, INTERVAL)
    database.mode = "one stale connection"
    await monitor.check()
    assert database.pings == 2
    assert await statuses(servicer) == {SERVING}
    database.mode = "down"
    await monitor.check()
    assert await statuses(servicer) == {NOT_SERVING}


async def test_graceful_shutdown_is_final_even_while_the_monitor_runs():
    """After enter_graceful_shutdown (the first step of App.stop) no check flips any
    service back to SERVING, although the database answers again."""
    database = FakeDatabase()
    servicer = await serving_servicer()
    monitor = DatabaseHealth(servicer, database, ALL_SERVICES, INTERVAL)
    await monitor.publish(SERVING)
    monitor.start()
    try:
        database.mode = "down"
        await wait_for_statuses(servicer, {NOT_SERVING})
        await servicer.enter_graceful_shutdown()
        database.mode = "up"
        pings = database.pings
        async with asyncio.timeout(10):
            while database.pings < pings + 3:
                await asyncio.sleep(INTERVAL / 2)
        await monitor.check()
        assert await statuses(servicer) == {NOT_SERVING}
    finally:
        await monitor.stop()


async def test_app_stop_stops_the_monitor(tmp_path):
    app = await build_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}"))
    await app.start()
    assert app.monitor.running
    await app.stop(grace=0)
    assert not app.monitor.running


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_watch_follows_postgresql_going_down_and_coming_back(private_postgres):
    """A Watch stream on "" reports NOT_SERVING when PostgreSQL stops and SERVING when
    it is back, with no restart of the server; Check agrees for every service.

    PostgreSQL only, and on a private cluster (restarting the shared one would break
    the session server's pooled connections). SQLite has no meaningful equivalent: it is
    a file in this process, not a server that can go away; a deleted file keeps working
    through open handles and a new one would be created empty, and root (as here) reads
    files whatever their permissions."""
    url = private_postgres.url(driver="postgresql+asyncpg")
    app = await build_app(settings_for(url, health_check_interval_seconds=0.2))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
            seen = [(await watch.read()).status]
            assert seen == [SERVING]
            try:
                await asyncio.to_thread(private_postgres.stop)
                async with asyncio.timeout(30):
                    seen.append((await watch.read()).status)
                assert seen[-1] == NOT_SERVING, seen
                for name in ALL_SERVICES:
                    assert (await stub.Check(health_pb2.HealthCheckRequest(service=name))).status == NOT_SERVING
            finally:
                await asyncio.to_thread(private_postgres.ensure_running)
            async with asyncio.timeout(30):
                seen.append((await watch.read()).status)
            assert seen == [SERVING, NOT_SERVING, SERVING]
            for name in ALL_SERVICES:
                assert (await stub.Check(health_pb2.HealthCheckRequest(service=name))).status == SERVING
            watch.cancel()
    finally:
        await app.stop(grace=0)
