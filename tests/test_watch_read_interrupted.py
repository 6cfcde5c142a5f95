"""A watch stream whose read of the database fails for a moment (here: a statement
cancelled by FLOWRUN_DB_STATEMENT_TIMEOUT_MS while another session holds the event
table locked, as a migration on another replica may) ends UNAVAILABLE, reason
DATABASE_UNAVAILABLE, with a cursor to resume from: never DEADLINE_EXCEEDED without a
cursor, which clients take as final. Found by an attacker: one timed-out read of the
shared tail ended every stream of the process that way. The same for a stream still
catching up (its own reads). PostgreSQL only: SQLite has no statement timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from flowrun.v1 import filters_pb2
from tests.helpers.rich_errors import decode
from tests.helpers.watching import Watch, make_flow, make_run, start_watch
from tests.test_statement_timeout import driver_url

TIMEOUT_MS = 300


def ended_interrupted(watch: Watch) -> str:
    """The cursor the stream ended with; it must have ended UNAVAILABLE / DATABASE_UNAVAILABLE."""
    assert watch.error is not None, f"the stream did not fail: {len(watch.messages)} messages"
    assert watch.error.code() == grpc.StatusCode.UNAVAILABLE, (watch.error.code(), watch.error.details())
    info = decode(watch.error)
    assert info.reason == "DATABASE_UNAVAILABLE", info
    return info.metadata["cursor"]


@pytest.fixture
async def timing_out(served, database_url, backend, unique):
    """A server whose statements time out after TIMEOUT_MS (lock waits never end first),
    its stubs, a flow and its filter, and `locked()`: the event table locked by another
    session (as a migration on another replica may) until the block ends."""
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout")
    _, flows, runs = await served(lock_timeout_ms=0, db_statement_timeout_ms=TIMEOUT_MS)
    flow_id = await make_flow(flows, unique)
    holder = await asyncpg.connect(driver_url(database_url), timeout=10)

    @contextlib.asynccontextmanager
    async def locked() -> AsyncIterator[None]:
        async with holder.transaction():
            await holder.execute("LOCK TABLE flow_run_event IN ACCESS EXCLUSIVE MODE")
            yield

    try:
        yield runs, flow_id, filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])), locked
    finally:
        await holder.close()


async def resumes_with(runs, only_flow, cursor: str, run_id: str) -> None:
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor)
    await resumed.until(lambda w: any(e.flow_run.id == run_id for e in w.events))
    resumed.cancel()


async def test_streams_whose_read_times_out_end_with_a_cursor_that_resumes(timing_out):
    runs, flow_id, only_flow, locked = timing_out
    await make_run(runs, flow_id)
    live = [start_watch(runs, flow_run_filter=only_flow) for _ in range(3)]
    for watch in live:
        await watch.until(lambda w: w.messages)
    async with locked():
        await asyncio.wait_for(asyncio.gather(*(watch.task for watch in live)), 10)
    cursors = [ended_interrupted(watch) for watch in live]
    later = await make_run(runs, flow_id)  # what changed meanwhile reaches each resumed stream
    for cursor in cursors:
        await resumes_with(runs, only_flow, cursor, later.id)


async def test_a_stream_catching_up_whose_read_times_out_ends_with_its_cursor(timing_out):
    runs, flow_id, only_flow, locked = timing_out
    opening = start_watch(runs, flow_run_filter=only_flow)
    await opening.until(lambda w: w.messages)
    behind = opening.messages[0].progress.cursor
    opening.cancel()
    created = await make_run(runs, flow_id)
    async with locked():
        catching_up = start_watch(runs, flow_run_filter=only_flow, cursor=behind)
        await asyncio.wait_for(catching_up.task, 10)
    await resumes_with(runs, only_flow, ended_interrupted(catching_up), created.id)
