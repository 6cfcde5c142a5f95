"""A watch stream whose read of the database fails for a moment (here: a statement
cancelled by FLOWRUN_DB_STATEMENT_TIMEOUT_MS while another session holds the event
table locked, as a migration on another replica may) ends UNAVAILABLE, reason
DATABASE_UNAVAILABLE, with a cursor to resume from: never DEADLINE_EXCEEDED without a
cursor, which clients take as final. Found by an attacker: one timed-out read of the
shared tail ended every stream of the process that way. The same for a stream still
catching up (its own reads). PostgreSQL only: SQLite has no statement timeout."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from flowrun.server.app import build_app
from flowrun.v1 import filters_pb2, flow_run_service_pb2_grpc, flow_service_pb2_grpc
from tests.conftest import settings_for
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


async def test_streams_whose_read_times_out_end_with_a_cursor_that_resumes(database_url, backend, unique):
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout")
    settings = settings_for(
        database_url, lock_timeout_ms=0, db_statement_timeout_ms=TIMEOUT_MS, watch_heartbeat_seconds=0.2
    )
    app = await build_app(settings)
    await app.start()
    holder = await asyncpg.connect(driver_url(database_url), timeout=10)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow_id = await make_flow(flows, unique)
            only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
            await make_run(runs, flow_id)
            live = [start_watch(runs, flow_run_filter=only_flow) for _ in range(3)]
            for watch in live:
                await watch.until(lambda w: w.messages)

            lock = holder.transaction()
            await lock.start()
            await holder.execute("LOCK TABLE flow_run_event IN ACCESS EXCLUSIVE MODE")
            try:
                await asyncio.wait_for(asyncio.gather(*(watch.task for watch in live)), 10)
                cursors = [ended_interrupted(watch) for watch in live]
            finally:
                await lock.rollback()

            # Resumed, each stream gets what changed meanwhile.
            second = await make_run(runs, flow_id)
            for cursor in cursors:
                resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor)
                await resumed.until(lambda w: any(e.flow_run.id == second.id for e in w.events))
                resumed.cancel()
    finally:
        await holder.close()
        await app.stop(grace=0)


async def test_a_stream_catching_up_whose_read_times_out_ends_with_its_cursor(database_url, backend, unique):
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout")
    settings = settings_for(
        database_url, lock_timeout_ms=0, db_statement_timeout_ms=TIMEOUT_MS, watch_heartbeat_seconds=0.2
    )
    app = await build_app(settings)
    await app.start()
    holder = await asyncpg.connect(driver_url(database_url), timeout=10)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow_id = await make_flow(flows, unique)
            only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
            opening = start_watch(runs, flow_run_filter=only_flow)
            await opening.until(lambda w: w.messages)
            behind = opening.messages[0].progress.cursor
            opening.cancel()
            created = await make_run(runs, flow_id)

            lock = holder.transaction()
            await lock.start()
            await holder.execute("LOCK TABLE flow_run_event IN ACCESS EXCLUSIVE MODE")
            try:
                catching_up = start_watch(runs, flow_run_filter=only_flow, cursor=behind)
                await asyncio.wait_for(catching_up.task, 10)
                cursor = ended_interrupted(catching_up)
            finally:
                await lock.rollback()

            resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor)
            await resumed.until(lambda w: any(e.flow_run.id == created.id for e in w.events))
            resumed.cancel()
    finally:
        await holder.close()
        await app.stop(grace=0)
