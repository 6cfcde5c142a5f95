"""Deployment concurrency slots: taken on PENDING, renewed on RUNNING, freed on leaving the
active states or on delete, kept for an in-process retry, and freed by lease expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import func, select

from flowrun.server.app import build_app
from flowrun.server.db.tables import concurrency_lease
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_run_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    state_pb2,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import expect_error

ACCEPT, REJECT, ABORT = (
    state_pb2.SET_STATE_STATUS_ACCEPT,
    state_pb2.SET_STATE_STATUS_REJECT,
    state_pb2.SET_STATE_STATUS_ABORT,
)
SCHEDULED, PENDING, RUNNING = state_pb2.STATE_TYPE_SCHEDULED, state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING
COMPLETED, FAILED, CANCELLED = (
    state_pb2.STATE_TYPE_COMPLETED,
    state_pb2.STATE_TYPE_FAILED,
    state_pb2.STATE_TYPE_CANCELLED,
)


class Slots:
    """A flow with one limited deployment, and helpers to drive its runs."""

    def __init__(self, channel, unique: str) -> None:
        self.flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        self.runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        self.deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
        self.unique = unique

    async def deployment(self, limit: int | None, strategy=deployment_pb2.COLLISION_STRATEGY_ENQUEUE) -> str:
        flow = (await self.flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"slots-{self.unique}"))).flow
        request = deployment_service_pb2.CreateDeploymentRequest(
            flow_id=flow.id,
            name=f"d-{uuid.uuid4().hex[:8]}",
            concurrency_options=deployment_pb2.ConcurrencyOptions(collision_strategy=strategy),
        )
        if limit is not None:
            request.concurrency_limit = limit
        self.flow_id = flow.id
        return (await self.deployments.CreateDeployment(request)).deployment.id

    async def run(self, deployment_id: str, state=SCHEDULED, retries: int | None = None) -> str:
        request = runs_pb.CreateFlowRunRequest(
            flow_id=self.flow_id, deployment_id=deployment_id, state=state_pb2.StateCreate(type=state)
        )
        if retries is not None:
            request.empirical_policy.CopyFrom(flow_run_pb2.FlowRunPolicy(retries=retries))
        return (await self.runs.CreateFlowRun(request)).flow_run.id

    async def propose(self, run_id: str, state_type: int, force: bool = False):
        return await self.runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(
                flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type), force=force
            )
        )

    async def active_slots(self, deployment_id: str) -> int:
        request = deployment_service_pb2.GetDeploymentRequest(deployment_id=deployment_id)
        return (await self.deployments.GetDeployment(request)).deployment.active_slots


@pytest.fixture
def slots(channel, unique) -> Slots:
    return Slots(channel, unique)


async def test_enqueue_takes_waits_and_frees_slots(slots):
    deployment = await slots.deployment(limit=1)
    first, second = await slots.run(deployment), await slots.run(deployment)

    taken = await slots.propose(first, PENDING)
    assert taken.status == ACCEPT
    lease_id = taken.state.state_details.deployment_concurrency_lease_id
    assert uuid.UUID(lease_id) and await slots.active_slots(deployment) == 1

    waiting = await slots.propose(second, PENDING)
    assert waiting.status == REJECT and waiting.reject.reason == "Deployment concurrency limit reached."
    assert (waiting.state.type, waiting.state.name) == (SCHEDULED, "AwaitingConcurrencySlot")
    delay = waiting.state.state_details.scheduled_time.ToDatetime(tzinfo=UTC) - waiting.state.timestamp.ToDatetime(
        tzinfo=UTC
    )
    assert timedelta(seconds=29) <= delay <= timedelta(seconds=31)

    running = await slots.propose(first, RUNNING)
    assert running.status == ACCEPT
    assert running.state.state_details.deployment_concurrency_lease_id == lease_id
    assert await slots.active_slots(deployment) == 1

    assert (await slots.propose(first, COMPLETED)).status == ACCEPT
    assert await slots.active_slots(deployment) == 0
    assert (await slots.propose(second, PENDING)).status == ACCEPT
    assert await slots.active_slots(deployment) == 1


async def test_cancel_new_cancels_the_run_that_finds_no_slot(slots):
    deployment = await slots.deployment(limit=1, strategy=deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW)
    first, second = await slots.run(deployment), await slots.run(deployment)
    assert (await slots.propose(first, PENDING)).status == ACCEPT
    outcome = await slots.propose(second, PENDING)
    assert outcome.status == REJECT
    assert (outcome.state.type, outcome.state.message) == (CANCELLED, "Deployment concurrency limit reached.")
    assert await slots.active_slots(deployment) == 1


async def test_limit_zero_aborts(slots):
    deployment = await slots.deployment(limit=0)
    outcome = await slots.propose(await slots.run(deployment), PENDING)
    assert outcome.status == ABORT
    assert outcome.abort.reason == "The deployment concurrency limit is 0. The flow will deadlock if submitted again."


async def test_unlimited_deployment_takes_no_slot(slots):
    deployment = await slots.deployment(limit=None)
    outcome = await slots.propose(await slots.run(deployment), PENDING)
    assert outcome.status == ACCEPT and not outcome.state.state_details.deployment_concurrency_lease_id


async def test_deleting_a_pending_run_frees_its_slot(slots):
    deployment = await slots.deployment(limit=1)
    run = await slots.run(deployment)
    assert (await slots.propose(run, PENDING)).status == ACCEPT
    await slots.runs.DeleteFlowRun(runs_pb.DeleteFlowRunRequest(flow_run_id=run))
    assert await slots.active_slots(deployment) == 0


async def test_in_process_retry_keeps_its_slot(slots):
    deployment = await slots.deployment(limit=1)
    run = await slots.run(deployment, retries=1)
    for target in (PENDING, RUNNING):
        assert (await slots.propose(run, target)).status == ACCEPT
    retry = await slots.propose(run, FAILED)
    assert (retry.status, retry.state.name) == (REJECT, "AwaitingRetry")
    assert await slots.active_slots(deployment) == 1
    assert (await slots.propose(run, RUNNING)).status == ACCEPT
    assert (await slots.propose(run, FAILED)).status == ACCEPT  # no retries left
    assert await slots.active_slots(deployment) == 0


async def test_runs_that_never_took_a_slot_release_nothing(slots):
    deployment = await slots.deployment(limit=1)
    holder = await slots.run(deployment)
    assert (await slots.propose(holder, PENDING)).status == ACCEPT
    bypass = await slots.run(deployment, state=PENDING)  # created PENDING: forced, no slot
    for target in (RUNNING, COMPLETED):
        assert (await slots.propose(bypass, target)).status == ACCEPT
    assert await slots.active_slots(deployment) == 1  # the holder's slot is untouched


async def test_run_of_a_deleted_deployment_aborts_on_pending(slots):
    deployment = await slots.deployment(limit=2)
    run = await slots.run(deployment)
    await slots.deployments.DeleteDeployment(deployment_service_pb2.DeleteDeploymentRequest(deployment_id=deployment))
    outcome = await slots.propose(run, PENDING)
    assert (outcome.status, outcome.abort.reason) == (ABORT, "Deployment not found.")


async def test_renewing_a_held_lease(slots):
    deployment = await slots.deployment(limit=1)
    run = await slots.run(deployment)
    lease_id = (await slots.propose(run, PENDING)).state.state_details.deployment_concurrency_lease_id
    renewed = await slots.deployments.RenewConcurrencyLease(
        deployment_service_pb2.RenewConcurrencyLeaseRequest(lease_id=lease_id)
    )
    assert renewed.ttl == Duration(seconds=300)
    assert renewed.expiration.ToDatetime(tzinfo=UTC) > datetime.now(UTC) + timedelta(seconds=290)
    assert (await slots.propose(run, COMPLETED)).status == ACCEPT
    error = await expect_error(
        slots.deployments.RenewConcurrencyLease(deployment_service_pb2.RenewConcurrencyLeaseRequest(lease_id=lease_id))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "LEASE_NOT_FOUND")


async def test_expired_leases_free_their_slots_and_are_reaped(database_url, unique, move_clock):
    """A run abandoned in PENDING loses its slot when its lease expires; the next run
    takes it; the abandoned run then cannot start; the reaper deletes the dead lease.
    The server's clock moves past the lease's 5 s instead of the test waiting them out."""
    app = await build_app(settings_for(database_url, deployment_lease_seconds=5, lease_reap_interval_seconds=0.05))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            slots = Slots(channel, unique)
            deployment = await slots.deployment(limit=1)
            abandoned, next_run = await slots.run(deployment), await slots.run(deployment)
            lease = (await slots.propose(abandoned, PENDING)).state.state_details.deployment_concurrency_lease_id
            assert (await slots.propose(next_run, PENDING)).status == REJECT
            assert await slots.active_slots(deployment) == 1
            move_clock(timedelta(seconds=6))
            assert await slots.active_slots(deployment) == 0
            assert (await slots.propose(next_run, PENDING)).status == ACCEPT

            async def lease_rows() -> int:
                async with app.database.unit_of_work(write=False) as uow:
                    remaining = await uow.connection.execute(
                        select(func.count()).select_from(concurrency_lease).where(concurrency_lease.c.id == lease)
                    )
                    return remaining.scalar_one()

            async with asyncio.timeout(10):  # the reaper runs every 0.05 s
                while await lease_rows():
                    await asyncio.sleep(0.01)
            lost = await slots.propose(abandoned, RUNNING)
            assert (lost.status, lost.state.type) == (REJECT, CANCELLED)
            assert lost.reject.reason == "Deployment concurrency limit reached after lease expiry."
    finally:
        await app.stop(grace=0)
