"""Two server processes on one database, both running the zombie sweep, while clients
complete runs, heartbeat and go silent through both: afterwards no completed run was
ever crashed, every silent run was crashed exactly once, and the deployment's slot count
is exact. Real time (the processes have clocks of their own), with a short heartbeat
timeout and a fast sweep."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid

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
from tests.conftest import fresh_database
from tests.helpers.servers import running_servers

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds

TIMEOUT_SECONDS = 2
BEAT_EVERY = 0.25
SILENT, KEEPERS, RACERS = 10, 10, 10
SERVICES = {
    "FLOWRUN_SERVICES": "zombies",
    "FLOWRUN_ZOMBIES_INTERVAL_SECONDS": "0.1",
    "FLOWRUN_SERVICES_BATCH_SIZE": "3",  # several reads per pass
}
SCHEDULED, PENDING, RUNNING = state_pb2.STATE_TYPE_SCHEDULED, state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING
COMPLETED, CRASHED = state_pb2.STATE_TYPE_COMPLETED, state_pb2.STATE_TYPE_CRASHED


class Server:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        self.runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        self.deployments = deployment_service_pb2_grpc.DeploymentServiceStub(channel)

    async def propose(self, run_id: str, state_type: int) -> runs_pb.SetFlowRunStateResponse:
        state = state_pb2.StateCreate(type=state_type)
        return await self.runs.SetFlowRunState(runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state))

    async def heartbeat(self, run_id: str) -> str | None:
        """None when recorded, else the state type the server says the run is in."""
        try:
            await self.runs.HeartbeatFlowRun(runs_pb.HeartbeatFlowRunRequest(flow_run_id=run_id))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return error.details()
        return None

    async def history(self, run_id: str) -> list[int]:
        request = runs_pb.ListFlowRunStatesRequest(flow_run_id=run_id, page_size=1000)
        return [state.type for state in (await self.runs.ListFlowRunStates(request)).states]


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_two_sweeping_servers_crash_exactly_the_silent_runs(backend, tmp_path):
    async with (
        fresh_database(backend, tmp_path) as url,
        running_servers(url, 2, tmp_path, env=SERVICES) as addresses,
        contextlib.AsyncExitStack() as stack,
    ):
        channels = [await stack.enter_async_context(grpc.aio.insecure_channel(address)) for address in addresses]
        servers = [Server(channel) for channel in channels]
        alternate = itertools.cycle(servers)
        first = servers[0]
        flow = (await first.flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"mp-{uuid.uuid4().hex}"))).flow
        deployment = (
            await first.deployments.CreateDeployment(
                deployment_service_pb2.CreateDeploymentRequest(flow_id=flow.id, name="d", concurrency_limit=1000)
            )
        ).deployment

        async def started() -> str:
            request = runs_pb.CreateFlowRunRequest(
                flow_id=flow.id, deployment_id=deployment.id, state=state_pb2.StateCreate(type=SCHEDULED)
            )
            request.heartbeat_timeout.seconds = TIMEOUT_SECONDS
            run_id = (await next(alternate).runs.CreateFlowRun(request)).flow_run.id
            assert (await next(alternate).propose(run_id, PENDING)).status == state_pb2.SET_STATE_STATUS_ACCEPT
            assert (await next(alternate).propose(run_id, RUNNING)).status == state_pb2.SET_STATE_STATUS_ACCEPT
            return run_id

        silent = list(await asyncio.gather(*(started() for _ in range(SILENT))))
        keepers = list(await asyncio.gather(*(started() for _ in range(KEEPERS))))
        racers = list(await asyncio.gather(*(started() for _ in range(RACERS))))

        async def keep_alive_then_complete(run_id: str) -> None:
            """Beats through both servers for longer than the timeout, completes, then
            beats once more, as a process does between completing and exiting."""
            beats = int(1.5 * TIMEOUT_SECONDS / BEAT_EVERY)
            for index in range(beats):
                assert await servers[index % 2].heartbeat(run_id) is None, "a keeper was crashed"
                await asyncio.sleep(BEAT_EVERY)
            assert (await servers[0].propose(run_id, COMPLETED)).state.type == COMPLETED
            assert "COMPLETED" in (await servers[1].heartbeat(run_id) or "")

        async def complete_at_the_deadline(run_id: str, index: int) -> None:
            """Stops beating and completes right around its deadline, racing the sweeps."""
            await servers[index % 2].heartbeat(run_id)
            await asyncio.sleep(TIMEOUT_SECONDS + (index % 5 - 2) * 0.05)
            await servers[(index + 1) % 2].propose(run_id, COMPLETED)
            await servers[index % 2].heartbeat(run_id)

        await asyncio.gather(
            *map(keep_alive_then_complete, keepers),
            *(complete_at_the_deadline(run_id, index) for index, run_id in enumerate(racers)),
        )

        async def all_silent_crashed() -> bool:
            histories = [await first.history(run_id) for run_id in silent]
            return all(history[-1] == CRASHED for history in histories)

        deadline = asyncio.get_running_loop().time() + 30
        while not await all_silent_crashed():
            assert asyncio.get_running_loop().time() < deadline, "silent runs were not crashed"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # several more passes of both sweeps: nothing may change

        for run_id in silent:
            assert await first.history(run_id) == [SCHEDULED, PENDING, RUNNING, CRASHED]
        for run_id in keepers:
            assert await first.history(run_id) == [SCHEDULED, PENDING, RUNNING, COMPLETED]
        for run_id in racers:  # completed in time, or crashed first and completed after
            history = await first.history(run_id)
            assert history[-1] == COMPLETED and history.count(CRASHED) <= 1, history
            assert history[:3] == [SCHEDULED, PENDING, RUNNING] and len(history) <= 5, history
        request = deployment_service_pb2.GetDeploymentRequest(deployment_id=deployment.id)
        for server in servers:
            assert (await server.deployments.GetDeployment(request)).deployment.active_slots == 0
