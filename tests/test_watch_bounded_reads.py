"""Every read of the outbox is bounded by the batch size, also when one huge transaction
that a reader saw in progress commits (deleting a flow with many runs writes one event
per run in one transaction): its events are paged through by sequence, every one
delivered once, in order, and every position names no more than what was delivered."""

from __future__ import annotations

import asyncio

import pytest

from flowrun.server import clock
from flowrun.server.domain.events import EventKind
from flowrun.server.repositories.flow_run_events import Batch, Position, includes
from flowrun.v1 import filters_pb2
from tests.helpers.watching import make_flow, make_run, start_watch

BIG = 23  # events of the one big transaction
LIMIT = 5  # the batch size: the big transaction is several reads' worth


async def held_big_transaction(app, flow_id: str, holding: asyncio.Event, release: asyncio.Event) -> None:
    """One transaction appends an UPDATED event for each run of the flow, then stays open
    until `release`."""
    async with app.database.unit_of_work(write=True) as uow:
        runs = await uow.repos.flow_runs.of_flows([flow_id])
        await uow.repos.flow_run_events.append_many(EventKind.UPDATED, runs, clock.now())
        holding.set()
        await release.wait()


async def read_until_caught_up(app, position: Position, limit: int) -> tuple[list[Batch], Position]:
    batches = []
    while True:
        async with app.database.unit_of_work(write=False) as uow:
            batch = await uow.repos.flow_run_events.read(position, limit)
        batches.append(batch)
        position = batch.end
        if not batch.full:
            return batches, position


async def test_a_huge_transaction_seen_in_progress_is_read_in_bounded_pages(served, backend, unique):
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: no transaction is ever pending")
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    for _ in range(BIG):
        await make_run(runs, flow_id)
    holding, release = asyncio.Event(), asyncio.Event()
    writer = asyncio.ensure_future(held_big_transaction(app, flow_id, holding, release))
    await holding.wait()
    later = (await make_run(runs, flow_id)).id  # commits after the big one drew its sequence values
    async with app.database.unit_of_work(write=False) as uow:
        start = await uow.repos.flow_run_events.head()  # the big transaction is in progress here
    release.set()
    await writer
    still_open, release_other = asyncio.Event(), asyncio.Event()
    other = asyncio.ensure_future(held_big_transaction(app, flow_id, still_open, release_other))
    await still_open.wait()  # in progress during every read below

    batches, end = await read_until_caught_up(app, start, LIMIT)
    release_other.set()
    await other

    assert all(len(batch.events) <= LIMIT for batch in batches)
    delivered = [event for batch in batches for event, _ in batch.events]
    assert [e.kind for e in delivered] == [EventKind.UPDATED] * BIG  # the big one's, once each; not `later`
    assert [e.sequence for e in delivered] == sorted({e.sequence for e in delivered})
    assert later not in {e.run.id for e in delivered}
    # Each event's cursor and each batch's end name nothing that was not delivered before it.
    sent_so_far = []
    for batch in batches:
        for event, after in batch.events:
            sent_so_far.append(event)
            _names_at_most(after, sent_so_far, delivered)
        _names_at_most(batch.end, sent_so_far, delivered)
        assert all(includes(batch.end, e.sequence, e.xid) for e in sent_so_far)  # ... and all of that
        async with app.database.unit_of_work(write=False) as uow:  # a stream joining the tail there reads these
            between = await uow.repos.flow_run_events.read_between(start, batch.end, 0, 10 * BIG)
        assert [e.sequence for e in between] == [e.sequence for e in sent_so_far]
    # The end names exactly what was delivered: the still-open transaction's events come next.
    rest, _ = await read_until_caught_up(app, end, LIMIT)
    after_end = [event for batch in rest for event, _ in batch.events]
    assert len(after_end) == BIG + 1  # `other`'s UPDATED events, and nothing sent already
    assert not {e.sequence for e in after_end} & {e.sequence for e in delivered}


def _names_at_most(position: Position, sent, every) -> None:
    sent_sequences = {e.sequence for e in sent}
    for event in every:
        if event.sequence not in sent_sequences:
            assert not includes(position, event.sequence, event.xid), (position, event.sequence)


async def test_a_live_stream_gets_a_huge_late_transaction_in_bounded_batches(served, backend, unique):
    """Through the shared reader (the tail) and a stream resumed from a cursor issued while
    the transaction was open: every batch message holds at most the batch size."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: no transaction is ever pending")
    app, flows, runs = await served(watch_batch_size=LIMIT)
    flow_id = await make_flow(flows, unique)
    ids = [(await make_run(runs, flow_id)).id for _ in range(BIG)]
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow, batch=True)
    await watch.first_progress()
    holding, release = asyncio.Event(), asyncio.Event()
    writer = asyncio.ensure_future(held_big_transaction(app, flow_id, holding, release))
    await holding.wait()
    later = (await make_run(runs, flow_id)).id
    await watch.until(lambda w: w.batched)
    cursor_while_open = watch.batched[-1].cursor
    release.set()
    await writer
    await watch.until(lambda w: len(w.batched) >= BIG + 1)
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor_while_open, batch=True)
    await resumed.until(lambda w: len(w.batched) >= BIG)
    await asyncio.sleep(0.3)  # room for a duplicate to show
    watch.cancel()
    resumed.cancel()
    for stream in (watch, resumed):
        assert all(len(m.events.events) <= LIMIT for m in stream.messages if m.WhichOneof("message") == "events")
    live = [e.flow_run.id for e in watch.batched]
    assert live[0] == later
    assert sorted(live[1:]) == sorted(ids)
    assert sorted(e.flow_run.id for e in resumed.batched) == sorted(ids)
