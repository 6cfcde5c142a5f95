"""What the Docker image runs, without Docker: the package built as a wheel, installed
apart from the source tree, serving through its `flowrun-server` entry point (which
migrates a fresh database), answering health and a call, and stopping cleanly on SIGTERM;
and what the Dockerfile installs: an exact base image and only the hashed runtime lock."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile

import grpc
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.helpers.servers import REPO, ServerProcess, wait_for_health

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds each


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
        "flowrun/server/db/migrations/env.py",
        "flowrun/server/db/migrations/versions/0001_initial_schema.py",
        "flowrun/client/cli.py",
    ):
        assert needed in names, needed
    # One import package: nothing generic (`server`, `client`) lands at the top of site-packages.
    assert {name.split("/")[0] for name in names} == {"flowrun", "flowrun-0.1.0.dist-info"}

    workdir = tmp_path / "elsewhere"  # not the source tree: only the installed copy is importable
    workdir.mkdir()
    env = {"PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import flowrun.server, flowrun.client, flowrun.v1; print(flowrun.server.__file__)"],
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


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def runtime_lock() -> dict[str, tuple[Version, str]]:
    """requirements-runtime.txt: name -> (exact version, the whole requirement with its hashes)."""
    entries = (REPO / "requirements-runtime.txt").read_text().replace("\\\n", " ").splitlines()
    locked = {}
    for entry in entries:
        if entry.strip() and not entry.lstrip().startswith("#"):
            requirement = Requirement(entry.split(" --hash=")[0])
            (pin,) = requirement.specifier
            assert pin.operator == "==", entry
            locked[canonicalize_name(requirement.name)] = (Version(pin.version), entry)
    return locked


def test_the_image_is_built_from_an_exact_base_and_the_runtime_lock_only():
    """Why: a floating base tag or an unlocked `pip install .` gives a different image on every
    build. The image must start from an exact Python patch release and install the runtime
    dependencies only from the hashed lock, then flowrun itself without resolving anything."""
    steps = dockerfile_instructions()
    (base,) = [arguments for instruction, arguments in steps if instruction == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base

    installs = [arguments for instruction, arguments in steps if instruction == "RUN" and "pip install" in arguments]
    assert len(installs) == 2, installs
    from_lock, project = (shlex.split(command.split("&&")[0]) for command in installs)
    assert from_lock[from_lock.index("-r") + 1] == "requirements-runtime.txt"
    assert {"--require-hashes", "--no-deps"} <= set(from_lock), from_lock
    assert {"--no-deps", "."} <= set(project), project
    copied = [arguments.split() for instruction, arguments in steps if instruction == "COPY"]
    assert ["requirements-runtime.txt", "./"] in copied
    assert steps.index(("COPY", "requirements-runtime.txt ./")) < steps.index(("RUN", installs[0]))


def test_the_runtime_lock_holds_every_runtime_dependency_and_no_dev_tool():
    """Why: the image installs with --no-deps, so a runtime dependency missing from the lock
    (or locked at a version pyproject.toml no longer allows) only shows when the server starts."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = runtime_lock()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        assert canonicalize_name(requirement.name) in locked, f"{line} is not in requirements-runtime.txt"
        version, entry = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{entry} does not satisfy {line}"
    for _version, entry in locked.values():
        assert "--hash=sha256:" in entry, entry
    for line in project["optional-dependencies"]["dev"]:
        assert canonicalize_name(Requirement(line).name) not in locked, f"dev tool {line} is in the runtime lock"
