"""What the interceptors cost per call (bench/per_call.py measures it): each builds its
wrapped handler once per method, never per call; the chain app.py runs them in asks
each of them once per method; and an interceptor leaves alone the methods it has
nothing to do with."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from flowrun.server.auth import Authenticator, AuthInterceptor
from flowrun.server.cancellation import CancellationShieldInterceptor
from flowrun.server.error_mapping import ErrorMappingInterceptor
from flowrun.server.interceptor_chain import PerMethodChain
from flowrun.server.observability import ObservabilityInterceptor
from flowrun.v1 import flow_run_service_pb2 as pb

GET_FLOW_RUN = "/flowrun.v1.FlowRunService/GetFlowRun"
CREATE_FLOW_RUN = "/flowrun.v1.FlowRunService/CreateFlowRun"


def unary_handler(answer: str = "servicer") -> grpc.RpcMethodHandler:
    async def behaviour(request, context):
        return answer

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=pb.GetFlowRunRequest.FromString,
        response_serializer=pb.GetFlowRunResponse.SerializeToString,
    )


def details(method: str) -> SimpleNamespace:
    return SimpleNamespace(method=method, invocation_metadata=())


async def intercept(interceptor: grpc.aio.ServerInterceptor, method: str, handler: grpc.RpcMethodHandler | None):
    async def continuation(_details):
        return handler

    return await interceptor.intercept_service(continuation, details(method))


def authenticating() -> AuthInterceptor:
    """Authentication on (client certificates), so every non-open method is guarded."""
    return AuthInterceptor(Authenticator(None, certificates=True))


INTERCEPTORS = {
    "auth": authenticating,
    "cancellation": CancellationShieldInterceptor,
    "errors": ErrorMappingInterceptor,
    "observability": lambda: ObservabilityInterceptor(record_metrics=True, bind_calls=True),
}


@pytest.mark.parametrize("name", sorted(INTERCEPTORS))
async def test_each_interceptor_builds_a_methods_wrapped_handler_once(name):
    interceptor = INTERCEPTORS[name]()
    handler = unary_handler()
    first = await intercept(interceptor, GET_FLOW_RUN, handler)
    second = await intercept(interceptor, GET_FLOW_RUN, handler)
    assert first is not handler  # it does wrap this method...
    assert second is first  # ...once: the second call gets the same handler object
    other = await intercept(interceptor, CREATE_FLOW_RUN, handler)
    assert other is not first  # one per method


@pytest.mark.parametrize("name", sorted(INTERCEPTORS))
async def test_a_new_inner_handler_is_wrapped_anew(name):
    interceptor = INTERCEPTORS[name]()
    first = await intercept(interceptor, GET_FLOW_RUN, unary_handler())
    assert await intercept(interceptor, GET_FLOW_RUN, unary_handler()) is not first


async def test_with_authentication_off_reads_are_left_alone_and_writes_still_audited():
    interceptor = AuthInterceptor(Authenticator(None, certificates=False))
    handler = unary_handler()
    assert await intercept(interceptor, GET_FLOW_RUN, handler) is handler  # nothing to check or audit
    assert await intercept(interceptor, CREATE_FLOW_RUN, handler) is not handler  # audited
    assert await intercept(authenticating(), GET_FLOW_RUN, handler) is not handler  # the caller is checked


class Tagging(grpc.aio.ServerInterceptor):
    """Wraps every unary handler so that its answer says it passed here; counts how often
    grpc.aio (or the chain) asks it for a handler."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.asked = 0

    async def intercept_service(self, continuation, handler_call_details):
        self.asked += 1
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        inner = handler.unary_unary

        async def tagged(request, context):
            return f"{self.tag}({await inner(request, context)})"

        return grpc.unary_unary_rpc_method_handler(
            tagged,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def test_the_chain_asks_its_layers_once_per_method_and_nests_them_in_order():
    outer, inner = Tagging("outer"), Tagging("inner")
    chain = PerMethodChain([outer, inner])
    handler = unary_handler()
    wrapped = await intercept(chain, GET_FLOW_RUN, handler)
    for _ in range(3):
        assert await intercept(chain, GET_FLOW_RUN, handler) is wrapped
    await intercept(chain, CREATE_FLOW_RUN, handler)
    assert (outer.asked, inner.asked) == (2, 2)  # two methods, five calls
    assert await wrapped.unary_unary(None, None) == "outer(inner(servicer))"  # as interceptors=[outer, inner]


async def test_the_chain_rebuilds_for_a_new_inner_handler_and_passes_unknown_methods():
    layer = Tagging("layer")
    chain = PerMethodChain([layer])
    first = await intercept(chain, GET_FLOW_RUN, unary_handler("one"))
    second = await intercept(chain, GET_FLOW_RUN, unary_handler("two"))
    assert second is not first
    assert await second.unary_unary(None, None) == "layer(two)"
    assert await intercept(chain, "/unknown.Service/Method", None) is None
    assert layer.asked == 2


async def test_the_chain_over_flowruns_interceptors_answers_as_they_do_one_by_one():
    """Same handler shape through the chain as through grpc.aio's own per-call chaining."""
    layers = [authenticating(), CancellationShieldInterceptor(), ErrorMappingInterceptor()]
    chain = PerMethodChain(layers)
    handler = unary_handler()
    chained = await intercept(chain, GET_FLOW_RUN, handler)
    one_by_one = handler
    for layer in reversed(layers):
        one_by_one = await intercept(layer, GET_FLOW_RUN, one_by_one)
    assert chained is one_by_one  # each layer's own per-method handler, reused
