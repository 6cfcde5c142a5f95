"""`SyncClient`: FlowrunClient for scripts and notebooks that do not use asyncio.

    from flowrun.client import SyncClient

    with SyncClient("127.0.0.1:50051") as client:
        flow, _ = client.create_flow("etl")
        for run in client.iter_flow_runs(page_size=100):
            print(run.name)

Every FlowrunClient method is there with the same arguments: coroutine methods return
their result (or raise the same FlowrunError subclasses), the iter_* methods return plain
iterators that fetch pages as they are consumed.

How: one private event loop on a daemon thread per SyncClient, which owns the FlowrunClient
and its grpc.aio channel; each call is handed to that loop and the calling thread waits for
the result. The alternative, asyncio.run per call, was rejected: a grpc.aio channel belongs
to the loop it was made on, so every call would need a new channel (a new TCP and, with
TLS, a new handshake), an iterator could not keep its channel between two pages, and
asyncio.run refuses to run where a loop is already running (a notebook, an async app
calling a sync library). With the loop thread, retries and their backoff sleeps run on
that loop inside one call as in the async client, one channel serves every call, several
threads may share one SyncClient (their calls run concurrently on the loop), and the
caller's own event loop, if any, is never touched.

A call interrupted in the calling thread (Ctrl-C) is cancelled on the loop, which cancels
the RPC. Close the client (or use `with`) to close the channel and end the thread; the
thread is a daemon, so a forgotten client does not keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from flowrun.client.client import FlowrunClient

__all__ = ["SyncClient"]

_T = TypeVar("_T")


class SyncClient:
    """A blocking FlowrunClient: the same methods, called without `await`.

    Takes FlowrunClient's arguments (target, timeout, retry, tls, token; not `channel`,
    which would belong to another loop). Use it as a context manager, or call close().
    """

    def __init__(self, target: str | None = None, **options: Any) -> None:
        if "channel" in options:
            raise TypeError("SyncClient makes its own channel: a grpc.aio channel belongs to another event loop")
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flowrun-sync-client", daemon=True)
        self._thread.start()
        try:
            # grpc.aio wants its channel made inside the loop that will use it.
            self._client = self._run(_make_client(target, options))
        except BaseException:
            self._stop_loop()
            raise

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the loop thread; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._client.close())
        finally:
            self._stop_loop()

    @property
    def async_client(self) -> FlowrunClient:
        """The FlowrunClient underneath; await its methods only on this client's loop."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        # Only called for names SyncClient itself lacks: FlowrunClient's public methods.
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._client, name)
        if not callable(method):
            return method

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return self._run(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return call

    def __dir__(self) -> list[str]:
        public = [name for name in dir(FlowrunClient) if not name.startswith("_")]
        return sorted({*super().__dir__(), *public})

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the client's loop and wait for its result in this thread."""
        if self._closed and self._loop.is_closed():
            coroutine.close()
            raise RuntimeError("this SyncClient is closed")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a SyncClient cannot be called from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): cancel the call on the loop, and
            # wait for it to unwind so its RPC is cancelled before we go on.
            if not future.done():
                future.cancel()
                with contextlib.suppress(BaseException):  # CancelledError, a timeout, its error
                    future.result(timeout=5)
            raise

    def _iterate(self, pages: AsyncIterator[_T]) -> Iterator[_T]:
        """A plain iterator over an async one: each next() is one step on the loop."""
        try:
            while True:
                try:
                    item = self._run(_anext(pages))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            aclose: Callable[[], Coroutine[Any, Any, None]] | None = getattr(pages, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._run(aclose())

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _make_client(target: str | None, options: dict[str, Any]) -> FlowrunClient:
    return FlowrunClient(target, **options)


async def _anext(iterator: AsyncIterator[_T]) -> _T:
    return await iterator.__anext__()
