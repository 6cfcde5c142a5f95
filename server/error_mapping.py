"""The one place exceptions become gRPC status codes with rich details
(google.rpc.Status in grpc-status-details-bin: always an ErrorInfo, plus BadRequest or
RetryInfo where they help). Outermost interceptor, so it sees every error."""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
import uuid

import asyncpg
import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from flowrun.server import errors, metrics
from flowrun.server.db.dialect import (
    DEADLOCK_DETECTED,
    LOCK_NOT_AVAILABLE,
    SERIALIZATION_FAILURE,
    StatementTimedOut,
    is_database_away,
    is_unique_violation,
    sqlstate,
)
from flowrun.server.services.validation import request_violations

log = logging.getLogger("flowrun.errors")

DOMAIN = "flowrun.dev"
RETRY_CONFLICT_SECONDS = 0.05
RETRY_UNAVAILABLE_SECONDS = 1.0
CONFLICT_SQLSTATES = {SERIALIZATION_FAILURE, DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE}
# Error details travel in trailers, which gRPC caps at 16 KiB in all (with grpc-message,
# percent-encoded, beside them). A status is cut to fit well under that: the first
# violations, each text shortened, and the message to MAX_MESSAGE_BYTES.
MAX_MESSAGE_BYTES = 512
MAX_DETAIL_TEXT_BYTES = 200
MAX_REPORTED_VIOLATIONS = 10
MAX_STATUS_BYTES = 4096
_DETAILS_KEY = "grpc-status-details-bin"  # the trailer grpc_status.rpc_status writes the Status to
# A logged error is cut to fit: a driver error's text holds its whole statement and
# parameters (megabytes for a large filter), so each part of a traceback is cut to
# MAX_LOGGED_PART characters and the whole to MAX_LOGGED_TRACEBACK.
MAX_LOGGED_PART = 2000
MAX_LOGGED_TRACEBACK = 20_000


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` UTF-8 bytes, marked with "..." when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def _status(code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str], *extra) -> grpc.Status:
    metadata = {
        # A watch cursor is only useful whole (it is short: server/watch/cursor.py).
        _cut(key, 64): value if key == "cursor" else _cut(value, MAX_DETAIL_TEXT_BYTES)
        for key, value in list(metadata.items())[:10]
    }
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=_cut(message, MAX_MESSAGE_BYTES),
        details=[
            _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)),
            *map(_pack, extra),
        ],
    )
    return rpc_status.to_status(status)


def error_status(
    code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str] | None = None
) -> grpc.Status:
    """A status with its ErrorInfo, for a call refused before any handler runs
    (server/auth.py: UNAUTHENTICATED, PERMISSION_DENIED)."""
    return _status(code, message, reason, metadata or {})


def _invalid_argument(exc: errors.InvalidArgument) -> grpc.Status:
    """INVALID_ARGUMENT with a BadRequest of the first violations (at most
    MAX_REPORTED_VIOLATIONS, fewer if the details would pass MAX_STATUS_BYTES); the
    message and ErrorInfo metadata (omitted_violations) say how many were left out."""
    all_violations = [
        (_cut(field, MAX_DETAIL_TEXT_BYTES), _cut(text, MAX_DETAIL_TEXT_BYTES)) for field, text in exc.violations
    ]
    for count in range(min(len(all_violations), MAX_REPORTED_VIOLATIONS), -1, -1):
        shown, omitted = all_violations[:count], len(all_violations) - count
        metadata = dict(exc.metadata)
        message, suffix = exc.message, ""
        if omitted:
            metadata["omitted_violations"] = str(omitted)
            message = "; ".join(f"{field}: {text}" for field, text in shown)
            suffix = f"{'; and' if shown else ''} {omitted} violations not shown".lstrip()
        message = _cut(message, MAX_MESSAGE_BYTES - len(suffix)) + suffix
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=text) for field, text in shown
        ]
        extra = [error_details_pb2.BadRequest(field_violations=violations)] if violations else []
        status = _status(grpc.StatusCode.INVALID_ARGUMENT, message, exc.reason, metadata, *extra)
        if len(dict(status.trailing_metadata)[_DETAILS_KEY]) <= MAX_STATUS_BYTES:
            break
    return status


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(nanos=int(seconds * 1e9) % 10**9, seconds=int(seconds))
    )


def _is_conflict(exc: BaseException) -> bool:
    """Lock timeouts, deadlocks, serialization failures, uniqueness races, SQLite's busy
    lock: a retry may succeed. Raw asyncpg errors (the SetState fast path) count too."""
    if sqlstate(exc) in CONFLICT_SQLSTATES or is_unique_violation(exc):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig)
    return "database is locked" in text or "database table is locked" in text


def _broke_the_connection(exc: BaseException) -> bool:
    """asyncpg's own state machine gave up on the connection ("cannot switch to state
    ...; another operation is in progress"), seen when PostgreSQL restarts mid-call;
    SQLAlchemy wraps it twice. Nothing was committed and the connection is discarded."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, asyncpg.InternalClientError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _is_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or the connection died: a retry elsewhere may work.
    Not asyncpg's client-side InterfaceErrors (too many arguments and such), which would
    fail again however often they are retried (INTERNAL)."""
    if is_database_away(exc) or _broke_the_connection(exc):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        text = str(exc.orig).lower()
        return any(word in text for word in ("connect", "connection", "unable to open database"))
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (ConnectionError, OSError)) and not isinstance(exc, errors.FlowrunError)


def to_grpc_status(exc: BaseException, method: str) -> grpc.Status:
    if isinstance(exc, errors.InvalidArgument):
        return _invalid_argument(exc)
    if isinstance(exc, errors.NotFound):
        return _status(grpc.StatusCode.NOT_FOUND, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.AlreadyExists):
        return _status(grpc.StatusCode.ALREADY_EXISTS, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.FailedPrecondition):
        return _status(grpc.StatusCode.FAILED_PRECONDITION, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.TooLarge):
        return _status(grpc.StatusCode.FAILED_PRECONDITION, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.OutOfRange):
        return _status(grpc.StatusCode.OUT_OF_RANGE, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.ResourceExhausted):
        return _status(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.ShuttingDown):
        return _status(grpc.StatusCode.UNAVAILABLE, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.Interrupted):
        return _status(
            grpc.StatusCode.UNAVAILABLE, exc.message, exc.reason, exc.metadata, _retry_info(RETRY_UNAVAILABLE_SECONDS)
        )
    if isinstance(exc, StatementTimedOut):
        return _status(grpc.StatusCode.DEADLINE_EXCEEDED, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.Conflict):
        if metrics.enabled:
            metrics.DB_CONFLICTS.inc()
        return _status(
            grpc.StatusCode.ABORTED, exc.message, exc.reason, exc.metadata, _retry_info(RETRY_CONFLICT_SECONDS)
        )
    if _is_conflict(exc):
        if metrics.enabled:
            metrics.DB_CONFLICTS.inc()
        return _status(
            grpc.StatusCode.ABORTED,
            "Conflict with a concurrent request; retry",
            "CONFLICT",
            {},
            _retry_info(RETRY_CONFLICT_SECONDS),
        )
    if _is_unavailable(exc):
        log.warning("database unavailable during %s: %s", method, _cut_text(repr(exc), MAX_LOGGED_PART))
        return _status(
            grpc.StatusCode.UNAVAILABLE,
            "The database is unavailable; retry with backoff",
            "DATABASE_UNAVAILABLE",
            {},
            _retry_info(RETRY_UNAVAILABLE_SECONDS),
        )
    error_id = uuid.uuid4().hex[:12]
    # The one traceback an error gets: an unexpected one, under the id the client is told.
    _log_internal_error(exc, error_id, method)
    return _status(
        grpc.StatusCode.INTERNAL,
        f"Internal error {error_id}; see the server log",
        "INTERNAL",
        {"error_id": error_id},
    )


def _cut_text(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} characters not shown]"


def bounded_traceback(exc: BaseException) -> str:
    """`exc`'s traceback (its causes included) as logging prints it, each part (a frame,
    an exception's text) cut to MAX_LOGGED_PART characters and the whole to
    MAX_LOGGED_TRACEBACK."""
    parts = traceback.TracebackException.from_exception(exc).format()
    text = "".join(part if len(part) <= MAX_LOGGED_PART else _cut_text(part, MAX_LOGGED_PART) + "\n" for part in parts)
    return _cut_text(text.rstrip("\n"), MAX_LOGGED_TRACEBACK)


def _log_internal_error(exc: BaseException, error_id: str, method: str) -> None:
    """The error line with its traceback, bounded: formatted here into the record's
    exc_text, which formatters print instead of formatting exc_info again (logging's
    own Formatter, and server/logs.py's JsonFormatter)."""
    if not log.isEnabledFor(logging.ERROR):
        return
    record = log.makeRecord(
        log.name,
        logging.ERROR,
        __file__,
        0,
        "internal error %s in %s",
        (error_id, method),
        (type(exc), exc, exc.__traceback__),
        extra={"error_id": error_id},
    )
    record.exc_text = bounded_traceback(exc)
    log.handle(record)


class Rejected:
    """What the request deserializer hands the handler instead of a request that must not
    reach a servicer: bytes that are not the request message, or a message holding what
    no field may hold (server/services/validation.py). The handler raises `error`."""

    __slots__ = ("error",)

    def __init__(self, error: errors.InvalidArgument) -> None:
        self.error = error


def _malformed(exc: Exception) -> errors.InvalidArgument:
    text = str(exc)
    if "MaxDepth" in text or isinstance(exc, RecursionError):
        why = "messages nest deeper than 100 levels"
    elif "UTF-8" in text:
        why = "a string field is not valid UTF-8"
    else:
        why = "the wire format is corrupt"
    return errors.MalformedRequest(f"The request body is not a valid encoding of the request message: {why}")


def _checking(deserializer):
    """Wraps a request deserializer so that it never raises (grpc.aio would answer
    UNKNOWN): undecodable bytes and invalid field values become a Rejected marker."""
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            request = deserializer(data)
        except Exception as exc:  # DecodeError, RecursionError: the client's bytes
            return Rejected(_malformed(exc))
        violations = request_violations(request) if isinstance(request, Message) else []
        if violations:
            return Rejected(errors.InvalidArgument(violations))
        return request

    return deserialize


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        status = _status(grpc.StatusCode.DEADLINE_EXCEEDED, "The deadline passed", "DEADLINE_EXCEEDED", {})
    else:
        status = to_grpc_status(exc, method)
    await context.abort(status.code, status.details, status.trailing_metadata)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns every exception escaping a unary handler into a status with details. Aborts
    the handler made itself (context.abort) and cancellations pass through. Every
    handler, streaming ones too, gets a request deserializer that turns undecodable or
    invalid requests into INVALID_ARGUMENT instead of UNKNOWN. The wrapped handler of
    each method is built once, not per call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, _mapped(handler, method))
        return cached[1]


def _mapped(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    serializers = {
        "request_deserializer": _checking(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_mapped_unary(handler.unary_unary, method), **serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_checked_unary_stream(handler.unary_stream, method), **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_checked_stream(handler.stream_unary, method), **serializers)
    return grpc.stream_stream_rpc_method_handler(_checked_stream(handler.stream_stream, method), **serializers)


def _mapped_unary(inner, method: str):
    async def mapped(request, context: grpc.aio.ServicerContext):
        try:
            if isinstance(request, Rejected):
                raise request.error
            return await inner(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, exc, method)

    return mapped


def _checked_unary_stream(inner, method: str):
    """A server-streaming handler (a coroutine that writes, or an async generator) that
    first turns a rejected request into its status."""
    if inspect.isasyncgenfunction(inner):

        async def streamed(request, context):
            if isinstance(request, Rejected):
                await _abort(context, request.error, method)
            try:
                async for response in inner(request, context):
                    yield response
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # a stream's errors get their status as a unary call's do
                await _abort(context, exc, method)

        return streamed

    async def written(request, context):
        if isinstance(request, Rejected):
            await _abort(context, request.error, method)
        return await inner(request, context)

    return written


def _checked_stream(inner, method: str):
    """A client-streaming handler whose request iterator turns the first rejected request
    into its status (a coroutine or an async generator, as `inner` is: grpc.aio tells
    them apart by the function's kind)."""

    async def requests(request_iterator, context):
        async for request in request_iterator:
            if isinstance(request, Rejected):
                await _abort(context, request.error, method)
            yield request

    if inspect.isasyncgenfunction(inner):

        async def streamed(request_iterator, context):
            async for response in inner(requests(request_iterator, context), context):
                yield response

        return streamed

    async def written(request_iterator, context):
        return await inner(requests(request_iterator, context), context)

    return written
