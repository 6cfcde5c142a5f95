"""One watch stream: a reader task that follows the outbox from a position into a
bounded buffer, and the generator that hands the buffer to the client, with heartbeats
when there is nothing to send.

The reader never holds a transaction while it waits, and reads only when woken (or at
a heartbeat). A client slower than the events fills the buffer; the reader then waits
for room, and if the buffer stays full for FLOWRUN_WATCH_STALL_SECONDS it gives up: the
client's next read ends the stream with RESOURCE_EXHAUSTED and the cursor of the last
event it was sent, so a slow client costs the server one bounded buffer and never
blocks writers or other streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from server import errors
from server.config import Settings
from server.db.unit_of_work import Database
from server.domain.events import FlowRunEvent
from server.repositories.flow_run_events import Position
from server.watch.hub import EventHub


@dataclass(frozen=True)
class Sent:
    """What the stream sends next: an event (with the position after it), or progress
    (a heartbeat: the position everything before which was sent or did not match)."""

    position: Position
    event: FlowRunEvent | None = None


class _Reader:
    def __init__(
        self,
        database: Database,
        hub: EventHub,
        settings: Settings,
        start: Position,
        match: Callable[[FlowRunEvent], bool],
    ) -> None:
        self.database = database
        self.hub = hub
        self.settings = settings
        self.match = match
        self.buffer: asyncio.Queue[Sent] = asyncio.Queue(maxsize=settings.watch_buffer_events)
        self.seen = start  # every matching event before it is in the buffer or was sent
        self.too_slow = False

    async def run(self) -> None:
        wakeup = self.hub.subscribe()
        settings = self.settings
        position = self.seen
        try:
            while not self.hub.closing:
                wakeup.clear()  # before the read: a commit during it wakes us again
                async with self.database.unit_of_work(write=False) as uow:
                    batch = await uow.repos.flow_run_events.read(position, settings.watch_batch_size)
                for event, after in batch.events:
                    if self.match(event) and not await self._put(Sent(after, event)):
                        return
                    position = self.seen = after
                position = self.seen = batch.end
                if not batch.full:
                    await wakeup.wait(settings.watch_heartbeat_seconds)
        finally:
            self.hub.unsubscribe(wakeup)

    async def _put(self, sent: Sent) -> bool:
        try:
            await asyncio.wait_for(self.buffer.put(sent), self.settings.watch_stall_seconds)
        except TimeoutError:
            self.too_slow = True
            return False
        return True


async def follow(
    database: Database,
    hub: EventHub,
    settings: Settings,
    start: Position,
    match: Callable[[FlowRunEvent], bool],
    encode: Callable[[Position], str],
) -> AsyncIterator[Sent]:
    """The events after `start` that `match`, as they commit, with progress at every
    heartbeat; forever, until the caller stops iterating (cancellation included), the
    client falls behind (ResourceExhausted), the server shuts down (ShuttingDown) or
    the database fails (its error)."""
    reader = _Reader(database, hub, settings, start, match)
    task = asyncio.create_task(reader.run(), name="watch-reader")
    sent_through = start
    getting: asyncio.Future[Sent] | None = None
    try:
        while True:
            if reader.buffer.empty():
                if task.done():
                    task.result()  # the database's error, if any
                    if reader.too_slow:
                        raise _too_slow(encode(sent_through))
                    raise _shutting_down(encode(reader.seen))
                getting = asyncio.ensure_future(reader.buffer.get())
                done, _ = await asyncio.wait(
                    {getting, task}, timeout=settings.watch_heartbeat_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if getting not in done:
                    getting.cancel()
                    if not done:  # idle: a heartbeat
                        yield Sent(reader.seen)
                    continue
                sent = getting.result()
            else:
                sent = reader.buffer.get_nowait()
            yield sent
            sent_through = sent.position
            if reader.too_slow:
                raise _too_slow(encode(sent_through))
            if hub.closing:
                raise _shutting_down(encode(sent_through))
    finally:  # the client went away, or the stream ended: nothing of it outlives it
        if getting is not None:
            getting.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _too_slow(cursor: str) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        "The watch stream fell too far behind (its client reads slower than events arrive); "
        "resume from the cursor in the error details",
        metadata={"cursor": cursor},
    )


def _shutting_down(cursor: str) -> errors.ShuttingDown:
    return errors.ShuttingDown(
        "The server is shutting down; resume the watch from the cursor in the error details",
        metadata={"cursor": cursor},
    )
