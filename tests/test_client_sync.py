"""SyncClient: FlowrunClient's methods without await, for scripts.

The test server runs on the test's event loop, so every blocking call here runs in a
worker thread (asyncio.to_thread), as a script's main thread would make it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowrun.client import FlowrunClient, NotFoundError, RetryPolicy, SyncClient, UnavailableError
from flowrun.v1 import state_pb2


def public_methods() -> list[str]:
    return [name for name, _ in inspect.getmembers(FlowrunClient, inspect.isfunction) if not name.startswith("_")]


async def test_calls_iterators_and_errors(app, unique):
    def script() -> None:
        with SyncClient(f"127.0.0.1:{app.port}") as client:
            flow, created = client.create_flow(f"sync-{unique}")
            assert created and client.get_flow_by_name(f"sync-{unique}").id == flow.id
            ids = [client.create_flow_run(flow.id, tags=[unique])[0].id for _ in range(5)]
            result = client.set_flow_run_state(ids[0], state_pb2.STATE_TYPE_RUNNING)
            assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
            # iter_* are plain iterators that fetch pages (of 2 here) as they are consumed.
            runs = client.iter_flow_runs(flow_run_filter=None, page_size=2)
            assert sorted(run.id for run in runs if unique in run.tags) == sorted(ids)
            first_two = client.iter_flow_runs(page_size=2)
            assert next(first_two) and next(first_two)
            first_two.close()  # an iterator left early is closed on the loop, nothing leaks
            with pytest.raises(NotFoundError) as missing:
                client.get_flow_run("00000000-0000-4000-8000-000000000000")
            assert missing.value.reason == "FLOW_RUN_NOT_FOUND"
            assert client.count_flow_runs() >= 5
        with pytest.raises(RuntimeError, match="closed"):
            client.get_flow(flow.id)
        client.close()  # a second close does nothing

    await asyncio.to_thread(script)


async def test_every_method_of_the_async_client_is_there():
    def check() -> None:
        with SyncClient("127.0.0.1:1") as client:  # no call is made
            for name in public_methods():
                assert callable(getattr(client, name)), name
                assert name in dir(client)
            with pytest.raises(AttributeError):
                client.no_such_method  # noqa: B018
            with pytest.raises(AttributeError):
                client._call  # noqa: B018  # private methods are not exposed
            assert isinstance(client.async_client, FlowrunClient)

    await asyncio.to_thread(check)
    with pytest.raises(TypeError, match="own channel"):
        SyncClient(channel=object())


async def test_retries_run_on_the_private_loop():
    def call() -> UnavailableError:
        retry = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
        with SyncClient("127.0.0.1:1", retry=retry, timeout=10) as client:
            with pytest.raises(UnavailableError) as failed:
                client.count_flows()
            return failed.value

    error = await asyncio.to_thread(call)
    assert error.attempts == 3


async def test_threads_share_one_client_and_a_running_loop_is_no_obstacle(app, unique):
    def script() -> None:
        with SyncClient(f"127.0.0.1:{app.port}") as client:
            flow, _ = client.create_flow(f"threads-{unique}")

            def create(index: int) -> str:
                return client.create_flow_run(flow.id, name=f"{index}-{unique}")[0].id

            with ThreadPoolExecutor(4) as pool:
                ids = list(pool.map(create, range(8)))
            assert len(set(ids)) == 8

            # A thread whose own event loop is running (an async app calling a sync library):
            # asyncio.run per call would refuse here; the private loop does not care.
            async def inside_a_loop() -> int:
                return client.count_flows()

            assert asyncio.run(inside_a_loop()) >= 1

    await asyncio.to_thread(script)


async def test_the_loop_thread_ends_with_close():
    before = {thread.ident for thread in threading.enumerate()}

    def open_and_close() -> None:
        client = SyncClient("127.0.0.1:1")
        assert any(t.name == "flowrun-sync-client" for t in threading.enumerate())
        client.close()

    await asyncio.to_thread(open_and_close)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name == "flowrun-sync-client"]
    assert leftover == []


async def test_a_stream_is_a_plain_iterator_too(app, unique):
    """Streaming RPCs (watch) run on the private loop like the rest: one message per next(),
    and other calls on the same client may be made between two."""

    def script() -> list[str]:
        with SyncClient(f"127.0.0.1:{app.port}") as client:
            flow, _ = client.create_flow(f"sync-watch-{unique}")
            run, _ = client.create_flow_run(flow.id)
            stream = client.watch_flow_run(run.id)
            kinds = [next(stream).WhichOneof("message")]  # the run as it is now
            for state_type in (state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED):
                client.set_flow_run_state(run.id, state_type)
            kinds += [message.WhichOneof("message") for message in stream]  # ends at COMPLETED
            return kinds

    kinds = await asyncio.wait_for(asyncio.to_thread(script), 30)
    assert kinds[0] == "snapshot_run" and kinds.count("event") >= 2
