"""The one place exceptions become gRPC status codes with rich details
(google.rpc.Status in grpc-status-details-bin: always an ErrorInfo, plus BadRequest or
RetryInfo where they help). Outermost interceptor, so it sees every error."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from server import errors
from server.db.dialect import is_unique_violation, sqlstate

log = logging.getLogger("flowrun.errors")

DOMAIN = "flowrun.dev"
RETRY_CONFLICT_SECONDS = 0.05
RETRY_UNAVAILABLE_SECONDS = 1.0
CONFLICT_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P")  # connection exceptions, admin shutdown / cannot connect


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str], *extra) -> grpc.Status:
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=message,
        details=[_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)), *map(_pack, extra)],
    )
    return rpc_status.to_status(status)


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=int(seconds * 1e9) % 10**9, seconds=int(seconds)))


def _is_conflict(exc: BaseException) -> bool:
    """Lock timeouts, deadlocks, serialization failures, uniqueness races, SQLite's busy
    lock: a retry may succeed. Raw asyncpg errors (the SetState fast path) count too."""
    if sqlstate(exc) in CONFLICT_SQLSTATES or is_unique_violation(exc):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig)
    return "database is locked" in text or "database table is locked" in text


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, PoolTimeoutError, OSError, asyncpg.InterfaceError)):
        return True
    if (sqlstate(exc) or "").startswith(UNAVAILABLE_SQLSTATE_CLASSES):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        state = sqlstate(exc) or ""
        if state.startswith(UNAVAILABLE_SQLSTATE_CLASSES):
            return True
        text = str(exc.orig).lower()
        return any(word in text for word in ("connect", "connection", "unable to open database"))
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, (ConnectionError, OSError)) and not isinstance(exc, errors.FlowrunError)


def to_grpc_status(exc: BaseException, method: str) -> grpc.Status:
    if isinstance(exc, errors.InvalidArgument):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=text) for field, text in exc.violations
        ]
        return _status(
            grpc.StatusCode.INVALID_ARGUMENT,
            exc.message,
            exc.reason,
            exc.metadata,
            error_details_pb2.BadRequest(field_violations=violations),
        )
    if isinstance(exc, errors.NotFound):
        return _status(grpc.StatusCode.NOT_FOUND, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.AlreadyExists):
        return _status(grpc.StatusCode.ALREADY_EXISTS, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.FailedPrecondition):
        return _status(grpc.StatusCode.FAILED_PRECONDITION, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.TooLarge):
        return _status(grpc.StatusCode.FAILED_PRECONDITION, exc.message, exc.reason, exc.metadata)
    if isinstance(exc, errors.Conflict):
        return _status(grpc.StatusCode.ABORTED, exc.message, exc.reason, exc.metadata, _retry_info(RETRY_CONFLICT_SECONDS))
    if _is_conflict(exc):
        return _status(
            grpc.StatusCode.ABORTED,
            "Conflict with a concurrent request; retry",
            "CONFLICT",
            {},
            _retry_info(RETRY_CONFLICT_SECONDS),
        )
    if _is_unavailable(exc):
        log.warning("database unavailable during %s: %r", method, exc)
        return _status(
            grpc.StatusCode.UNAVAILABLE,
            "The database is unavailable; retry with backoff",
            "DATABASE_UNAVAILABLE",
            {},
            _retry_info(RETRY_UNAVAILABLE_SECONDS),
        )
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s in %s", error_id, method, exc_info=exc)
    return _status(
        grpc.StatusCode.INTERNAL,
        f"Internal error {error_id}; see the server log",
        "INTERNAL",
        {"error_id": error_id},
    )


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns every exception escaping a unary handler into a status with details. Aborts
    the handler made itself (context.abort) and cancellations pass through. The wrapped
    handler of each method is built once, not per call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, _mapped(handler, method))
        return cached[1]


def _mapped(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    inner = handler.unary_unary

    async def mapped(request, context: grpc.aio.ServicerContext):
        try:
            return await inner(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                status = _status(grpc.StatusCode.DEADLINE_EXCEEDED, "The deadline passed", "DEADLINE_EXCEEDED", {})
            else:
                status = to_grpc_status(exc, method)
            await context.abort(status.code, status.details, status.trailing_metadata)

    return grpc.unary_unary_rpc_method_handler(
        mapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
