"""Watch messages and the server's send limit (grpc.max_send_message_length: the smaller
of FLOWRUN_MAX_MESSAGE_BYTES and FLOWRUN_MAX_RESPONSE_BYTES, 4 MiB by default, while a
request, and so a run's parameters, may be up to FLOWRUN_MAX_MESSAGE_BYTES, 8 MiB).

What happens today, pinned here: a message over the limit is never sent; gRPC ends the
call with RESOURCE_EXHAUSTED ("Sent message larger than max"), with no cursor. A resume
from the last cursor meets the same message again, so such a stream cannot get past it
(the Python client, which resumes after RESOURCE_EXHAUSTED, gives up after its retry
policy's attempts and raises). A batch (WatchFlowRuns with `batch`, which the Python
client always asks for) of events that each fit but together do not is cut into
messages within the limit by the servicer (server/services/watch.py Watcher.batches)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from flowrun.client import FlowrunClient
from flowrun.client.errors import FlowrunError
from flowrun.client.retry import RetryPolicy
from flowrun.v1 import filters_pb2
from tests.helpers.watching import cursor_before_the_next_change, make_flow, make_run, start_watch

SEND_LIMIT = 64 * 1024
REQUEST_LIMIT = 256 * 1024
LIMITS = {"max_message_bytes": REQUEST_LIMIT, "max_response_bytes": SEND_LIMIT}


def parameters(size: int) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update({"blob": "x" * size})
    return value


async def cursor_then_runs(flows, runs, unique: str, sizes: list[int]) -> tuple[str, filters_pb2.FlowRunFilter]:
    """A cursor just before runs of these parameter sizes were created (in one flow)."""
    flow_id = await make_flow(flows, unique)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    for size in sizes:
        try:
            await make_run(runs, flow_id, parameters=parameters(size))
        except grpc.aio.AioRpcError as exc:  # the run is created, but its response is over the limit too
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return cursor, only_flow


@pytest.mark.parametrize("batch", [False, True])
async def test_an_event_over_the_send_limit_ends_the_stream_every_time(served, unique, batch):
    app, flows, runs = await served(**LIMITS)
    cursor, only_flow = await cursor_then_runs(flows, runs, unique, [SEND_LIMIT + 1024])
    for _attempt in range(2):  # and again from the same cursor: the stream cannot get past it
        watch = start_watch(runs, flow_run_filter=only_flow, cursor=cursor, batch=batch)
        await watch.task
        assert watch.error is not None and watch.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (watch.error.details() or "")
        assert not watch.events and not watch.batched


async def test_the_python_client_raises_after_its_attempts(served, unique):
    app, flows, runs = await served(**LIMITS)
    cursor, only_flow = await cursor_then_runs(flows, runs, unique, [SEND_LIMIT + 1024])
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.01)
    async with FlowrunClient(f"127.0.0.1:{app.port}", retry=policy) as client:
        with pytest.raises(FlowrunError) as caught:
            async for _message in client.watch_flow_runs(flow_run_filter=only_flow, cursor=cursor):
                pass
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and caught.value.attempts == 3


async def test_a_batch_of_events_that_each_fit_is_sent_within_the_send_limit(served, unique):
    app, flows, runs = await served(**LIMITS)
    each = SEND_LIMIT // 4
    cursor, only_flow = await cursor_then_runs(flows, runs, unique, [each] * 6)
    watch = start_watch(runs, flow_run_filter=only_flow, cursor=cursor, batch=True)
    await watch.until(
        lambda w: sum(len(m.events.events) for m in w.messages if m.WhichOneof("message") == "events") >= 6
    )
    watch.cancel()
    assert all(m.ByteSize() <= SEND_LIMIT for m in watch.messages)
