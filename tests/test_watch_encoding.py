"""Watch events are serialized once and sent as bytes (server/services/watch.py): the
bytes are exactly what protobuf itself would send, and only the Watch methods' handlers
pass bytes through."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from flowrun.server.services.watch import WATCH_METHODS, PreEncodedResponses, encoded_batch, encoded_event
from flowrun.v1 import flow_run_event_pb2
from flowrun.v1 import flow_run_service_pb2 as pb


def event(size: int) -> flow_run_event_pb2.FlowRunEvent:
    return flow_run_event_pb2.FlowRunEvent(cursor="c" * size, kind=flow_run_event_pb2.FLOW_RUN_EVENT_KIND_CREATED)


# Encoded lengths on both sides of each varint width (1, 2 and 3 bytes: 127/128 and
# 16383/16384 fall within these ranges).
@pytest.mark.parametrize("size", [0, 1, *range(120, 128), 300, *range(16_374, 16_384), 20_000])
def test_an_encoded_event_is_the_response_protobuf_would_send(size):
    message = event(size)
    encoded = encoded_event(message.SerializeToString())
    assert encoded == pb.WatchFlowRunsResponse(event=message).SerializeToString()
    assert encoded == pb.WatchFlowRunResponse(event=message).SerializeToString()


@pytest.mark.parametrize("sizes", [[], [5], [10, 200, 3], [127, 0], [9_000, 9_000], [300] * 60])
def test_an_encoded_batch_is_the_response_protobuf_would_send(sizes):
    messages = [event(size) for size in sizes]
    encoded = encoded_batch([encoded_event(m.SerializeToString()) for m in messages])
    expected = pb.WatchFlowRunsResponse(events=flow_run_event_pb2.FlowRunEventBatch(events=messages))
    assert encoded == expected.SerializeToString()
    assert pb.WatchFlowRunsResponse.FromString(encoded) == expected


async def _intercept(interceptor, method: str, handler):
    async def continuation(_details):
        return handler

    return await interceptor.intercept_service(continuation, SimpleNamespace(method=method))


async def test_only_the_watch_methods_pass_bytes_through():
    async def behaviour(request, context):
        yield pb.WatchFlowRunsResponse()

    def serialize(message):
        return b"serialized:" + message.SerializeToString()

    handler = grpc.unary_stream_rpc_method_handler(
        behaviour, request_deserializer=pb.WatchFlowRunsRequest.FromString, response_serializer=serialize
    )
    interceptor = PreEncodedResponses()
    progress = pb.WatchFlowRunsResponse(progress=pb.WatchProgress(cursor="x"))
    for method in WATCH_METHODS:
        wrapped = await _intercept(interceptor, method, handler)
        assert wrapped.unary_stream is behaviour
        assert wrapped.request_deserializer is handler.request_deserializer
        assert wrapped.response_serializer(b"\x0a\x00") == b"\x0a\x00"  # as it is
        assert wrapped.response_serializer(progress) == serialize(progress)  # messages as before
        assert await _intercept(interceptor, method, handler) is wrapped  # built once per method
    other = "/flowrun.v1.FlowRunService/ListFlowRuns"
    assert await _intercept(interceptor, other, handler) is handler
    assert await _intercept(interceptor, next(iter(WATCH_METHODS)), None) is None
