"""Client cancellations never interrupt a database statement.

When a client cancels or its deadline passes, grpc.aio cancels the handler's task at
whatever await it is in. Inside a database driver that is the worst place: asyncpg sends
a cancel request over a new connection and SQLAlchemy invalidates the connection
mid-statement; aiosqlite's worker thread can be stopped with work still queued, which
strands that work and, with it, SQLite's write lock. Every one of those paths has lost
or stalled writes here.

So the outermost interceptor runs each unary handler in a task of its own and only
*abandons* it when the call is cancelled: the caller gets its CANCELLED or
DEADLINE_EXCEEDED at once, the handler carries on to its next boundary, and the unit of
work it is in rolls back instead of committing and opens no new one (it asks
server/call_scope.py). Nothing is cut in half, and nothing the client was not told about
is committed."""

from __future__ import annotations

import asyncio
import logging

import grpc

from flowrun.server.call_scope import CallScope, enter

log = logging.getLogger("flowrun.cancellation")
# Handler tasks whose callers went away: referenced until they finish.
_abandoned: set[asyncio.Task] = set()


class CancellationShieldInterceptor(grpc.aio.ServerInterceptor):
    """Outermost: shields every unary handler from cancellation (see the module's
    docstring). The wrapped handler of each method is built once, not per call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, _shielded(handler))
        return cached[1]


def _shielded(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    inner = handler.unary_unary
    assert inner is not None, "only unary-unary handlers are shielded"

    async def scoped(request, context, scope: CallScope):
        enter(scope)  # the task runs in a copy of the context: this stays inside it
        return await inner(request, context)

    async def shielded(request, context):
        scope = CallScope()
        task = asyncio.ensure_future(scoped(request, context, scope))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                scope.abandoned = True
                _abandoned.add(task)
                task.add_done_callback(_finished_abandoned)
            raise

    return grpc.unary_unary_rpc_method_handler(
        shielded,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _finished_abandoned(task: asyncio.Task) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned call ended with %r", task.exception())
