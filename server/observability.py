"""The outermost interceptor: per-RPC metrics (requests by method and status code, a
latency histogram) and the call's identity for log lines (server/logs.py).

It wraps every other interceptor, so it sees the status the client gets: an
authentication refusal, an error mapped to its code, a cancelled or expired call, and
the reply the orchestration interceptor produced. Only registered unary methods are
measured (every flowrun method is unary); unknown methods never reach a handler, so
the method label cannot be inflated by callers. Health's Watch stream passes through.

Cost per call: two clock reads, one histogram observation and one counter increment,
on label children bound when the method is first called (never a label dict per call);
with JSON logs also one small object in a context variable."""

from __future__ import annotations

import asyncio
import time

import grpc

from flowrun.server import metrics
from flowrun.server.logs import bind_call

_OK = grpc.StatusCode.OK
# A client whose deadline passes cancels the call itself (its own timer), which the
# server may see a little before its own copy of the deadline: a cancellation this close
# to the deadline counts as DEADLINE_EXCEEDED, as the client reports it.
DEADLINE_SLACK_SECONDS = 0.1


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, record_metrics: bool, bind_calls: bool) -> None:
        self._record_metrics = record_metrics
        self._bind_calls = bind_calls
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:  # built once per method, not per call
            cached = self._wrapped[method] = (handler, self._observed(handler, method))
        return cached[1]

    def _observed(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        assert inner is not None, "only unary-unary handlers are observed"
        record_metrics, bind_calls = self._record_metrics, self._bind_calls
        duration = metrics.RPC_DURATION.labels(method)
        counters: dict[grpc.StatusCode, object] = {}

        def count(code: grpc.StatusCode) -> None:
            counter = counters.get(code)
            if counter is None:
                counter = counters[code] = metrics.RPC_REQUESTS.labels(method, code.name)
            counter.inc()  # type: ignore[attr-defined]

        async def observed(request, context):
            if bind_calls:
                bind_call(method, context)
            if not record_metrics:
                return await inner(request, context)
            started = time.perf_counter()
            code = _OK
            try:
                response = await inner(request, context)
                code = _final_code(context, _OK)  # a handler may set a code without raising
                return response
            except grpc.aio.AbortError:
                code = _final_code(context, grpc.StatusCode.UNKNOWN)
                raise
            except asyncio.CancelledError:
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= DEADLINE_SLACK_SECONDS
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                duration.observe(time.perf_counter() - started)
                count(code)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _final_code(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call ends with: the one set or aborted with, else `default` (grpc.aio
    answers None while none was set, whatever its stubs say)."""
    code: grpc.StatusCode | None = context.code()
    return default if code is None else code
