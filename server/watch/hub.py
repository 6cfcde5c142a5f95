"""The per-process wake-up of watch streams: when events commit, this process's shared
reader (server/watch/tail.py) is woken and reads what is new (notifications are only
hints; the events are always read from the table).

Only while a stream is attached: the shared reader subscribes when the first stream of
the process attaches and unsubscribes when the last one leaves, and the hub listens (or
polls) only while someone is subscribed. A process serving no watch stream holds no
LISTEN connection, receives no NOTIFY and makes no poll. Nothing is lost by starting
late: the reader's first read comes after it subscribed, and once the LISTEN is in
place the hub wakes it to read again (whatever committed in between).

PostgreSQL: one connection per process LISTENs on the events channel; every event
NOTIFYs in its own transaction, which PostgreSQL delivers at commit to every replica.
If that connection dies, the hub reconnects with backoff and wakes its readers
(notifications may have been missed meanwhile). The connection is one of the pool's
while the process has streams: it counts in FLOWRUN_DB_POOL_SIZE + FLOWRUN_DB_MAX_OVERFLOW
and so in FLOWRUN_DB_MAX_CONNECTIONS, and a pool of N then serves N - 1 requests at once.
When the last stream leaves, the hub UNLISTENs and gives the connection back to the pool.

SQLite: a commit hook in this process wakes the reader at once (for the life of the
process: a call per commit, no I/O), and while streams are attached the hub reads the
highest event sequence every FLOWRUN_WATCH_POLL_SECONDS (1 s; one small query per
process, not per stream) to see what other processes wrote to the same file: that is
the latency bound for changes made through another process. Behind pgbouncer
(FLOWRUN_DB_PGBOUNCER), where a LISTEN cannot keep its server connection, and with a
pool of a single connection, PostgreSQL is polled the same way.

Nothing polls the table in a loop: the reader waits for its wake-up between reads, and
reads once more at each heartbeat (a safety net for a lost notification).

Shutdown: the hub also knows every watch call in progress (`track`), by the task grpc.aio
runs it in, which ends only once the call's final status has been handed to the
transport. `close(grace)` tells the streams to end (each ends with ShuttingDown:
UNAVAILABLE with its cursor) and waits until every one of those tasks has ended, at most
`grace` seconds: the server stops (and gRPC cancels what is left) only after that, so
no stream is cut by gRPC's cancellation, which carries no cursor (CANCELLED, or with
grpcio 1.85 UNAVAILABLE "Cancelling all calls"), while it could still say where to
resume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.repositories.flow_run_events import CHANNEL, listen_for_commits

log = logging.getLogger("flowrun.watch")

RECONNECT_MAX_SECONDS = 5.0


class Wakeup:
    """One stream's flag: set by the hub, cleared by the stream before each read (so a
    commit during the read sets it again and nothing is lost)."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def set(self) -> None:
        self.flag.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flag.wait(), timeout)

    def clear(self) -> None:
        self.flag.clear()


