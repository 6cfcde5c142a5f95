"""One watch stream: it catches up from its start position by reading the outbox
itself, then joins the process's shared reader (server/watch/tail.py) and sends what
that offers it, with heartbeats when there is nothing to send.

Catching up, the stream reads one batch at a time and sends it before reading the
next, so a slow client only slows itself. Once a read comes back short (it is near the
live end), the stream attaches to the tail at the tail's position T and reads, once,
the events between its own position and T (what the tail had already passed); from
then on the tail offers it every event after T, into a bounded buffer
(FLOWRUN_WATCH_BUFFER_EVENTS). A client that does not keep up fills the buffer and the
stream ends with RESOURCE_EXHAUSTED and the cursor of the last event the client got.

Cursors: after a caught-up event, the position after it; after an event read while
joining, the position the stream joined from (a resume from there may send those few
events again, never skips one); heartbeats carry the tail's position once the buffer
is empty. Every position that leaves as a cursor is `resumable` (a position part way
through a large committed transaction's events is kept only in the process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from flowrun.server import errors
from flowrun.server.config import Settings
from flowrun.server.db.dialect import is_transient
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.events import FlowRunEvent
from flowrun.server.repositories.flow_run_events import Position
from flowrun.server.watch.hub import EventHub
from flowrun.server.watch.tail import LiveStream, Sent, Tail

__all__ = ["Sent", "expired", "follow", "shutting_down"]


async def follow(
    database: Database,
    hub: EventHub,
    tail: Tail,
    settings: Settings,
    start: Position,
    match: Callable[[FlowRunEvent], bool],
    encode: Callable[[Position], str],
) -> AsyncGenerator[list[Sent]]:
    """The events after `start` that `match`, as they commit, with progress at every
    heartbeat; forever, until the caller stops iterating (cancellation included), the
    client falls behind (ResourceExhausted), the server shuts down (ShuttingDown) or
    the database fails (its error). Yields chunks: the events that are ready together
    (at most a read's worth), in order, or one progress item."""
    heartbeat = settings.watch_heartbeat_seconds
    most = settings.watch_batch_size
    position = start
    quiet_since = time.monotonic()
    # Catching up: read and send, batch after batch, until near the live end.
    while not hub.closing:
        async with _resumable_from(encode(position.resumable)), database.unit_of_work(write=False) as uow:
            batch = await uow.repos.flow_run_events.read(position, most)
            # After the read: retention deletes and moves the horizon in one transaction,
            # so events the read missed (each statement has its own snapshot on
            # PostgreSQL) are behind a horizon this later statement sees.
            if position.after < await uow.repos.flow_run_events.pruned_through():
                raise expired(settings)  # retention deleted events this stream has not read
        chunk = [Sent(after, event) for event, after in batch.events if match(event)]
        if chunk:
            yield chunk
            quiet_since = time.monotonic()
        position = batch.end
        if time.monotonic() - quiet_since >= heartbeat:
            yield [Sent(position.resumable)]
            quiet_since = time.monotonic()
        if not batch.full:
            break
    if hub.closing:
        raise shutting_down(encode(position.resumable))
    # Joining the tail: the events between `position` and the tail's, then the tail's.
    live = LiveStream(match, position, settings.watch_buffer_events)
    async with _resumable_from(encode(position.resumable)):  # attaching may read the head
        joined = await tail.attach(live)
    try:
        last = 0
        while True:
            if hub.closing:
                raise shutting_down(encode(position.resumable))
            async with _resumable_from(encode(position.resumable)), database.unit_of_work(write=False) as uow:
                between = await uow.repos.flow_run_events.read_between(position, joined, last, most)
            chunk = [Sent(position, event) for event in between if match(event)]
            if chunk:
                yield chunk
            if len(between) < most:
                break
            last = between[-1].sequence
        sent_through = joined.resumable
        while True:
            if live.failure is not None:  # the shared reader's read failed
                async with _resumable_from(encode(sent_through)):
                    raise live.failure
            if live.too_slow:
                raise _too_slow(encode(sent_through))
            if hub.closing:
                raise shutting_down(encode(sent_through))
            if live.items:
                chunk = [live.items.popleft() for _ in range(min(most, len(live.items)))]
                yield chunk
                sent_through = chunk[-1].position
                continue
            live.ready.clear()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for starts a task per
                # call, and every live stream waits here once per read of the tail.
                async with asyncio.timeout(heartbeat):
                    await live.ready.wait()
            except TimeoutError:
                if not live.items and tail.position is not None:
                    sent_through = tail.position.resumable  # every matching event before it was sent
                yield [Sent(sent_through)]
    finally:  # the client went away, or the stream ended: it leaves the tail
        tail.detach(live)


@contextlib.asynccontextmanager
async def _resumable_from(cursor: str) -> AsyncIterator[None]:
    """Around a read: a failure of the moment (a statement timeout, a lost connection, no
    pooled connection in time) ends the stream UNAVAILABLE with `cursor`, where every
    event before it was sent, so clients resume (the Python client does) instead of
    seeing a final DEADLINE_EXCEEDED; any other error stays as it is."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise errors.Interrupted(
                "The watch stream's read of the database failed for a moment; resume from the cursor in the error "
                "details",
                metadata={"cursor": cursor},
            ) from exc
        raise


def expired(settings: Settings) -> errors.OutOfRange:
    retention = int(settings.event_retention.total_seconds())
    return errors.OutOfRange(
        f"The cursor is older than the event retention ({retention} s): its events are gone. "
        "Read the runs again and watch from now.",
        metadata={"retention_seconds": str(retention)},
    )


def _too_slow(cursor: str) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        "The watch stream fell too far behind (its client reads slower than events arrive); "
        "resume from the cursor in the error details",
        metadata={"cursor": cursor},
    )


def shutting_down(cursor: str | None) -> errors.ShuttingDown:
    """The error a stream ends with when the server stops: resume from `cursor`. None: the
    stream was still sending its snapshot, which no cursor resumes (open it again as it
    was first opened, snapshot included)."""
    if cursor is None:
        return errors.ShuttingDown(
            "The server is shutting down before the snapshot was complete; open the watch again, snapshot included"
        )
    return errors.ShuttingDown(
        "The server is shutting down; resume the watch from the cursor in the error details",
        metadata={"cursor": cursor},
    )
