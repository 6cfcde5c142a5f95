"""Retention prunes in bounded batches, each its own transaction that moves the horizon
forward with what it deleted; a stream whose unread events go between its checks still
ends with OUT_OF_RANGE, never with a silent gap."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import func, select

from flowrun.server.db.tables import flow_run_event
from flowrun.server.repositories.flow_run_events import FlowRunEventRepository
from flowrun.server.watch.retention import prune_events
from flowrun.v1 import filters_pb2
from flowrun.v1 import flow_run_service_pb2 as pb
from tests import test_watch_delivery
from tests.helpers.watching import make_flow, make_run, start_watch

served = test_watch_delivery.served  # the fixture: a server of the test's own


async def test_expired_events_go_in_batches_each_advancing_the_horizon(served, unique, move_clock, monkeypatch):
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    for _ in range(7):
        await make_run(runs, flow_id)
    move_clock(app.settings.event_retention + timedelta(minutes=1))
    fresh = await make_run(runs, flow_id)  # its event stays
    database = app.database
    real_unit_of_work = database.unit_of_work
    after_each_write: list[tuple[int, int]] = []  # (events left, horizon) after each committed write

    @contextlib.asynccontextmanager
    async def observed(*, write: bool, **options):
        async with real_unit_of_work(write=write, **options) as uow:
            yield uow
        if write:
            async with real_unit_of_work(write=False) as look:
                left = (await look.connection.execute(select(func.count()).select_from(flow_run_event))).scalar_one()
                after_each_write.append((left, await look.repos.flow_run_events.pruned_through()))

    async with real_unit_of_work(write=False) as uow:
        before = (await uow.connection.execute(select(func.count()).select_from(flow_run_event))).scalar_one()
    monkeypatch.setattr(database, "unit_of_work", observed)
    deleted = await prune_events(database, app.settings, batch_size=3)
    monkeypatch.undo()

    assert deleted == before - 1 >= 7
    lefts = [before] + [left for left, _ in after_each_write]
    assert all(0 <= earlier - later <= 3 for earlier, later in zip(lefts, lefts[1:], strict=False))
    assert len(after_each_write) >= 3  # several transactions
    horizons = [horizon for _, horizon in after_each_write if horizon]
    assert horizons == sorted(horizons)
    async with real_unit_of_work(write=False) as uow:
        survivors = (await uow.connection.execute(select(flow_run_event.c.flow_run_id))).scalars().all()
    assert survivors == [fresh.id]


async def test_events_pruned_between_a_streams_checks_end_it_out_of_range(
    served, backend, unique, move_clock, monkeypatch
):
    """Retention commits after the stream checked the horizon and before it read (each
    statement has its own snapshot on PostgreSQL): the stream must still see the gap."""
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    await make_run(runs, flow_id)
    await watch.until(lambda w: w.events)
    watch.cancel()
    cursor = watch.events[0].cursor
    for _ in range(3):
        await make_run(runs, flow_id)  # unread by a stream resumed from `cursor`
    move_clock(app.settings.event_retention + timedelta(minutes=1))
    await make_run(runs, flow_id)  # survives
    real_read = FlowRunEventRepository.read
    pruned = []

    async def read_after_a_prune(self, position, limit):
        if not pruned and position.after > 0:
            pruned.append(await prune_events(app.database, app.settings))
        return await real_read(self, position, limit)

    monkeypatch.setattr(FlowRunEventRepository, "read", read_after_a_prune)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in runs.WatchFlowRuns(pb.WatchFlowRunsRequest(cursor=cursor), timeout=10):
            assert message.WhichOneof("message") != "event", "an event after a gap"
    assert pruned and pruned[0] >= 3
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
