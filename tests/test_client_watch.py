"""The Python client's watch iterators: events as they commit, and a stream that
resumes by itself from its last cursor when its server goes away and comes back."""

from __future__ import annotations

import asyncio

import pytest

from flowrun.client import FlowrunClient
from flowrun.client.retry import RetryPolicy
from flowrun.server.app import build_app
from flowrun.v1 import flow_run_event_pb2, state_pb2
from tests.conftest import settings_for
from tests.helpers.servers import free_port
from tests.helpers.watching import watch_flow_through_client

K = flow_run_event_pb2.FlowRunEventKind
FAST_RETRIES = RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.2)


async def serve(database_url: str, port: int):
    app = await build_app(settings_for(database_url, port=port, watch_heartbeat_seconds=0.2))
    await app.start()
    return app


@pytest.mark.slow  # stops and starts a server
async def test_watch_resumes_after_the_server_restarts_and_misses_nothing(database_url, unique):
    port = free_port()
    app = await serve(database_url, port)
    client = FlowrunClient(f"127.0.0.1:{port}", retry=FAST_RETRIES)
    try:
        flow, _ = await client.create_flow(f"client-watch-{unique}")
        watching, received = await watch_flow_through_client(client, flow.id)
        first = (await client.create_flow_run(flow.id))[0].id
        await app.stop(grace=1)  # the stream ends UNAVAILABLE; the iterator keeps trying
        app = await serve(database_url, port)
        async with FlowrunClient(f"127.0.0.1:{port}", retry=FAST_RETRIES) as writer:
            second = (await writer.create_flow_run(flow.id, idempotency_key=unique))[0].id  # retried until served
        deadline = asyncio.get_running_loop().time() + 20
        while len(received) < 2:
            assert not watching.done(), watching
            assert asyncio.get_running_loop().time() < deadline, received
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        watching.cancel()
        assert [(e.kind, e.flow_run.id) for e in received] == [
            (K.FLOW_RUN_EVENT_KIND_CREATED, first),
            (K.FLOW_RUN_EVENT_KIND_CREATED, second),
        ]
    finally:
        await client.close()
        await app.stop(grace=0)


async def test_watch_flow_run_ends_when_the_run_finishes(database_url, unique):
    port = free_port()
    app = await serve(database_url, port)
    try:
        async with FlowrunClient(f"127.0.0.1:{port}") as client:
            flow, _ = await client.create_flow(f"client-watch-one-{unique}")
            run, _ = await client.create_flow_run(flow.id)
            seen = []

            async def watch() -> None:
                async for message in client.watch_flow_run(run.id):
                    seen.append(message)

            watching = asyncio.ensure_future(watch())
            while not seen:
                await asyncio.sleep(0.02)
            await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_RUNNING)
            await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_COMPLETED)
            await asyncio.wait_for(watching, 10)
        kinds = [m.WhichOneof("message") for m in seen]
        assert kinds == ["snapshot_run", "event", "event"]
        assert seen[-1].event.state.type == state_pb2.STATE_TYPE_COMPLETED
    finally:
        await app.stop(grace=0)


async def test_a_bad_cursor_is_raised_not_retried(database_url):
    from flowrun.client.errors import InvalidArgumentError

    port = free_port()
    app = await serve(database_url, port)
    try:
        async with FlowrunClient(f"127.0.0.1:{port}", retry=FAST_RETRIES) as client:
            with pytest.raises(InvalidArgumentError) as caught:
                async for _ in client.watch_flow_runs(cursor="garbage"):
                    pass
        assert caught.value.reason == "INVALID_WATCH_CURSOR" and caught.value.attempts == 1
    finally:
        await app.stop(grace=0)
