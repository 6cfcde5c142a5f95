"""Retention prunes in bounded batches, each its own transaction that moves the horizon
forward with what it deleted; a stream whose unread events go between its checks still
ends with OUT_OF_RANGE, never with a silent gap."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from sqlalchemy import select

from flowrun.server.db.tables import flow_run_event
from flowrun.server.repositories.flow_run_events import FlowRunEventRepository
from flowrun.server.watch.retention import prune_events
from flowrun.v1 import flow_run_service_pb2 as pb
from tests.helpers.watching import cursor_before_the_next_change, make_flow, make_run


async def test_expired_events_go_in_batches_each_advancing_the_horizon(served, unique, move_clock, monkeypatch):
    """Robust to other servers of the session pruning the same database meanwhile: what
    is checked is what this pass's own transactions did."""
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    old = [(await make_run(runs, flow_id)).id for _ in range(7)]
    move_clock(app.settings.event_retention + timedelta(minutes=1))
    fresh = await make_run(runs, flow_id)  # its event stays
    database = app.database
    real_unit_of_work, real_prune = database.unit_of_work, FlowRunEventRepository.prune
    writes = 0
    batches: list[tuple[int, int]] = []  # (deleted, horizon after) in each batch's transaction

    def counting_unit_of_work(*, write: bool, **options):
        nonlocal writes
        writes += write
        return real_unit_of_work(write=write, **options)

    async def recorded_prune(self, through: int, limit: int) -> int:
        deleted = await real_prune(self, through, limit)
        if getattr(self.connection, "engine", None) is database.engine:  # not another server's pass
            batches.append((deleted, await self.pruned_through()))
        return deleted

    monkeypatch.setattr(database, "unit_of_work", counting_unit_of_work)
    monkeypatch.setattr(FlowRunEventRepository, "prune", recorded_prune)
    deleted = await prune_events(database, app.settings, batch_size=3)
    monkeypatch.undo()

    assert len(batches) >= 3 and writes == len(batches)  # several batches, each its own transaction
    assert all(count <= 3 for count, _ in batches)
    assert deleted == sum(count for count, _ in batches)
    horizons = [horizon for _, horizon in batches]
    assert horizons == sorted(horizons) and horizons[0] > 0
    async with real_unit_of_work(write=False) as uow:
        survivors = await uow.connection.execute(
            select(flow_run_event.c.flow_run_id).where(flow_run_event.c.flow_run_id.in_([*old, fresh.id]))
        )
        assert survivors.scalars().all() == [fresh.id]


async def test_events_pruned_between_a_streams_checks_end_it_out_of_range(
    served, backend, unique, move_clock, monkeypatch
):
    """Retention commits after the stream checked the horizon and before it read (each
    statement has its own snapshot on PostgreSQL): the stream must still see the gap."""
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
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
