"""The SQLite writer (server/db/sqlite_writer.py) at shutdown: once dispose has begun,
a write is refused with ShuttingDown (UNAVAILABLE, reason SHUTTING_DOWN), never run on a
connection opened after the connections were closed, never an INTERNAL error; writes
handed over before dispose began run to their end first; every connection the writer
opened is closed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import event, select

from flowrun.server import clock, errors
from flowrun.server.db.engine import create_engine
from flowrun.server.db.tables import flow
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.flows import FlowCreate
from flowrun.server.error_mapping import to_grpc_status
from tests.conftest import settings_for


@pytest.fixture(autouse=True)
def sqlite_only(backend):
    if backend != "sqlite":
        pytest.skip("the writer thread is SQLite's")


class Connections:
    """DBAPI connections the writer's engine opened and closed (pool events; they carry
    over to the pool engine.dispose() puts in place)."""

    def __init__(self, database: Database) -> None:
        assert database.sqlite_writer is not None
        self.opened = self.closed = 0
        engine = database.sqlite_writer.engine
        event.listen(engine, "connect", self._opened)
        event.listen(engine, "close", self._closed)

    def _opened(self, *_) -> None:
        self.opened += 1

    def _closed(self, *_) -> None:
        self.closed += 1


@pytest.fixture
async def database(app, database_url) -> AsyncIterator[Database]:
    """A Database of the test's own on the session's (migrated) SQLite file, so that
    disposing it leaves the session server alone."""
    database = Database(create_engine(settings_for(database_url)))
    try:
        yield database
    finally:
        await database.dispose()


async def add_flow(repos, name: str):
    return await repos.flows.get_or_create(FlowCreate(name=name), clock.now())


async def names_of_flows(app, *names: str) -> list[str]:
    async with app.database.unit_of_work(write=False) as uow:
        rows = await uow.connection.execute(select(flow.c.name).where(flow.c.name.in_(names)))
        return sorted(row.name for row in rows)


def assert_shutting_down(exc: BaseException) -> None:
    assert isinstance(exc, errors.ShuttingDown), repr(exc)
    status = to_grpc_status(exc, "/test")
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in status.details


async def test_writes_during_and_after_dispose_are_refused_cleanly(app, database, unique):
    connections = Connections(database)
    entered, release = threading.Event(), threading.Event()

    async def slow(repos):
        await add_flow(repos, f"before-{unique}")
        entered.set()
        release.wait(10)  # holds the writer thread while dispose begins

    before = asyncio.ensure_future(database.write(slow))
    await asyncio.to_thread(entered.wait, 10)
    disposing = asyncio.ensure_future(database.dispose())
    await asyncio.sleep(0)  # dispose has begun: it waits for the writer thread
    during = asyncio.ensure_future(database.write(lambda repos: add_flow(repos, f"during-{unique}")))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(before, 10)  # handed over before dispose began: it ran to its end
    with pytest.raises(errors.FlowrunError) as raised:
        await asyncio.wait_for(during, 10)
    assert_shutting_down(raised.value)
    await asyncio.wait_for(disposing, 10)
    with pytest.raises(errors.FlowrunError) as raised:
        await database.write(lambda repos: add_flow(repos, f"after-{unique}"))
    assert_shutting_down(raised.value)
    assert not database.sqlite_write_gate.locked()
    assert await names_of_flows(app, f"before-{unique}", f"during-{unique}", f"after-{unique}") == [f"before-{unique}"]
    assert connections.opened == connections.closed >= 1


async def test_a_write_handed_over_before_dispose_that_fails_rolls_back(app, database, unique):
    entered, release = threading.Event(), threading.Event()

    async def fails(repos):
        await add_flow(repos, f"rolled-back-{unique}")
        entered.set()
        release.wait(10)
        raise errors.Conflict("the unit of work fails after writing")

    failing = asyncio.ensure_future(database.write(fails))
    await asyncio.to_thread(entered.wait, 10)
    disposing = asyncio.ensure_future(database.dispose())
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(errors.Conflict):
        await asyncio.wait_for(failing, 10)
    await asyncio.wait_for(disposing, 10)
    assert await names_of_flows(app, f"rolled-back-{unique}") == []
