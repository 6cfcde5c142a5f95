"""Watch streams that survive disconnects: FlowrunClient.watch_flow_runs and
watch_flow_run open the stream, remember the cursor of every message, and when the
stream breaks with UNAVAILABLE (the server went away or is shutting down), CANCELLED
from the other side (a server stopping past its grace period, or a proxy, cancels the
streams it still has; this client cancels a call only after leaving it) or
RESOURCE_EXHAUSTED (the client fell behind) they open it again from that cursor, with
the client's backoff. Nothing is missed and, within one iterator, nothing repeats: the
server resumes right after the cursor it is given.

Every other error is raised (a FlowrunError); an expired cursor (OUT_OF_RANGE) too: the
events after it are gone, so the caller must read the runs again and watch from now."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from flowrun.client.errors import from_rpc_error
from flowrun.client.retry import RetryPolicy

# Codes after which a watch is opened again from its cursor.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED})


async def resuming(
    open_stream: Callable[[str], Any],
    cursor: str,
    policy: RetryPolicy,
    *,
    progress: bool = False,
) -> AsyncIterator[Any]:
    """Yields the messages of `open_stream(cursor)` (a server-streaming call), opening it
    again from the last cursor after a resumable error. Progress messages (heartbeats)
    move the cursor and are yielded only with `progress`. `policy.max_attempts` bounds
    the attempts in a row that get no message at all."""
    failures = 0
    while True:
        call = open_stream(cursor)
        try:
            async for message in call:
                failures = 0
                kind = message.WhichOneof("message")
                if kind == "events":  # a batch (WatchFlowRuns with `batch`): one message per event
                    for event in message.events.events:
                        cursor = event.cursor
                        single = type(message)()
                        single.event.CopyFrom(event)
                        yield single
                    continue
                if kind == "event":
                    cursor = message.event.cursor
                elif kind == "progress":
                    cursor = message.progress.cursor
                    if not progress:
                        continue
                yield message
            return  # the server ended the stream (WatchFlowRun: the run finished)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            failures += 1
            error.attempts = failures
            if exc.code() not in RESUMABLE or failures >= policy.max_attempts:
                raise error from exc
            cursor = error.metadata.get("cursor") or cursor
            delay = policy.delay(failures, error.retry_delay)
        finally:
            call.cancel()
        await policy.sleep(delay)
