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
    ResourceExhaustedError,
    UnavailableError,
    from_rpc_error,
)
from .retry import RetryPolicy

__all__ = [
    "AbortedError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FlowrunClient",
    "FlowrunError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "UnavailableError",
    "from_rpc_error",
]
