"""Deleting a flow with many runs: every run's DELETED event, written in the delete's one
transaction by one statement, each carrying the run as it was when it went (also when a
state change of it was committing meanwhile)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select

from flowrun.server import clock
from flowrun.server.db.tables import flow_run_event
from flowrun.server.domain.events import EventKind
from flowrun.server.repositories.flow_run_events import FlowRunEventRepository
from flowrun.v1 import filters_pb2, flow_run_event_pb2, flow_service_pb2
from tests.helpers.watching import make_flow, make_run, start_watch

K = flow_run_event_pb2.FlowRunEventKind
RUNS = 40


class CountingDriver:
    """An asyncpg connection that counts the statements sent through it."""

    def __init__(self, driver) -> None:
        self._driver = driver
        self.statements = 0

    def __getattr__(self, name: str):
        attribute = getattr(self._driver, name)
        if name not in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            return attribute

        async def counted(*args, **kwargs):
            self.statements += 1
            return await attribute(*args, **kwargs)

        return counted


async def test_events_of_many_runs_are_appended_in_one_statement(served, backend, unique):
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    for _ in range(5):
        await make_run(runs, flow_id)
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    async with app.database.unit_of_work(write=True) as uow:
        doomed = await uow.repos.flow_runs.of_flows([flow_id])
        base = uow.repos.flow_run_events
        driver = CountingDriver(base.driver) if base.driver is not None else None
        events = FlowRunEventRepository(base.connection, base.dialect, driver)  # type: ignore[arg-type]
        event.listen(app.database.engine.sync_engine, "before_cursor_execute", count)
        try:
            await events.append_many(EventKind.UPDATED, doomed, clock.now())
        finally:
            event.remove(app.database.engine.sync_engine, "before_cursor_execute", count)
        written = await uow.connection.execute(
            select(func.count()).where(flow_run_event.c.flow_run_id.in_([run.id for run in doomed]))
        )
        assert written.scalar_one() == 5 + 5  # CREATED and UPDATED of each run
    assert statements + (driver.statements if driver is not None else 0) == 1


async def test_deleting_a_flow_with_many_runs_sends_every_deleted_event_from_one_transaction(
    served,
    backend,
    unique,
):
    app, flows, runs = await served(watch_batch_size=7)
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    ids = {(await make_run(runs, flow_id)).id for _ in range(RUNS)}
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    await flows.DeleteFlow(flow_service_pb2.DeleteFlowRequest(flow_id=flow_id))
    await watch.until(lambda w: len(w.events) >= RUNS)
    await asyncio.sleep(0.3)  # room for a duplicate to show
    watch.cancel()
    assert sorted(e.flow_run.id for e in watch.events) == sorted(ids)
    assert {e.kind for e in watch.events} == {K.FLOW_RUN_EVENT_KIND_DELETED}
    if backend == "postgres":
        async with app.database.unit_of_work(write=False) as uow:
            writers = await uow.connection.execute(
                select(func.count(func.distinct(flow_run_event.c.xid))).where(
                    flow_run_event.c.kind == EventKind.DELETED.value, flow_run_event.c.flow_run_id.in_(sorted(ids))
                )
            )
        assert writers.scalar_one() == 1  # one writer, and known: an event without one could be skipped


async def test_a_deleted_event_carries_the_change_committed_while_the_delete_waited(served, backend, unique):
    """A change of a run holds the run's row lock when the flow's delete starts: the
    delete waits for it, and the run's DELETED event carries the changed run, not the
    one a read before the wait saw."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: no delete starts while a change is open")
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    run = await make_run(runs, flow_id)
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    holding, release = asyncio.Event(), asyncio.Event()

    async def held_change() -> None:
        async with app.database.unit_of_work(write=True) as uow:  # as SetState does: the run's row lock
            await uow.repos.flow_runs.update(run.id, {"name": "changed"}, clock.now())
            holding.set()
            await release.wait()

    changing = asyncio.ensure_future(held_change())
    await holding.wait()
    deleting = asyncio.ensure_future(flows.DeleteFlow(flow_service_pb2.DeleteFlowRequest(flow_id=flow_id)))
    await _until_a_backend_waits_for_a_lock(app)
    release.set()
    await changing
    await deleting
    await watch.until(lambda w: len(w.events) >= 2)
    watch.cancel()
    assert [(e.kind, e.flow_run.name) for e in watch.events] == [
        (K.FLOW_RUN_EVENT_KIND_UPDATED, "changed"),
        (K.FLOW_RUN_EVENT_KIND_DELETED, "changed"),
    ]


async def _until_a_backend_waits_for_a_lock(app) -> None:
    """Until a session of this database waits for a row lock (the delete, blocked)."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    async with asyncio.timeout(20):
        while True:
            async with app.database.unit_of_work(write=False) as uow:
                if (await uow.connection.exec_driver_sql(waiting)).scalar_one():
                    return
            await asyncio.sleep(0.02)
