"""The fuzz harness (tests/fuzz) in the default run, bounded: a few hundred hostile
requests to every RPC on each backend, on a fresh database of its own. It fails on any
INTERNAL, UNKNOWN, hang, crash, leaking message or traceback in the server log.
`scripts/fuzz` runs the same at scale; FLOWRUN_FUZZ_COUNT sets the count here."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import BACKENDS
from tests.fuzz.harness import discover_methods, fuzz_backend

COUNT = int(os.environ.get("FLOWRUN_FUZZ_COUNT", "500"))


def test_the_harness_covers_every_rpc_of_every_service():
    names = {method.path for method in discover_methods()}
    assert len(names) == 41
    assert {path.split("/")[1] for path in names} == {
        "flowrun.v1.FlowService",
        "flowrun.v1.FlowRunService",
        "flowrun.v1.TaskRunService",
        "flowrun.v1.DeploymentService",
        "flowrun.v1.WorkPoolService",
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
async def test_no_client_input_gives_internal_unknown_or_a_hang(backend: str):
    report = await fuzz_backend(backend, COUNT, seed=int(os.environ.get("FLOWRUN_FUZZ_SEED", "0")))
    print(report.render())
    assert report.requests >= COUNT
    assert report.histogram["OK"] > 0, "the fuzz never got past validation"
    assert report.ok, report.render()


# -- the root causes the fuzz found, one by one --------------------------------------------

import math  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from flowrun.v1 import (  # noqa: E402
    filters_pb2,
    flow_run_pb2,
    flow_run_service_pb2,
    flow_service_pb2,
    state_pb2,
)
from tests.helpers.rich_errors import decode, expect_error  # noqa: E402


async def _raw(channel, path: str, data: bytes, *, streaming: str = "") -> grpc.aio.AioRpcError:
    if streaming == "unary_stream":
        call = channel.unary_stream(path)(data, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
    elif streaming == "stream_stream":
        call = channel.stream_stream(path)(iter([data]), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
    else:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(path)(data, timeout=10)
    return caught.value


@pytest.mark.parametrize(
    "path, streaming",
    [
        ("/flowrun.v1.FlowService/CreateFlow", ""),
        ("/flowrun.v1.FlowRunService/SetFlowRunState", ""),  # behind the orchestration interceptor
        ("/grpc.health.v1.Health/Check", ""),
        ("/grpc.health.v1.Health/Watch", "unary_stream"),
        ("/flowrun.v1.FlowRunService/WatchFlowRuns", "unary_stream"),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream_stream"),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "stream_stream"),
    ],
)
async def test_bytes_that_are_not_the_request_message_are_invalid_argument(channel, path, streaming):
    for data in (b"\xff\xff\xff", b"\x0a\x02\xc3\x28", b"\x0a\xff\xff\x03"):  # corrupt, bad UTF-8, overlong
        error = await _raw(channel, path, data, streaming=streaming)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, error.details())
        decoded = decode(error)
        assert decoded.reason == "MALFORMED_REQUEST"
        assert "DecodeError" not in decoded.message and "upb" not in decoded.message


def _labels(**values) -> struct_pb2.Struct:
    labels = struct_pb2.Struct()
    for key, value in values.items():
        labels.fields[key].number_value = value
    return labels


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
async def test_non_finite_numbers_in_a_struct_name_the_field(flows, unique, value):
    request = flow_service_pb2.CreateFlowRequest(name=f"fuzz-{unique}", labels=_labels(ok=1, bad=value))
    decoded = await expect_error(flows.CreateFlow(request))
    assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(decoded.field_violations) == ["labels.bad"]


async def test_non_finite_numbers_deep_in_state_data_name_the_path(runs):
    data = struct_pb2.Value()
    data.struct_value.fields["rows"].list_value.values.add().number_value = 1
    data.struct_value.fields["rows"].list_value.values.add().number_value = math.nan
    request = flow_run_service_pb2.SetFlowRunStateRequest(
        flow_run_id="00000000-0000-0000-0000-000000000001",
        state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING, data=data),
    )
    decoded = await expect_error(runs.SetFlowRunState(request))
    assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(decoded.field_violations) == ["state.data.rows[1]"]


async def test_nul_characters_are_rejected_alike_on_both_databases(flows, runs, unique):
    parameters = struct_pb2.Struct()
    parameters.fields["text"].string_value = "a\x00b"
    cases = [
        (flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"fuzz-{unique}\x00")), "name"),
        (flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"fuzz-{unique}", tags=["ok", "b\x00d"])), "tags[1]"),
        (
            runs.CreateFlowRun(
                flow_run_service_pb2.CreateFlowRunRequest(flow_id=str(uuid.uuid4()), parameters=parameters)
            ),
            "parameters.text",
        ),
        (
            flows.ListFlows(
                flow_service_pb2.ListFlowsRequest(
                    flow_filter=filters_pb2.FlowFilter(name=filters_pb2.StringFilter(like="x\x00"))
                )
            ),
            "flow_filter.name.like",
        ),
    ]
    for call, field in cases:
        decoded = await expect_error(call)
        assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(decoded.field_violations) == [field]
        assert "U+0000" in decoded.field_violations[field]


@pytest.mark.parametrize(
    "seconds, nanos",
    [(253_402_300_800, 0), (-62_135_596_801, 0), (0, -1), (0, 1_000_000_000), (2**63 - 1, 0)],
)
async def test_timestamps_out_of_range_name_the_field(runs, seconds, nanos):
    request = flow_run_service_pb2.GetFlowRunGraphRequest(
        flow_run_id=str(uuid.uuid4()), since=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    )
    decoded = await expect_error(runs.GetFlowRunGraph(request))
    assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(decoded.field_violations) == ["since"]


@pytest.mark.parametrize("seconds, nanos", [(315_576_000_001, 0), (1, -5), (-1, 5), (0, 1_000_000_000)])
async def test_durations_out_of_range_name_the_field(runs, seconds, nanos):
    request = flow_run_service_pb2.CreateFlowRunRequest(
        flow_id=str(uuid.uuid4()),
        empirical_policy=flow_run_pb2.FlowRunPolicy(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)),
    )
    decoded = await expect_error(runs.CreateFlowRun(request))
    assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(decoded.field_violations) == ["empirical_policy.retry_delay"]


async def test_hundreds_of_violations_fit_in_the_error_details(flows):
    bad_ids = [f"not-a-uuid-{index}-" + "x" * 200 for index in range(300)]
    request = flow_service_pb2.ListFlowsRequest(
        flow_filter=filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=bad_ids))
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await flows.ListFlows(request)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(error.trailing_metadata())[rpc_status.GRPC_DETAILS_METADATA_KEY]
    assert len(details) < 8 * 1024
    decoded = decode(error)
    assert len(decoded.field_violations) == 10
    assert "flow_filter.id.any[0]" in decoded.field_violations
    assert decoded.metadata["omitted_violations"] == "290"
    assert decoded.message.endswith("and 290 violations not shown")


async def test_a_huge_name_in_a_not_found_error_fits_in_the_error_details(flows):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await flows.GetFlowByName(flow_service_pb2.GetFlowByNameRequest(name="x" * 100_000))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(dict(caught.value.trailing_metadata())[rpc_status.GRPC_DETAILS_METADATA_KEY]) < 8 * 1024
