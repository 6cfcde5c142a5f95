"""FLOWRUN_LOG_FORMAT=json (server/logs.py): one JSON object per line with time, level,
logger, message and, inside an RPC, method, peer and request id; the trace id of the
current span; an INTERNAL error's id with its traceback, logged once; and no traceback
for an expected error."""

from __future__ import annotations

import json
import logging
import uuid

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from flowrun.server import logs
from flowrun.server.app import build_app
from flowrun.server.error_mapping import to_grpc_status
from flowrun.server.repositories.flows import FlowRepository
from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.conftest import settings_for
from tests.helpers.servers import ServerProcess


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(logs.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))  # formatted now: inside the call's context


@pytest.fixture
def captured():
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


class FakeContext:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    def invocation_metadata(self):
        return [("x-request-id", "req-42")]


def test_a_line_is_one_json_object_with_the_call_fields():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("flowrun.x", logging.WARNING, __file__, 1, "two\nlines %s", ("here",), None)
    outside = json.loads(formatter.format(record))
    assert set(outside) == {"time", "level", "logger", "message"}
    assert (outside["level"], outside["logger"], outside["message"]) == ("WARNING", "flowrun.x", "two\nlines here")

    def in_call() -> dict:
        logs.bind_call("/flowrun.v1.FlowService/GetFlow", FakeContext())
        record.error_id = "abc123"
        line = formatter.format(record)
        assert "\n" not in line
        return json.loads(line)

    import contextvars

    inside = contextvars.copy_context().run(in_call)
    assert inside["method"] == "/flowrun.v1.FlowService/GetFlow"
    assert (inside["peer"], inside["request_id"], inside["error_id"]) == ("ipv4:127.0.0.1:5555", "req-42", "abc123")


def test_the_trace_id_is_the_current_spans():
    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("flowrun.x", logging.INFO, __file__, 1, "m", (), None)
    assert "trace_id" not in json.loads(logs.JsonFormatter().format(record))
    with tracer.start_as_current_span("call") as span:
        line = json.loads(logs.JsonFormatter().format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


async def test_an_internal_error_logs_its_id_and_traceback_once_and_expected_errors_none(
    database_url, captured, monkeypatch
):
    app = await build_app(settings_for(database_url, log_format="json"))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            # Expected errors: no traceback anywhere.
            with pytest.raises(grpc.aio.AioRpcError):
                await flows.GetFlow(flow_service_pb2.GetFlowRequest(flow_id=str(uuid.uuid4())))
            with pytest.raises(grpc.aio.AioRpcError):
                await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=""))
            to_grpc_status(ConnectionError("database went away"), "/m")  # UNAVAILABLE: a warning line
            assert not [record for record in captured.records if record.exc_info]

            async def broken(self, flow_id):
                raise RuntimeError("boom")

            monkeypatch.setattr(FlowRepository, "get", broken)
            with pytest.raises(grpc.aio.AioRpcError) as internal:
                await flows.GetFlow(
                    flow_service_pb2.GetFlowRequest(flow_id=str(uuid.uuid4())), metadata=[("x-request-id", "req-7")]
                )
    finally:
        await app.stop(grace=0)
    assert internal.value.code() == grpc.StatusCode.INTERNAL
    with_traceback = [line for record, line in zip(captured.records, captured.lines, strict=True) if record.exc_info]
    assert len(with_traceback) == 1, with_traceback
    entry = json.loads(with_traceback[0])
    assert entry["error_id"] in internal.value.details()  # the id the client was told
    assert (entry["method"], entry["request_id"], entry["level"]) == (
        "/flowrun.v1.FlowService/GetFlow",
        "req-7",
        "ERROR",
    )
    assert entry["peer"].startswith("ipv")
    assert "RuntimeError: boom" in entry["traceback"]
    assert sum("boom" in line for line in captured.lines) == 1


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_server_with_workers_writes_only_json_lines(tmp_path):
    log_path = tmp_path / "server.log"
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        log_path=log_path,
        args=["--workers", "2"],
        env={"FLOWRUN_LOG_FORMAT": "json", "FLOWRUN_LOG_LEVEL": "INFO"},
    )
    try:
        server.wait_until_serving(60)
    finally:
        server.stop()
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    grpc_core = [line for line in lines if not line.startswith("{")]  # gRPC's C core writes its own lines
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert entries, lines
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert {entry.get("worker") for entry in entries if entry["logger"] == "flowrun.server"} == {0, 1}
    assert all("Traceback" not in line for line in grpc_core)


async def test_a_failing_background_step_logs_one_line_without_a_traceback(captured):
    """The database being away is expected: the reaper's or health's failed step is one
    warning, its traceback only at DEBUG."""
    import asyncio

    from flowrun.server.periodic import Periodic

    async def step() -> None:
        raise ConnectionError("database went away")

    loop = Periodic("test-loop", 0.001, step)
    loop.start()
    try:
        async with asyncio.timeout(5):
            while not any(record.levelno == logging.WARNING for record in captured.records):
                await asyncio.sleep(0.005)
    finally:
        await loop.stop()
    warnings = [record for record in captured.records if record.levelno >= logging.WARNING]
    assert warnings and not any(record.exc_info for record in warnings)
    assert "database went away" in warnings[0].getMessage()
