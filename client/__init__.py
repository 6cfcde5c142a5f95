"""Python client for flowrun: `FlowrunClient` and the errors its calls raise."""

from .client import FlowrunClient
from .errors import (
    AbortedError,
    DeadlineExceededError,
    FailedPreconditionError,
    FlowrunError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from .retry import RetryPolicy
from .tls import TlsConfig

__all__ = [
    "AbortedError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FlowrunClient",
    "FlowrunError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]
