"""The shared reader's lifecycle: when its last stream leaves it stops, and a stream that
comes next starts another only once the old one has ended (never two tails reading, and
writing the shared position, at once)."""

from __future__ import annotations

import asyncio
import contextlib

from flowrun.server.repositories.flow_run_events import FlowRunEventRepository, Position
from flowrun.server.watch.tail import LiveStream

# How long the first tail, cancelled, lingers for a second one to show up: with the fix
# none can, so the test waits this long once (a bound on waiting for what must not happen).
LINGER_SECONDS = 0.5


def running_tails() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "watch-tail" and not task.done()]


async def test_a_tail_started_after_the_last_stream_left_waits_for_the_old_one_to_end(served, monkeypatch):
    """The old tail is cancelled inside its read and takes a while to end (as a unit of
    work's shielded rollback does); the next stream's tail must not read meanwhile."""
    app, _flows, _runs = await served()
    tail = app.hub.tail
    real_read = FlowRunEventRepository.read
    tails_at_each_read: list[int] = []
    first_reading, second_reading = asyncio.Event(), asyncio.Event()

    async def lingering_read(self, position, limit):
        tails_at_each_read.append(len(running_tails()))
        if len(tails_at_each_read) > 1:
            second_reading.set()
            return await real_read(self, position, limit)
        first_reading.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LINGER_SECONDS):
                    await second_reading.wait()
            raise
        raise AssertionError("unreachable")

    monkeypatch.setattr(FlowRunEventRepository, "read", lingering_read)
    first = LiveStream(lambda _event: True, Position(), limit=10)
    await tail.attach(first)
    await first_reading.wait()
    tail.detach(first)  # the tail is told to stop, and has not yet
    second = LiveStream(lambda _event: True, Position(), limit=10)
    await tail.attach(second)
    await second_reading.wait()
    tail.detach(second)
    await app.hub.close()
    assert tails_at_each_read[:2] == [1, 1]
    assert running_tails() == []  # closing awaits the last one too
