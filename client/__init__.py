"""Python client for flowrun: `FlowrunClient` (async), `SyncClient` (blocking, for scripts)
and the errors their calls raise.

The names below are imported on first use (PEP 562), not when the package is: the
`flowrun` command (client/cli.py) must set GRPC_VERBOSITY before grpc loads, and every
module here imports grpc.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowrun.client.client import FlowrunClient
    from flowrun.client.errors import (
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
    from flowrun.client.retry import RetryPolicy
    from flowrun.client.sync import SyncClient
    from flowrun.client.tls import TlsConfig

_MODULE_OF = {
    "FlowrunClient": ".client",
    "SyncClient": ".sync",
    "RetryPolicy": ".retry",
    "TlsConfig": ".tls",
    **dict.fromkeys(
        [
            "AbortedError",
            "DeadlineExceededError",
            "FailedPreconditionError",
            "FlowrunError",
            "InternalError",
            "InvalidArgumentError",
            "NotFoundError",
            "PermissionDeniedError",
            "ResourceExhaustedError",
            "UnauthenticatedError",
            "UnavailableError",
            "from_rpc_error",
        ],
        ".errors",
    ),
}

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
    "SyncClient",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
