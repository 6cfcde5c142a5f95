"""The client's watch iterator (client/watch.py resuming) opens the stream again from its
last cursor after UNAVAILABLE, RESOURCE_EXHAUSTED, or CANCELLED that the client did not
ask for: a server stopping past its grace period cancels the streams it still has (seen
in CI: a watch ended with CANCELLED across a server restart). Other codes are raised."""

from __future__ import annotations

import grpc
import pytest

from flowrun.client.errors import FlowrunError
from flowrun.client.retry import RetryPolicy
from flowrun.client.watch import resuming
from flowrun.v1 import flow_run_event_pb2
from flowrun.v1 import flow_run_service_pb2 as pb

QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)


def event(cursor: str) -> pb.WatchFlowRunsResponse:
    return pb.WatchFlowRunsResponse(event=flow_run_event_pb2.FlowRunEvent(cursor=cursor))


def broken(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


class Stream:
    """A server-streaming call that yields `messages`, then raises `error` if any."""

    def __init__(self, messages: list, error: grpc.aio.AioRpcError | None = None) -> None:
        self.messages, self.error = messages, error

    async def __aiter__(self):
        for message in self.messages:
            yield message
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        pass


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED]
)
async def test_a_broken_stream_is_opened_again_from_its_last_cursor(code):
    opened: list[str] = []
    streams = [Stream([event("c1")], broken(code)), Stream([event("c2")])]

    def open_stream(cursor: str) -> Stream:
        opened.append(cursor)
        return streams[len(opened) - 1]

    received = [message.event.cursor async for message in resuming(open_stream, "c0", QUICK)]
    assert received == ["c1", "c2"] and opened == ["c0", "c1"]


async def test_other_codes_are_raised():
    with pytest.raises(FlowrunError) as raised:
        async for _ in resuming(lambda cursor: Stream([], broken(grpc.StatusCode.OUT_OF_RANGE)), "c0", QUICK):
            pass
    assert raised.value.code == grpc.StatusCode.OUT_OF_RANGE
