"""Whether the client of the call this code runs for is still waiting for the answer.

Set by the cancellation interceptor (server/cancellation.py) for each call; read by the
unit of work (server/db/unit_of_work.py), which must not commit for a client that went
away. Kept apart from the interceptor so that nothing below the servicers imports grpc."""

from __future__ import annotations

from contextvars import ContextVar


class CallScope:
    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


_current: ContextVar[CallScope | None] = ContextVar("flowrun_call_scope", default=None)


def enter(scope: CallScope) -> None:
    """Binds `scope` to the current context (each handler runs in a task of its own)."""
    _current.set(scope)


def call_abandoned() -> bool:
    """True once the client of the current call has cancelled or its deadline passed."""
    scope = _current.get()
    return scope is not None and scope.abandoned


def in_call() -> bool:
    """True in code that runs for an RPC (inside the cancellation interceptor's task)."""
    return _current.get() is not None
