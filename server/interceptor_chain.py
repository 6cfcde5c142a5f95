"""flowrun's interceptors, run once per method instead of once per call.

grpc.aio runs a server's interceptors on every call: for each one a continuation
(functools.partial) and two coroutines, just to hand back the same wrapped handler as
the call before (each of flowrun's interceptors keeps its wrapped handler per method).
PerMethodChain is one interceptor in their place: on a method's first call it asks each
of them, innermost first, for its handler around the one inside it, and keeps the
result; every later call of the method costs one dictionary lookup.

That is only right for interceptors whose handler depends on the method and on the
handler inside it alone, never on the call (its metadata, its peer): every flowrun
interceptor does its per-call work inside the handler it returns. One that needs the
call (OpenTelemetry's, which starts a span per call) stays a plain interceptor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc


class PerMethodChain(grpc.aio.ServerInterceptor):
    """`layers`, outermost first, as grpc.aio.server(interceptors=...) would take them."""

    def __init__(self, layers: Sequence[grpc.aio.ServerInterceptor]) -> None:
        self._innermost_first = tuple(reversed(layers))
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: no layer has anything to wrap
        method = handler_call_details.method
        built = self._built.get(method)
        if built is None or built[0] is not handler:
            built = self._built[method] = (handler, await self._wrap(handler, handler_call_details))
        return built[1]

    async def _wrap(
        self, handler: grpc.RpcMethodHandler, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        wrapped: grpc.RpcMethodHandler | None = handler
        for layer in self._innermost_first:
            wrapped = await layer.intercept_service(_answering(wrapped), handler_call_details)
        return wrapped


def _answering(
    handler: grpc.RpcMethodHandler | None,
) -> Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]:
    """A continuation that answers with `handler`: what the layers inside produced."""

    async def continuation(handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return handler

    return continuation
