"""The shared reader: one per process follows the outbox from the live end and hands
every event to each live stream of the process. One query per wake-up, however many
streams are open; each event is decoded once.

Each live stream has a bounded buffer. The tail never waits for a stream: an event
that finds a stream's buffer full marks that stream too slow (it then ends with
RESOURCE_EXHAUSTED and the cursor of the last event its client got), so a slow client
never holds up the tail, the writers or the other streams.

The tail runs while at least one stream is attached. Its first position is the live
end (the repository's head); a stream joins at the tail's current position and reads
the few events between its own position and that one itself (server/watch/stream.py).
If the tail's read fails (the database went away), every attached stream fails with
that error (UNAVAILABLE: their clients resume from their cursors) and the tail stops;
the next stream starts it afresh.

When the last stream leaves, the tail is cancelled; its task may take a moment to end
(a unit of work's rollback is shielded from cancellation). The next stream to attach
waits for that end before it starts another, so two tails never read, nor write the
shared position, at once."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.events import FlowRunEvent
from flowrun.server.repositories.flow_run_events import Position, includes
from flowrun.server.watch.hub import EventHub

log = logging.getLogger("flowrun.watch")

#: How long the tail lets events accumulate after a wake-up before it reads them.
COALESCE_SECONDS = 0.01


@dataclass(frozen=True)
class Sent:
    """What a stream sends next: an event (with the position after it), or progress
    (a heartbeat: the position everything before which was sent or did not match)."""

    position: Position
    event: FlowRunEvent | None = None


class LiveStream:
    """A stream's side of the tail: the events it has yet to send, at most `limit`."""

    def __init__(self, match: Callable[[FlowRunEvent], bool], sent: Position, limit: int) -> None:
        self.match = match
        # The filter object behind `match` (a bound method's instance): equal filters are
        # one object (the servicer interns them), so their streams share one evaluation.
        self.key = id(getattr(match, "__self__", match))
        self.sent = sent  # what the stream had sent when it attached: offered events in it are skipped
        self.limit = limit
        self.items: deque[Sent] = deque()
        self.ready = asyncio.Event()  # set when there is something to take, or the stream must end
        self.too_slow = False
        self.failure: BaseException | None = None

    def offer(self, event: FlowRunEvent, after: Position, matched: dict[int, bool]) -> None:
        """`matched`: this event's filter results so far, by filter (one per event, shared
        by the streams: streams with the same filter object evaluate it once)."""
        if self.too_slow or includes(self.sent, event.sequence, event.xid):
            return
        key = self.key
        hit = matched.get(key)
        if hit is None:
            hit = matched[key] = self.match(event)
        if not hit:
            return
        if len(self.items) >= self.limit:
            self.too_slow = True
        else:
            self.items.append(Sent(after, event))
        self.ready.set()

    def fail(self, error: BaseException) -> None:
        self.failure = error
        self.ready.set()


class Tail:
    def __init__(self, database: Database, hub: EventHub, settings: Settings) -> None:
        self._database = database
        self._hub = hub
        self._settings = settings
        self._streams: set[LiveStream] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None  # cancelled, perhaps not ended yet
        self._starting = asyncio.Lock()
        self.position: Position | None = None  # everything before it was offered to the attached streams
        hub.tail = self
        hub.on_close(self.close)

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def attach(self, stream: LiveStream) -> Position:
        """From now on every event after the returned position is offered to `stream`."""
        async with self._starting:
            if self._task is None or self._task.done():
                await self._old_tail_ended()
                async with self._database.unit_of_work(write=False) as uow:
                    self.position = await uow.repos.flow_run_events.head()
                self._task = asyncio.create_task(self._run(), name="watch-tail")
            assert self.position is not None
            self._streams.add(stream)
            return self.position

    def detach(self, stream: LiveStream) -> None:
        self._streams.discard(stream)
        if not self._streams and self._task is not None:
            self._task.cancel()
            self._stopping, self._task = self._task, None

    async def _old_tail_ended(self) -> None:
        """Waits for the tail cancelled by the last detach to end (its outcome is its own:
        only a cancellation of this caller propagates, and leaves it for the next caller)."""
        if self._stopping is not None:
            await asyncio.wait([self._stopping])
            self._stopping = None

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.ready.set()  # they see the hub closing
        if self._task is not None:
            self._task.cancel()
            self._stopping, self._task = self._task, None
        await self._old_tail_ended()

    async def _run(self) -> None:
        wakeup = self._hub.subscribe()
        settings = self._settings
        try:
            while not self._hub.closing:
                wakeup.clear()  # before the read: a commit during it wakes us again
                assert self.position is not None
                async with self._database.unit_of_work(write=False) as uow:
                    batch = await uow.repos.flow_run_events.read(self.position, settings.watch_batch_size)
                streams = list(self._streams)
                for event, after in batch.events:
                    matched: dict[int, bool] = {}
                    for stream in streams:
                        stream.offer(event, after, matched)
                    self.position = after
                self.position = batch.end
                if not batch.full:
                    await wakeup.wait(settings.watch_heartbeat_seconds)
                    # Under load commits come in bursts: gather them for a moment, so one
                    # read (and one message per batching stream) carries several.
                    await asyncio.sleep(COALESCE_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("watch tail: %r; ending the streams attached to it", exc)
            for stream in list(self._streams):
                stream.fail(exc)
            self._streams.clear()
        finally:
            self._hub.unsubscribe(wakeup)
