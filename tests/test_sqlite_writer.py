"""SQLite write units of work in one hand-off (server/db/sqlite_writer.py): SetState runs
in the writer thread; a unit of work that would wait on the event loop fails and writes
nothing; a caller that goes away leaves its unit of work to commit and the write gate
held until then; commits made there wake watch streams at once."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from sqlalchemy import select

from flowrun.server import call_scope, clock, errors
from flowrun.server.call_scope import CallScope
from flowrun.server.db.tables import flow
from flowrun.server.domain.flows import FlowCreate
from flowrun.server.orchestration import interceptor
from flowrun.server.orchestration.transitions import set_state
from flowrun.v1 import filters_pb2
from flowrun.v1 import flow_run_service_pb2 as pb
from tests.helpers.watching import make_flow, make_run, propose, start_watch


@pytest.fixture(autouse=True)
def sqlite_only(backend):
    if backend != "sqlite":
        pytest.skip("PostgreSQL's write units of work run on the event loop")


async def names_of_flows(database, *names: str) -> list[str]:
    async with database.unit_of_work(write=False) as uow:
        rows = await uow.connection.execute(select(flow.c.name).where(flow.c.name.in_(names)))
        return sorted(row.name for row in rows)


async def add_flow(repos, name: str):
    return await repos.flows.get_or_create(FlowCreate(name=name), clock.now())


async def test_set_state_runs_in_the_writer_thread(app, flows, runs, unique, monkeypatch):
    threads = []

    async def spy(repos, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return await set_state(repos, *args, **kwargs)

    monkeypatch.setattr(interceptor, "set_state", spy)
    run = await make_run(runs, await make_flow(flows, unique))
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    assert len(threads) == 1 and threads[0].startswith("sqlite-writer")


async def test_a_unit_of_work_that_waits_on_the_event_loop_fails_and_writes_nothing(app, unique):
    async def waits(repos):
        await add_flow(repos, f"never-{unique}")
        await asyncio.sleep(0)  # suspends: not allowed in the writer thread

    with pytest.raises(RuntimeError, match="waited for the event loop"):
        await app.database.write(waits)
    assert await names_of_flows(app.database, f"never-{unique}") == []


async def test_a_cancelled_caller_leaves_its_unit_of_work_to_commit_first(app, unique):
    entered, release = threading.Event(), threading.Event()

    async def slow(repos):
        await add_flow(repos, f"first-{unique}")
        entered.set()
        release.wait(10)  # blocks the writer thread, not the event loop

    caller = asyncio.ensure_future(app.database.write(slow))
    await asyncio.to_thread(entered.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert app.database.sqlite_write_gate.locked()  # held until the thread is done
    second = asyncio.ensure_future(app.database.write(lambda repos: add_flow(repos, f"second-{unique}")))
    await asyncio.sleep(0.05)
    assert not second.done()
    release.set()
    await asyncio.wait_for(second, 10)
    assert await names_of_flows(app.database, f"first-{unique}", f"second-{unique}") == [
        f"first-{unique}",
        f"second-{unique}",
    ]


async def test_a_commit_in_the_writer_thread_wakes_watch_streams_at_once(served, unique):
    """With polling and heartbeats an hour apart, only the commit hook can deliver."""
    app, flows, runs = await served(watch_poll_seconds=3600, watch_heartbeat_seconds=3600)
    flow_id = await make_flow(flows, unique)
    only = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only, start=pb.WATCH_START_SNAPSHOT)
    await watch.first_progress()
    while app.hub.streams < 1:  # joined the shared reader: only a wake-up makes it read again
        await asyncio.sleep(0.01)
    run = await make_run(runs, flow_id)
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    await watch.until(lambda w: len(w.events) >= 2, timeout=10)
    watch.cancel()


async def test_a_failed_unit_of_work_whose_caller_was_cancelled_is_logged_once(app, unique, caplog):
    """Its error has nobody to take it: the writer takes it and logs it once, and asyncio
    never reports "Future exception was never retrieved" when the future is collected."""
    caplog.set_level(logging.INFO, logger="flowrun.db")
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    entered, release = threading.Event(), threading.Event()

    async def fails(repos):
        await add_flow(repos, f"never-{unique}")
        entered.set()
        release.wait(10)
        raise errors.Conflict(f"failed-{unique}")

    try:
        caller = asyncio.ensure_future(app.database.write(fails))
        await asyncio.to_thread(entered.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        async with asyncio.timeout(10):
            async with app.database.sqlite_write_gate:  # free once the writer thread is done
                pass
        del caller
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not [message for message in reported if "never retrieved" in message], reported
    lines = [record for record in caplog.records if f"failed-{unique}" in record.getMessage()]
    assert len(lines) == 1 and lines[0].name == "flowrun.db", lines
    assert await names_of_flows(app.database, f"never-{unique}") == []


async def test_a_failed_unit_of_work_is_reported_to_its_waiting_caller_only(app, unique, caplog):
    caplog.set_level(logging.INFO, logger="flowrun.db")

    async def fails(repos):
        raise errors.Conflict(f"failed-{unique}")

    with pytest.raises(errors.Conflict, match=f"failed-{unique}"):
        await app.database.write(fails)
    assert not [record for record in caplog.records if f"failed-{unique}" in record.getMessage()]


async def test_a_unit_of_work_whose_call_was_abandoned_rolls_back(app, unique):
    """As every unit of work does (server/cancellation.py): nothing the client was not
    told about is committed. Here the client goes away while the writer thread runs it."""
    scope = CallScope()

    async def abandoned_mid_way(repos):
        await add_flow(repos, f"abandoned-{unique}")
        scope.abandoned = True

    async def call():
        call_scope.enter(scope)  # in this task's own context
        return await app.database.write(abandoned_mid_way)

    with pytest.raises(asyncio.CancelledError, match="rolled back"):
        await asyncio.ensure_future(call())
    assert await names_of_flows(app.database, f"abandoned-{unique}") == []
    assert not app.database.sqlite_write_gate.locked()
