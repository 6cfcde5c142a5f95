"""The fuzz harness (tests/fuzz) in the default run, bounded: a few hundred hostile
requests to every RPC on each backend, on a fresh database of its own. It fails on any
INTERNAL, UNKNOWN, hang, crash, leaking message or traceback in the server log.
`scripts/fuzz` runs the same at scale; FLOWRUN_FUZZ_COUNT sets the count here."""

from __future__ import annotations

import os

import pytest

from tests.conftest import BACKENDS
from tests.fuzz.harness import discover_methods, fuzz_backend

COUNT = int(os.environ.get("FLOWRUN_FUZZ_COUNT", "500"))


def test_the_harness_covers_every_rpc_of_every_service():
    names = {method.path for method in discover_methods()}
    assert len(names) == 38
    assert {path.split("/")[1] for path in names} == {
        "flowrun.v1.FlowService",
        "flowrun.v1.FlowRunService",
        "flowrun.v1.TaskRunService",
        "flowrun.v1.DeploymentService",
        "flowrun.v1.WorkPoolService",
    }


@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_client_input_gives_internal_unknown_or_a_hang(backend: str):
    report = await fuzz_backend(backend, COUNT, seed=int(os.environ.get("FLOWRUN_FUZZ_SEED", "0")))
    print(report.render())
    assert report.requests >= COUNT
    assert report.histogram["OK"] > 0, "the fuzz never got past validation"
    assert report.ok, report.render()
