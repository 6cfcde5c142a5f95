"""Prometheus metrics (server/metrics.py, server/observability.py, server/metrics_export.py)
on an in-process server with FLOWRUN_METRICS_PORT set: RPCs by method and code,
orchestration outcomes and deciding rules, forced transitions, lock waits and timeouts,
leases reaped, the pool, conflicts, database availability, deployment slots with their
capped labels, and the endpoint itself. Values are read from this process's registry as
deltas (the registry is shared by every test in the process)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid
from datetime import timedelta

import asyncpg
import grpc
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from flowrun.server import errors, metrics
from flowrun.server.app import build_app, observability_interceptors
from flowrun.server.error_mapping import to_grpc_status
from flowrun.server.health import NOT_SERVING, SERVING, DatabaseHealth
from flowrun.server.metrics_export import MetricsEndpoint, PoolSampler, SlotCollector
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2, flow_service_pb2_grpc, state_pb2
from tests.conftest import fresh_database, settings_for
from tests.helpers.factories import create_deployment

FLOWS = "/flowrun.v1.FlowService/"
RUNS = "/flowrun.v1.FlowRunService/"
S = state_pb2


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def counted(check, timeout: float = 5.0) -> None:
    """Waits until `check()` holds: an aborted call's status reaches the client before
    the call's own task has finished recording it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "never counted"
        await asyncio.sleep(0.005)


