"""The slot invariant under concurrent load across server processes on one PostgreSQL
database: in every snapshot, the runs of a limited deployment that are PENDING, RUNNING
or CANCELLING are exactly the holders of its live leases, never more than the limit."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg
import grpc
import pytest

from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    state_pb2,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.helpers.servers import running_servers

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds each

LIMIT = 3
RUNS = 24
CLIENTS = 16
TIME_LIMIT_SECONDS = 60

SNAPSHOT = """
SELECT
  (SELECT count(*) FROM flow_run
    WHERE deployment_id = $1 AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING')) AS active_runs,
  (SELECT count(*) FROM concurrency_lease WHERE deployment_id = $1 AND expiration >= now()) AS live_leases,
  (SELECT count(*) FROM concurrency_lease l JOIN flow_run r ON r.id = l.flow_run_id
    WHERE l.deployment_id = $1 AND r.state_type IN ('PENDING', 'RUNNING', 'CANCELLING')) AS held_by_active
"""


async def drive(addresses: list[str], deployment_id: str, flow_id: str, run_ids: list[str], deadline: float) -> None:
    """Each client takes a run, asks for PENDING until it gets a slot, then runs it to
    COMPLETED (a fifth of them cancel instead)."""
    channels = [grpc.aio.insecure_channel(address) for address in addresses]
    pending = asyncio.Queue()
    for run_id in run_ids:
        pending.put_nowait(run_id)

    async def client(index: int) -> None:
        stub = flow_run_service_pb2_grpc.FlowRunServiceStub(channels[index % len(channels)])

        async def propose(run_id: str, state_type: int):
            request = runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type))
            return await stub.SetFlowRunState(request, timeout=20)

        while time.monotonic() < deadline:
            try:
                run_id = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            outcome = await propose(run_id, state_pb2.STATE_TYPE_PENDING)
            if outcome.status != state_pb2.SET_STATE_STATUS_ACCEPT:
                assert outcome.state.name == "AwaitingConcurrencySlot", outcome
                pending.put_nowait(run_id)
                await asyncio.sleep(random.uniform(0.001, 0.01))
                continue
            path = (
                [state_pb2.STATE_TYPE_CANCELLING, state_pb2.STATE_TYPE_CANCELLED]
                if random.random() < 0.2
                else [state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED]
            )
            for state_type in path:
                assert (await propose(run_id, state_type)).status == state_pb2.SET_STATE_STATUS_ACCEPT

    try:
        await asyncio.gather(*(client(index) for index in range(CLIENTS)))
    finally:
        for channel in channels:
            await channel.close()
    assert pending.empty(), "the clients ran out of time"


async def test_slots_hold_across_two_server_processes(tmp_path):
    name, url = await create_postgres_database()
    admin_url = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        # Runs turned away wait 0 s (not 30) before they may try again.
        env = {"FLOWRUN_DEPLOYMENT_SLOT_WAIT_SECONDS": "0"}
        async with running_servers(url, 2, tmp_path, env=env) as addresses:
            async with grpc.aio.insecure_channel(addresses[0]) as channel:
                flow = (
                    await flow_service_pb2_grpc.FlowServiceStub(channel).CreateFlow(
                        flow_service_pb2.CreateFlowRequest(name="slots")
                    )
                ).flow
                deployment = (
                    await deployment_service_pb2_grpc.DeploymentServiceStub(channel).CreateDeployment(
                        deployment_service_pb2.CreateDeploymentRequest(
                            flow_id=flow.id, name="limited", concurrency_limit=LIMIT
                        )
                    )
                ).deployment
                runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
                run_ids = [
                    (
                        await runs.CreateFlowRun(
                            runs_pb.CreateFlowRunRequest(
                                flow_id=flow.id,
                                deployment_id=deployment.id,
                                state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
                            )
                        )
                    ).flow_run.id
                    for _ in range(RUNS)
                ]

            samples = []
            stop = asyncio.Event()
            watcher = await asyncpg.connect(admin_url)

            async def watch() -> None:
                while not stop.is_set():
                    samples.append(tuple(await watcher.fetchrow(SNAPSHOT, uuid.UUID(deployment.id))))
                    await asyncio.sleep(0.002)

            watching = asyncio.create_task(watch())
            try:
                await drive(addresses, deployment.id, flow.id, run_ids, time.monotonic() + TIME_LIMIT_SECONDS)
            finally:
                stop.set()
                await watching
            final = tuple(await watcher.fetchrow(SNAPSHOT, uuid.UUID(deployment.id)))
            await watcher.close()

        assert len(samples) > 50
        for active_runs, live_leases, held_by_active in samples:
            assert 0 <= live_leases <= LIMIT
            assert active_runs == live_leases == held_by_active
        assert max(sample[1] for sample in samples) == LIMIT  # the load really contended
        assert final == (0, 0, 0)
    finally:
        await drop_postgres_database(name)
