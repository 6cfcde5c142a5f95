"""The id rule, as the README states it: an id is UUID text in the 8-4-4-4-12 hex form,
letters in either case; the server answers with lowercase. Every other spelling Python's
uuid.UUID would take (no hyphens, braces, `urn:uuid:`, hyphens elsewhere, surrounding
space) is INVALID_ARGUMENT naming the field, in request fields and in filters alike."""

from __future__ import annotations

import uuid

import grpc
import pytest

from flowrun.server.services.from_proto import canonical_uuid
from flowrun.v1 import filters_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.rich_errors import expect_error

SAMPLE = uuid.UUID("5f0c3a1e-9b2d-4c7a-8e6f-0123456789ab")
REJECTED = {
    "unhyphenated": SAMPLE.hex,
    "urn": SAMPLE.urn,
    "braces": "{" + str(SAMPLE) + "}",
    "hyphens-elsewhere": SAMPLE.hex[:4] + "-" + SAMPLE.hex[4:8] + "-" + SAMPLE.hex[8:],
    "leading-space": " " + str(SAMPLE),
    "trailing-newline": str(SAMPLE) + "\n",
    "too-short": str(SAMPLE)[:-1],
    "not-hex": str(SAMPLE)[:-1] + "g",
    "fullwidth-digit": str(SAMPLE)[:-1] + "\uff11",
}


def test_the_rule():
    assert canonical_uuid(str(SAMPLE)) == str(SAMPLE)
    assert canonical_uuid(str(SAMPLE).upper()) == str(SAMPLE)
    for name, spelling in REJECTED.items():
        assert canonical_uuid(spelling) is None, name
    # What the rule is stricter than: Python's own parser takes these.
    for name in ("unhyphenated", "urn", "braces", "hyphens-elsewhere"):
        assert uuid.UUID(REJECTED[name]) == SAMPLE


async def test_uppercase_ids_are_accepted_and_answered_in_lowercase(flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"ids-{unique}"))).flow
    got = (await flows.GetFlow(flows_pb.GetFlowRequest(flow_id=flow.id.upper()))).flow
    assert got.id == flow.id == flow.id.lower()
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id.upper()))).flow_run
    assert run.flow_id == flow.id
    listed = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(
            flow_run_filter=filters_pb2.FlowRunFilter(id=filters_pb2.IdFilter(any=[run.id.upper()]))
        )
    )
    assert [r.id for r in listed.flow_runs] == [run.id]


@pytest.mark.parametrize("spelling", REJECTED.values(), ids=REJECTED.keys())
async def test_other_spellings_are_invalid_argument_naming_the_field(flows, runs, spelling):
    error = await expect_error(flows.GetFlow(flows_pb.GetFlowRequest(flow_id=spelling)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.field_violations) == ["flow_id"]
    filtered = runs_pb.ListFlowRunsRequest(
        flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[str(SAMPLE), spelling]))
    )
    error = await expect_error(runs.ListFlowRuns(filtered))
    assert list(error.field_violations) == ["flow_run_filter.flow_id.any[1]"]