class Deltas:
    """Sample values now, to compare with later: `deltas(name, **labels)`."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self._before = {(name, tuple(sorted(labels.items()))): value(name, **labels) for name, labels in samples}

    def __call__(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self._before[(name, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
async def metered(database_url):
    """A server with metrics on (its endpoint is not started: the registry is read directly)."""
    app = await build_app(
        settings_for(database_url, metrics_port=0, lock_timeout_ms=200, db_pool_size=2, db_max_overflow=0)
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


@pytest.fixture(scope="module")
async def stubs(metered):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        yield (
            channel,
            flow_service_pb2_grpc.FlowServiceStub(channel),
            flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
        )


def set_state(run_id: str, state_type: int, *, force: bool = False) -> runs_pb.SetFlowRunStateRequest:
    return runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=S.StateCreate(type=state_type), force=force)


async def test_rpcs_are_counted_by_method_and_final_code_with_their_latency(stubs):
    _, flows, _ = stubs
    create, get = FLOWS + "CreateFlow", FLOWS + "GetFlow"
    deltas = Deltas(
        ("flowrun_rpc_requests_total", {"method": create, "code": "OK"}),
        ("flowrun_rpc_requests_total", {"method": create, "code": "INVALID_ARGUMENT"}),
        ("flowrun_rpc_requests_total", {"method": get, "code": "NOT_FOUND"}),
        ("flowrun_rpc_duration_seconds_count", {"method": create}),
        ("flowrun_rpc_duration_seconds_bucket", {"method": create, "le": "10.0"}),
        ("flowrun_rpc_duration_seconds_bucket", {"method": create, "le": "+Inf"}),
    )
    await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"m-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=""))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await flows.GetFlow(flow_service_pb2.GetFlowRequest(flow_id=str(uuid.uuid4())))
    assert (invalid.value.code(), missing.value.code()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
    )
    await counted(lambda: deltas("flowrun_rpc_duration_seconds_count", method=create) == 2)
    await counted(lambda: deltas("flowrun_rpc_requests_total", method=get, code="NOT_FOUND") == 1)
    assert deltas("flowrun_rpc_requests_total", method=create, code="OK") == 1
    assert deltas("flowrun_rpc_requests_total", method=create, code="INVALID_ARGUMENT") == 1
    assert deltas("flowrun_rpc_duration_seconds_bucket", method=create, le="+Inf") == 2
    assert metrics.LATENCY_BUCKETS[0] == 0.001  # buckets start at 1 ms


async def test_a_call_whose_deadline_passes_counts_as_deadline_exceeded(stubs, monkeypatch):
    _, flows, _ = stubs
    get = FLOWS + "GetFlow"
    deltas = Deltas(("flowrun_rpc_requests_total", {"method": get, "code": "DEADLINE_EXCEEDED"}))
    from flowrun.server.repositories.flows import FlowRepository

    real_get = FlowRepository.get

    async def slow_get(self, flow_id):
        await asyncio.sleep(0.3)
        return await real_get(self, flow_id)

    monkeypatch.setattr(FlowRepository, "get", slow_get)
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await flows.GetFlow(flow_service_pb2.GetFlowRequest(flow_id=str(uuid.uuid4())), timeout=0.1)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await counted(lambda: deltas("flowrun_rpc_requests_total", method=get, code="DEADLINE_EXCEEDED") == 1)


async def test_a_call_its_client_cancels_counts_as_cancelled(stubs, monkeypatch):
    _, flows, _ = stubs
    get = FLOWS + "GetFlow"
    deltas = Deltas(("flowrun_rpc_requests_total", {"method": get, "code": "CANCELLED"}))
    from flowrun.server.repositories.flows import FlowRepository

    started = asyncio.Event()
    real_get = FlowRepository.get

    async def slow_get(self, flow_id):
        started.set()
        await asyncio.sleep(0.3)
        return await real_get(self, flow_id)

    monkeypatch.setattr(FlowRepository, "get", slow_get)
    call = flows.GetFlow(flow_service_pb2.GetFlowRequest(flow_id=str(uuid.uuid4())), timeout=30)
    await started.wait()
    call.cancel()
    await counted(lambda: deltas("flowrun_rpc_requests_total", method=get, code="CANCELLED") == 1)


async def test_orchestration_outcomes_deciding_rules_forced_transitions_and_lock_waits(stubs, backend):
    _, flows, runs = stubs
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"m-{uuid.uuid4().hex[:8]}"))).flow
    kind = {"kind": "flow_run"}
    rule = "HandleFlowTerminalStateTransitions"
    outcomes = "flowrun_orchestration_outcomes_total"
    created = {**kind, "from_type": "NONE", "to_type": "SCHEDULED", "status": "ACCEPT"}
    pending = {**kind, "from_type": "SCHEDULED", "to_type": "PENDING", "status": "ACCEPT"}
    aborted = {**kind, "from_type": "COMPLETED", "to_type": "CANCELLING", "status": "ABORT"}
    deltas = Deltas(
        (outcomes, created),
        (outcomes, pending),
        (outcomes, aborted),
        ("flowrun_orchestration_rule_decisions_total", {**kind, "rule": rule, "status": "ABORT"}),
        ("flowrun_orchestration_forced_transitions_total", kind),
        ("flowrun_orchestration_lock_wait_seconds_count", kind),
    )
    scheduled = S.StateCreate(type=S.STATE_TYPE_SCHEDULED)
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, state=scheduled))).flow_run
    for state_type in (S.STATE_TYPE_PENDING, S.STATE_TYPE_RUNNING, S.STATE_TYPE_COMPLETED):
        assert (await runs.SetFlowRunState(set_state(run.id, state_type))).status == S.SET_STATE_STATUS_ACCEPT
    refused = await runs.SetFlowRunState(set_state(run.id, S.STATE_TYPE_CANCELLING))
    assert refused.status == S.SET_STATE_STATUS_ABORT
    forced = await runs.SetFlowRunState(set_state(run.id, S.STATE_TYPE_CANCELLING, force=True))
    assert forced.status == S.SET_STATE_STATUS_ACCEPT

    assert [deltas(outcomes, **labels) for labels in (created, pending, aborted)] == [1, 1, 1]
    assert deltas("flowrun_orchestration_rule_decisions_total", **kind, rule=rule, status="ABORT") == 1
    # The initial state is applied with force, and so was the last proposal.
    assert deltas("flowrun_orchestration_forced_transitions_total", **kind) == 2
    # Every SetFlowRunState that wrote locked the run; the created run needed no lock. On
    # PostgreSQL the refused proposal wrote nothing and took no lock (orchestration/unlocked.py).
    writes = 4 if backend == "postgres" else 5
    assert deltas("flowrun_orchestration_lock_wait_seconds_count", **kind) == writes


async def test_a_lock_timeout_is_counted(stubs, backend, database_url):
    if backend != "postgres":
        pytest.skip("lock_timeout is PostgreSQL's; SQLite's writers queue on the write gate")
    _, flows, runs = stubs
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"m-{uuid.uuid4().hex[:8]}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    deltas = Deltas(
        ("flowrun_orchestration_lock_timeouts_total", {"kind": "flow_run"}), ("flowrun_db_conflicts_total", {})
    )
    holder = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM flow_run WHERE id = $1 FOR UPDATE", uuid.UUID(run.id))
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await runs.SetFlowRunState(set_state(run.id, S.STATE_TYPE_RUNNING), timeout=10)
            assert error.value.code() == grpc.StatusCode.ABORTED
    finally:
        await holder.close()
    assert deltas("flowrun_orchestration_lock_timeouts_total", kind="flow_run") == 1
    await counted(lambda: deltas("flowrun_db_conflicts_total") == 1)


async def test_reaped_leases_are_counted(stubs, metered, move_clock):
    channel, flows, runs = stubs
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"m-{uuid.uuid4().hex[:8]}"))).flow
    deployment_id = await create_deployment(channel, flow.id, concurrency_limit=1)
    scheduled = S.StateCreate(type=S.STATE_TYPE_SCHEDULED)
    request = runs_pb.CreateFlowRunRequest(flow_id=flow.id, deployment_id=deployment_id, state=scheduled)
    run = (await runs.CreateFlowRun(request)).flow_run
    assert (await runs.SetFlowRunState(set_state(run.id, S.STATE_TYPE_PENDING))).status == S.SET_STATE_STATUS_ACCEPT
    deltas = Deltas(("flowrun_slot_leases_reaped_total", {}))
    move_clock(timedelta(seconds=metered.settings.deployment_lease_seconds + 1))
    reaped = await metered.reaper.reap_once()
    assert reaped >= 1
    assert deltas("flowrun_slot_leases_reaped_total") == reaped


async def test_pool_gauges_follow_the_pool_and_count_waiters(metered):
    """Fill the pool (the server keeps none checked out for itself: the watch hub's
    LISTEN connection is taken only while a watch stream is attached); one more unit of
    work waits."""
    database = metered.database
    pool = database.engine.pool
    sampler = PoolSampler(database)
    sampler.sample()
    assert value("flowrun_db_pool_size") == pool.size() == 2
    async with asyncio.timeout(20), contextlib.AsyncExitStack() as held:
        # Fill it to the brim with connections of our own (one a background loop holds for a
        # moment, the health check's ping, comes back).
        for _ in range(pool.size()):
            await held.enter_async_context(database.unit_of_work(write=False))
        sampler.sample()
        assert value("flowrun_db_pool_checked_out") == 2
        waiter = asyncio.ensure_future(_one_unit_of_work(database))
        await counted(lambda: database.waiting >= 1)  # background loops may be queued too
        sampler.sample()
        assert value("flowrun_db_pool_waiting") == database.waiting >= 1
    await waiter
    await counted(lambda: database.waiting == 0)
    sampler.sample()
    assert value("flowrun_db_pool_waiting") == 0


async def _one_unit_of_work(database) -> None:
    async with database.unit_of_work(write=False):
        pass


def test_conflicts_are_counted_where_they_become_aborted():
    class Serialization(Exception):
        sqlstate = "40001"

    deltas = Deltas(("flowrun_db_conflicts_total", {}))
    metrics.enable()
    assert to_grpc_status(Serialization(), "/m").code == grpc.StatusCode.ABORTED
    assert to_grpc_status(errors.Conflict("the commit failed"), "/m").code == grpc.StatusCode.ABORTED
    assert to_grpc_status(errors.NotFound("FLOW_RUN_NOT_FOUND", "no such run"), "/m").code == grpc.StatusCode.NOT_FOUND
    assert deltas("flowrun_db_conflicts_total") == 2


async def test_database_up_follows_health():
    class Servicer:
        async def set(self, name, status) -> None:
            pass

    monitor = DatabaseHealth(Servicer(), None, [""], 1.0)  # type: ignore[arg-type]
    metrics.enable()
    await monitor.publish(SERVING)
    assert value("flowrun_database_up") == 1
    await monitor.publish(NOT_SERVING)
    assert value("flowrun_database_up") == 0
    await monitor.publish(SERVING)
    assert value("flowrun_database_up") == 1


async def test_slots_are_read_at_scrape_time_with_capped_deployment_labels(tmp_path):
    """Three limited deployments with 3, 2 and 1 slots in use and a cap of 2: the two
    busiest get series of their own, the third is summed into deployment="other"."""
    async with fresh_database("sqlite", tmp_path) as url:
        settings = settings_for(url, metrics_port=0, metrics_max_deployments=2)
        app = await build_app(settings)
        await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                flows = flow_service_pb2_grpc.FlowServiceStub(channel)
                runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
                flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name="slots"))).flow
                deployments = {}
                for busy, limit in ((3, 5), (2, 4), (1, 7)):
                    deployment_id = await create_deployment(channel, flow.id, concurrency_limit=limit)
                    deployments[busy] = deployment_id
                    for _ in range(busy):
                        run = (
                            await runs.CreateFlowRun(
                                runs_pb.CreateFlowRunRequest(
                                    flow_id=flow.id,
                                    deployment_id=deployment_id,
                                    state=S.StateCreate(type=S.STATE_TYPE_SCHEDULED),
                                )
                            )
                        ).flow_run
                        pending = await runs.SetFlowRunState(set_state(run.id, S.STATE_TYPE_PENDING))
                        assert pending.status == S.SET_STATE_STATUS_ACCEPT
                await create_deployment(channel, flow.id)  # unlimited: no series
            collector = SlotCollector(settings)
            try:
                collected = await asyncio.to_thread(list, collector.collect())  # as the HTTP thread does
                again = await asyncio.to_thread(list, collector.collect())  # the kept connection serves again
            finally:
                collector.close()
        finally:
            await app.stop(grace=0)
    families = {family.name: family.samples for family in collected}
    assert {family.name: family.samples for family in again} == families
    active = {sample.labels["deployment"]: sample.value for sample in families["flowrun_deployment_slots_active"]}
    limits = {sample.labels["deployment"]: sample.value for sample in families["flowrun_deployment_slots_limit"]}
    assert active == {deployments[3]: 3, deployments[2]: 2, "other": 1}
    assert limits == {deployments[3]: 5, deployments[2]: 4, "other": 7}


async def test_the_endpoint_serves_our_metrics_and_the_library_defaults(stubs, metered):
    _, flows, _ = stubs
    await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"m-{uuid.uuid4().hex[:8]}"))
    endpoint = MetricsEndpoint(metered.settings)
    try:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        text = (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())).decode()
    finally:
        endpoint.stop()
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    assert {"flowrun_rpc_requests_total", "flowrun_rpc_duration_seconds_bucket", "flowrun_db_pool_size"} <= names
    assert "process_cpu_seconds_total" in names  # the library's process collector
    assert "flowrun_deployment_slots_active" in text  # its HELP at least, even with no limited deployment


def test_metrics_off_installs_no_interceptor():
    assert observability_interceptors(settings_for("sqlite+aiosqlite:///unused.db")) == []
    assert len(observability_interceptors(settings_for("sqlite+aiosqlite:///unused.db", metrics_port=0))) == 1
    assert len(observability_interceptors(settings_for("sqlite+aiosqlite:///unused.db", log_format="json"))) == 1
