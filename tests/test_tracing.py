"""OpenTelemetry tracing (server/tracing.py): off unless the OTEL_* variables turn it on,
and when on, one SetFlowRunState is a server span (continuing the caller's trace from its
`traceparent`) carrying the orchestration's outcome, with its SQL statements as child
spans, on both databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flowrun.server.app import App, build_app
from flowrun.server.tracing import (
    SpanAttributes,
    Tracing,
    TracingConfigError,
    exporter_names,
    tracing_from_environment,
    tracing_requested,
)
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2, flow_service_pb2_grpc, state_pb2
from tests.conftest import settings_for
from tests.helpers.races import new_run, proposal
from tests.helpers.servers import REPO

SET_STATE = "/flowrun.v1.FlowRunService/SetFlowRunState"
CALLER_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{CALLER_TRACE_ID:032x}-{CALLER_SPAN_ID:016x}-01"


# --- the switch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),  # no exporter asked for
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_the_otel_variables_turn_tracing_on(environ, on):
    assert tracing_requested(environ) is on
    tracing = tracing_from_environment(environ)
    assert (tracing is not None) is on
    if tracing is not None:
        tracing.shutdown()  # its batch processor's thread


def test_exporter_names_follow_the_otlp_protocol():
    assert exporter_names({}) == ["otlp_proto_grpc"]
    assert exporter_names({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == ["otlp_proto_http"]
    assert exporter_names(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    ) == ["otlp_proto_http"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console, otlp"}) == ["console", "otlp_proto_grpc"]
    with pytest.raises(TracingConfigError, match="http/json"):
        exporter_names({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_an_unknown_exporter_is_a_clear_error():
    with pytest.raises(TracingConfigError, match="no span exporter 'zipkin' is installed"):
        tracing_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.multiprocess  # a Python process of its own
def test_a_server_started_with_an_unknown_exporter_says_so_and_exits():
    environment = {**os.environ, "OTEL_TRACES_EXPORTER": "zipkin", "FLOWRUN_WORKERS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "flowrun.server", "--port", "0", "--database-url", "sqlite+aiosqlite:///:memory:"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("flowrun-server: error: OTEL_TRACES_EXPORTER: no span")


@pytest.mark.multiprocess  # a Python process of its own
def test_off_loads_no_sdk_and_no_instrumentation(tmp_path):
    """Off means off: a whole server built and started without the OTEL_* variables has
    not even imported the SDK or an instrumentation, so no interceptor, driver wrapper or
    observer can exist. (The API alone may be loaded: logs read the current trace id from
    it, which without an SDK is a no-op.)"""
    script = f"""
import asyncio, sys
from flowrun.server.app import build_app
from flowrun.server.config import Settings

async def main():
    app = await build_app(Settings(database_url="sqlite+aiosqlite:///{tmp_path / "off.db"}", port=0))
    await app.start()
    assert app.tracing is None
    await app.stop(grace=0)

asyncio.run(main())
loaded = sorted(name for name in sys.modules if name.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation")))
assert not loaded, loaded
"""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- the span tree of one SetFlowRunState ----------------------------------------------


@pytest.fixture
async def traced(database_url) -> AsyncIterator[tuple[App, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    app = await build_app(settings_for(database_url), tracing=Tracing.with_exporters(exporter, batch=False))
    await app.start()
    try:
        yield app, exporter
    finally:
        await app.stop(grace=0)


async def server_spans(exporter: InMemorySpanExporter, count: int, timeout: float = 10.0) -> list[ReadableSpan]:
    """The finished server spans once there are `count` of them: a call's span ends as its
    handler unwinds, which may be just after the client has its answer."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.01)


async def test_one_set_flow_run_state_is_a_server_span_with_sql_children(traced, backend, unique):
    app, exporter = traced
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        flow_id = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"traced-{unique}"))).flow.id
        record = await new_run(runs, flow_id)  # PENDING
        exporter.clear()
        reply = await runs.SetFlowRunState(
            proposal(record.run_id, state_pb2.STATE_TYPE_RUNNING), metadata=(("traceparent", TRACEPARENT),)
        )
        assert reply.status == state_pb2.SET_STATE_STATUS_ACCEPT

    servers = await server_spans(exporter, 1)
    spans = [span for span in exporter.get_finished_spans() if span.context.trace_id == CALLER_TRACE_ID]
    assert [span.name for span in servers] == [SET_STATE]
    server = servers[0]
    # The caller's trace goes on: the server span's parent is the caller's span.
    assert server.parent is not None and server.parent.is_remote
    assert (server.parent.trace_id, server.parent.span_id) == (CALLER_TRACE_ID, CALLER_SPAN_ID)
    assert server.attributes is not None
    assert {key: value for key, value in server.attributes.items() if key.startswith("flowrun.")} == {
        SpanAttributes.RUN_ID: record.run_id,
        SpanAttributes.PROPOSED_TYPE: "RUNNING",
        SpanAttributes.FORCE: False,
        SpanAttributes.STATUS: "ACCEPT",
        SpanAttributes.RESULT_TYPE: "RUNNING",
    }
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]

    # Every other span of the trace is SQL, a direct child of the server span.
    sql = [span for span in spans if span is not server]
    assert sql and all(span.kind == SpanKind.CLIENT for span in sql)
    assert all(span.parent is not None and span.parent.span_id == server.context.span_id for span in sql)
    statements = [str((span.attributes or {}).get("db.statement", "")) for span in sql]
    assert any(text.startswith("SELECT") and "flow_run" in text for text in statements), statements
    assert any("INSERT INTO flow_run_state" in text for text in statements), statements
    if backend == "postgres":  # two statements, straight to asyncpg: server/orchestration/unlocked.py
        assert len(statements) == 2, statements
        assert "xmin" in statements[0] and "FOR UPDATE" not in statements[0], statements
        assert "AND xmin = $" in statements[1] and "INSERT INTO flow_run_event" in statements[1], statements


async def test_the_span_names_the_rule_that_decided(traced, unique):
    app, exporter = traced
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        flow_id = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"traced-{unique}"))).flow.id
        record = await new_run(runs, flow_id)  # PENDING: a second PENDING is aborted
        exporter.clear()
        reply = await runs.SetFlowRunState(proposal(record.run_id, state_pb2.STATE_TYPE_PENDING))
        assert reply.status == state_pb2.SET_STATE_STATUS_ABORT
        # A probe makes no span (health is left out), and a failing call's span says so.
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await runs.SetFlowRunState(proposal("not-a-uuid", state_pb2.STATE_TYPE_RUNNING))
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    servers = await server_spans(exporter, 2)
    assert [span.name for span in servers] == [SET_STATE, SET_STATE]
    aborted, invalid = servers
    assert aborted.attributes is not None
    assert aborted.attributes[SpanAttributes.STATUS] == "ABORT"
    assert aborted.attributes[SpanAttributes.RULE] == "PreventPendingTransitions"
    assert aborted.attributes[SpanAttributes.RESULT_TYPE] == "PENDING"  # the state it kept
    assert invalid.attributes is not None
    assert invalid.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert SpanAttributes.STATUS not in invalid.attributes
