"""What the Docker image runs, without Docker: the package built as a wheel, installed
apart from the source tree, serving through its `flowrun-server` entry point (which
migrates a fresh database), answering health and a call, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile

import grpc

from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.servers import REPO, ServerProcess, wait_for_health


def build_and_install(tmp_path) -> tuple[zipfile.ZipFile, os.PathLike]:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("flowrun-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    return zipfile.ZipFile(wheel), target


async def test_the_installed_package_serves_migrates_and_stops(tmp_path):
    wheel, site = await asyncio.to_thread(build_and_install, tmp_path)
    names = set(wheel.namelist())
    for needed in (
        "flowrun/v1/descriptor_set.binpb",
        "flowrun/v1/flow_run_service_pb2.py",
        "server/db/migrations/env.py",
        "server/db/migrations/versions/0001_initial_schema.py",
        "client/cli.py",
    ):
        assert needed in names, needed

    workdir = tmp_path / "elsewhere"  # not the source tree: only the installed copy is importable
    workdir.mkdir()
    env = {"PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import server, flowrun.v1; print(server.__file__)"],
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout

    database = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowrun.db'}"
    server = ServerProcess(
        database, env=env, command=[str(site / "bin" / "flowrun-server")], cwd=workdir, log_path=tmp_path / "log"
    )
    try:
        await asyncio.to_thread(server.wait_until_serving, 60)
        await wait_for_health(server.address)
        async with grpc.aio.insecure_channel(server.address) as channel:
            reply = await flow_service_pb2_grpc.FlowServiceStub(channel).CreateFlow(
                flow_service_pb2.CreateFlowRequest(name="from-the-wheel")
            )
        assert reply.created
        server.process.terminate()
        assert await asyncio.to_thread(server.process.wait, 20) == 0
    finally:
        server.stop()