class EventHub:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._streams: set[Wakeup] = set()
        self._started = False
        self._task: asyncio.Task[None] | None = None  # the listener (or poller), while wanted
        self._stop = asyncio.Event()  # asks the current listener to stop (a new one per listener)
        self._ending: set[asyncio.Task[None]] = set()  # listeners asked to stop, not ended yet
        self._stop_hook: Any = None
        self.closing = False
        self.poll_seconds = settings.watch_poll_seconds
        # Behind pgbouncer's transaction pooling a LISTEN would stay on a server connection
        # other clients use, and a pool of one connection has none to spare for it: the
        # hub polls as on SQLite instead (FLOWRUN_WATCH_POLL_SECONDS).
        self._polls = (
            database.dialect.is_sqlite or settings.db_pgbouncer or settings.db_pool_size + settings.db_max_overflow < 2
        )
        # Set while the LISTEN is in place (PostgreSQL) or the poller runs: only while a
        # stream is attached.
        self.listening = asyncio.Event()
        self.wakeups = 0  # NOTIFYs received and polls made (tests: none without streams)
        self.tail: Any = None  # the shared reader (server/watch/tail.py) sets itself here
        self._closers: list[Callable[[], Awaitable[None]]] = []
        # The tasks of the watch calls in progress (see `track`).
        self._calls: set[asyncio.Task[Any]] = set()

    @property
    def streams(self) -> int:
        """Live watch streams in this process (those attached to the shared reader)."""
        return self.tail.streams if self.tail is not None else 0

    @property
    def calls(self) -> int:
        """Watch calls in progress in this process, attached to the reader or not (still
        catching up, sending a snapshot, or ending)."""
        return len(self._calls)

    def track(self, task: asyncio.Task[Any] | None) -> None:
        """Counts a watch call until `task`, the one it runs in, ends: grpc.aio runs a
        call's handler, interceptors and final status in one task (its
        ServicerContext.add_done_callback fires at that task's end), so its end means the
        client was sent the status."""
        if task is not None and not task.done():
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """`closer` runs when the hub closes (the shared reader ends its streams)."""
        self._closers.append(closer)

    def subscribe(self) -> Wakeup:
        wakeup = Wakeup()
        self._streams.add(wakeup)
        self._follow_demand()
        return wakeup

    def unsubscribe(self, wakeup: Wakeup) -> None:
        self._streams.discard(wakeup)
        self._follow_demand()

    def wake_all(self) -> None:
        for wakeup in self._streams:
            wakeup.set()

    async def start(self) -> None:
        self._started = True
        if self._database.dialect.is_sqlite:
            self._stop_hook = self._listen_for_local_commits()
        self._follow_demand()

    def _follow_demand(self) -> None:
        """Starts the listener (or poller) when it is wanted (a subscriber, the hub
        started and not closing) and asks it to stop when it no longer is. A new one
        waits for the old ones to end, so the process never holds two LISTEN connections."""
        wanted = bool(self._streams) and self._started and not self.closing
        if wanted and self._task is None:
            self._stop = asyncio.Event()
            run = self._poll_forever if self._polls else self._listen_forever
            self._task = asyncio.create_task(self._after(list(self._ending), run, self._stop), name="watch-listener")
        elif not wanted and self._task is not None:
            self._stop.set()
            self.listening.clear()
            self._ending.add(self._task)
            self._task.add_done_callback(self._ending.discard)
            self._task = None

    @staticmethod
    async def _after(
        ending: list[asyncio.Task[None]], run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        if ending:
            await asyncio.wait(ending)
        await run(stop)

    def _listen_for_local_commits(self) -> Callable[[], None]:
        """SQLite: wakes the streams at each commit of this process that wrote events on
        the event loop's engine, and after each transaction the SQLite writer thread
        committed (server/db/sqlite_writer.py; from its thread, so through the loop).
        Returns what stops it."""
        loop = asyncio.get_running_loop()
        stop_loop_engine = listen_for_commits(self._database.engine.sync_engine, self.wake_all)
        writer = self._database.sqlite_writer

        def wake_from_writer() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self.wake_all)

        if writer is not None:
            writer.after_commit.append(wake_from_writer)

        def stop() -> None:
            stop_loop_engine()
            if writer is not None and wake_from_writer in writer.after_commit:
                writer.after_commit.remove(wake_from_writer)

        return stop

    async def close(self, grace: float = 0.0) -> None:
        """Shutdown: streams end (UNAVAILABLE with their cursor) and the listener goes.
        Returns once every watch call has ended, its status sent (a call that begins from
        now on ends at once), or once `grace` seconds have passed, whichever is first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.closing = True
        self.wake_all()
        for closer in self._closers:
            await closer()
        while calls := [task for task in self._calls if not task.done()]:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("%d watch streams had not ended when the shutdown grace ran out", len(calls))
                break
            await asyncio.wait(calls, timeout=remaining)
        if self._stop_hook is not None:
            self._stop_hook()
            self._stop_hook = None
        self._follow_demand()
        for task in list(self._ending):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll_forever(self, stop: asyncio.Event) -> None:
        """SQLite: wakes the streams when another process appended events."""
        if not stop.is_set():
            self.listening.set()
        seen = None
        while not await _stopped(stop, self.poll_seconds):
            self.wakeups += 1
            try:
                async with self._database.unit_of_work(write=False) as uow:
                    head = (await uow.repos.flow_run_events.head()).after
            except Exception as exc:
                log.debug("watch poll failed: %r", exc)
                continue
            if head != seen:
                seen = head
                self.wake_all()

    async def _listen_forever(self, stop: asyncio.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                await self._listen_once(stop)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watch listener: %r; reconnecting in %.1f s", exc, delay)
            if stop.is_set():
                return
            self.listening.clear()
            self.wake_all()  # notifications may have been missed
            if await _stopped(stop, delay):
                return
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self, stop: asyncio.Event) -> None:
        """Holds one connection LISTENing until it dies or `stop` is set (returns), or
        the hub closes (cancelled). Stopped, it UNLISTENs and goes back to the pool; in
        every other case it is discarded (it may hold a LISTEN, or be dead)."""
        connection = await self._database.engine.connect()
        clean = False
        try:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            ended = asyncio.Event()
            stopping = asyncio.ensure_future(stop.wait())
            stopping.add_done_callback(lambda _task: ended.set())

            def lost(_connection: Any) -> None:
                ended.set()

            try:
                driver.add_termination_listener(lost)
                await driver.add_listener(CHANNEL, self._notified)
                if not stop.is_set():
                    self.listening.set()
                    self.wake_all()  # anything committed before the LISTEN took effect
                await ended.wait()
            finally:
                stopping.cancel()
            if stop.is_set() and not driver.is_closed():
                await driver.remove_listener(CHANNEL, self._notified)  # UNLISTEN
                driver.remove_termination_listener(lost)
                clean = True
        finally:
            if not clean:
                with contextlib.suppress(Exception):
                    await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    def _notified(self, _connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.wakeups += 1
        self.wake_all()


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Waits up to `seconds` for `stop`; whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
