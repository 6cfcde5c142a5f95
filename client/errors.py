"""Typed exceptions for failed flowrun calls.

The server puts a `google.rpc.Status` in the `grpc-status-details-bin` trailer of every
error, carrying an ErrorInfo (stable reason, metadata) and, depending on the code, a
BadRequest (which field is wrong) or a RetryInfo (when to retry). Callers should be able
to switch on those without touching protobuf, so they become plain attributes here.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AbortedError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FlowrunError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "UnavailableError",
    "from_rpc_error",
]

_DETAILS_KEY = "grpc-status-details-bin"


class FlowrunError(Exception):
    """A failed call, with the server's structured details.

    Raised as is for status codes that have no subclass of their own.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: dict[str, str] | None = None,
        field_violations: list[tuple[str, str]] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = metadata or {}
        self.field_violations = field_violations or []
        self.retry_delay = retry_delay
        # How many times the call was sent before it failed (FlowrunClient retries).
        self.attempts = 1

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        return f"{text} ({self.reason})" if self.reason else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r}, reason={self.reason!r})"


class NotFoundError(FlowrunError):
    """The flow, run or state does not exist (NOT_FOUND)."""


class InvalidArgumentError(FlowrunError):
    """The request is malformed; `field_violations` names the fields (INVALID_ARGUMENT)."""


class FailedPreconditionError(FlowrunError):
    """The resource is not in a state that allows the request (FAILED_PRECONDITION)."""


class AbortedError(FlowrunError):
    """A concurrent writer won; retry after `retry_delay` (ABORTED)."""


class UnavailableError(FlowrunError):
    """The server or its database is unreachable; retry with backoff (UNAVAILABLE)."""


class DeadlineExceededError(FlowrunError):
    """The call's deadline passed before the work finished (DEADLINE_EXCEEDED)."""


class ResourceExhaustedError(FlowrunError):
    """A request or result exceeds a documented size limit (RESOURCE_EXHAUSTED)."""


class UnauthenticatedError(FlowrunError):
    """No credentials, or ones the server does not know (UNAUTHENTICATED)."""


class PermissionDeniedError(FlowrunError):
    """The caller's role does not allow the method; `metadata["required_role"]` says which
    would (PERMISSION_DENIED)."""


class InternalError(FlowrunError):
    """An unexpected server fault; the details are in the server log only (INTERNAL)."""


_CLASS_BY_CODE: dict[grpc.StatusCode, type[FlowrunError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def from_rpc_error(exc: grpc.aio.AioRpcError) -> FlowrunError:
    """Build the typed error for a failed call, decoding its rich status if present.

    The result has `exc` as its `__cause__`, so the transport-level debug string
    stays reachable in tracebacks.
    """
    code = exc.code()
    error = _CLASS_BY_CODE.get(code, FlowrunError)(code, exc.details() or "")
    status = _rich_status(exc)
    if status is not None:
        _apply_details(error, status)
    error.__cause__ = exc
    return error


def _rich_status(exc: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """Read the google.rpc.Status trailer of a failed call, or None.

    AioRpcError has already finished, so its code(), details() and trailing_metadata()
    are plain methods: the synchronous `rpc_status.from_call` applies to it, while
    `rpc_status.aio.from_call` (which awaits them) is for live aio calls only.
    """
    try:
        return rpc_status.from_call(exc)  # type: ignore[arg-type]  # the stubs want grpc.Call; see above
    except ValueError:
        # The trailer's code or message disagrees with the call's (for example, a proxy
        # rewrote the message). The call's code stays authoritative; the details still
        # describe this failure, so keep them.
        return _read_trailer(exc)
    except DecodeError:
        return None


def _read_trailer(exc: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in exc.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):  # a -bin key's value is bytes
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _apply_details(error: FlowrunError, status: status_pb2.Status) -> None:
    """Copy the detail messages we know onto the error.

    Unknown detail types are skipped: the server may add new ones.
    """
    for detail in status.details:
        # Unpack returns False when the detail holds another type.
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        retry_info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            error.reason = info.reason or None
            error.domain = info.domain or None
            error.metadata = dict(info.metadata)
        elif detail.Unpack(bad_request):
            error.field_violations = [
                (violation.field, violation.description) for violation in bad_request.field_violations
            ]
        elif detail.Unpack(retry_info):
            error.retry_delay = retry_info.retry_delay.ToTimedelta().total_seconds()
