"""Log output: plain text (the default) or, with FLOWRUN_LOG_FORMAT=json, one JSON object
per line for log collectors.

A JSON line carries time, level, logger and message, and inside an RPC also its method,
peer and request id (the caller's x-request-id metadata, else one made up for the call);
the trace id of the current OpenTelemetry span when tracing is on; the error id of an
INTERNAL error (server/error_mapping.py); and the traceback where one was logged.

The per-call fields come from a context variable the outermost interceptor sets
(server/observability.py): each RPC runs in a task of its own, so it stays with the call.
Peer and request id are read only when a line is actually written: logging nothing
costs a call nothing beyond setting the variable."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

try:  # a trace id only when OpenTelemetry is installed (server/tracing.py switches it on)
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

REQUEST_ID_KEY = "x-request-id"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class CallContext(Protocol):
    """What a log line needs of grpc.aio's ServicerContext."""

    def peer(self) -> str: ...

    def invocation_metadata(self) -> Any: ...


class CallInfo:
    """The RPC a log line was written in. Peer and request id are read lazily, once."""

    __slots__ = ("_context", "_peer", "_request_id", "method")

    def __init__(self, method: str, context: CallContext) -> None:
        self.method = method
        self._context = context
        self._peer: str | None = None
        self._request_id: str | None = None

    @property
    def peer(self) -> str:
        if self._peer is None:
            try:
                self._peer = self._context.peer()
            except Exception:  # the call may be gone already
                self._peer = ""
        return self._peer

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            given = None
            try:
                for key, value in self._context.invocation_metadata() or ():
                    if key == REQUEST_ID_KEY and isinstance(value, str) and value:
                        given = value[:128]
                        break
            except Exception:
                pass
            self._request_id = given or uuid.uuid4().hex[:16]
        return self._request_id


_call: ContextVar[CallInfo | None] = ContextVar("flowrun_call_info", default=None)


def bind_call(method: str, context: CallContext) -> None:
    """Marks the current task (one RPC's) as serving `method` for its log lines."""
    _call.set(CallInfo(method, context))


def current_call() -> CallInfo | None:
    return _call.get()


def current_trace_id() -> str | None:
    """The current OpenTelemetry span's trace id (32 hex digits), if there is a valid one."""
    if _otel_trace is None:
        return None
    context = _otel_trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        call = current_call()
        if call is not None:
            entry["method"] = call.method
            entry["peer"] = call.peer
            entry["request_id"] = call.request_id
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        error_id = getattr(record, "error_id", None)
        if error_id is not None:
            entry["error_id"] = error_id
        if record.exc_text:  # formatted already (bounded: server/error_mapping.py), as logging.Formatter does
            entry["traceback"] = record.exc_text
        elif record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str, log_format: str, *, worker: int | None = None) -> None:
    """Sets up the root logger of a server process (the supervisor and each worker)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter({"worker": worker} if worker is not None else None))
    else:
        label = f" [worker {worker}]" if worker is not None else ""
        handler.setFormatter(logging.Formatter(TEXT_FORMAT.replace(" %(message)s", f"{label} %(message)s")))
    logging.basicConfig(level=level, handlers=[handler], force=True)
