"""Metrics with --workers 2: one scrape of the supervisor's endpoint shows the sum over
the workers (prometheus-client's multiprocess mode), a worker that dies keeps its counts
in the sum while its live gauges leave it, and a single-process server serves its own."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
import uuid

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.helpers.processes import alive, connections_per_worker, worker_pids
from tests.helpers.servers import HOST, ServerProcess, free_port

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]
CREATE = "/flowrun.v1.FlowService/CreateFlow"
POOL_SIZE = 3
# Channels to one target share one connection unless each keeps its subchannels to itself.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def created(samples) -> float:
    return samples.get(("flowrun_rpc_requests_total", (("code", "OK"), ("method", CREATE))), 0.0)


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def create_flows_on_both_workers(server: ServerProcess, per_channel: int) -> int:
    """Opens channels until both workers hold connections (the kernel spreads connections,
    not calls), makes `per_channel` calls on each, and returns how many were made."""
    channels = []
    try:
        while True:
            channel = grpc.aio.insecure_channel(server.address, options=OWN_CONNECTION)
            channels.append(channel)
            await channel.channel_ready()
            per_worker = connections_per_worker(server)
            if len(per_worker) == 2 and all(per_worker.values()):
                break
            assert len(channels) < 64, f"every connection went to one worker: {per_worker}"
        for channel in channels:
            stub = flow_service_pb2_grpc.FlowServiceStub(channel)
            for _ in range(per_channel):
                await stub.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"mp-{uuid.uuid4().hex[:10]}"))
        return len(channels) * per_channel
    finally:
        for channel in channels:
            await channel.close()


async def test_one_scrape_sums_every_worker(tmp_path):
    metrics_port = free_port()
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        log_path=tmp_path / "server.log",
        args=["--workers", "2"],
        env={"FLOWRUN_METRICS_PORT": str(metrics_port), "FLOWRUN_DB_POOL_SIZE": str(POOL_SIZE)},
    )
    try:
        server.wait_until_serving(60)
        made = await create_flows_on_both_workers(server, per_channel=3)
        # Every call's count is in one scrape, whichever worker served it.
        samples = await asyncio.to_thread(wait_for, lambda: (s := scrape(metrics_port)) and created(s) == made and s)
        # Live gauges add up over the workers: each keeps a pool of POOL_SIZE.
        samples = await asyncio.to_thread(
            wait_for, lambda: (s := scrape(metrics_port)) and s.get(("flowrun_db_pool_size", ())) == 2 * POOL_SIZE and s
        )
        assert samples.get(("flowrun_database_up", ())) == 1

        # A worker that dies: its counts stay in the sum, its pool leaves it until the
        # replacement's pool joins.
        victim = worker_pids(server)[0]
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_for, lambda: not alive(victim))
        await asyncio.to_thread(
            wait_for, lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server), 60
        )
        samples = await asyncio.to_thread(
            wait_for, lambda: (s := scrape(metrics_port)) and s.get(("flowrun_db_pool_size", ())) == 2 * POOL_SIZE and s
        )
        assert created(samples) == made
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log


async def test_a_single_process_serves_its_own_metrics(tmp_path):
    metrics_port = free_port()
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        log_path=tmp_path / "server.log",
        env={"FLOWRUN_METRICS_PORT": str(metrics_port)},
    )
    try:
        server.wait_until_serving(60)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = flow_service_pb2_grpc.FlowServiceStub(channel)
            await stub.CreateFlow(flow_service_pb2.CreateFlowRequest(name="single"))
        samples = await asyncio.to_thread(wait_for, lambda: (s := scrape(metrics_port)) and created(s) == 1 and s)
        assert ("process_cpu_seconds_total", ()) in samples  # the library's defaults
    finally:
        server.stop()
