"""The unit of work never acknowledges what PostgreSQL did not commit, and never pools a
connection that is inside a transaction."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from flowrun.server import errors
from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import migrate
from flowrun.server.db.unit_of_work import Database
from tests.conftest import fresh_database


@pytest.fixture(scope="module")
async def database(tmp_path_factory):
    """A PostgreSQL database of the module's own, created and migrated once."""
    async with fresh_database("postgres", tmp_path_factory.mktemp("unit_of_work")) as url:
        database = Database(create_engine(Settings(database_url=url)))
        await migrate(database)
        try:
            yield database
        finally:
            await database.dispose()


async def test_a_commit_that_postgresql_rolls_back_is_a_conflict_and_writes_nothing(database):
    """A statement failed inside the transaction and the caller swallowed the error: the
    transaction is aborted, PostgreSQL answers the COMMIT with ROLLBACK, and the unit of
    work must raise rather than let the call answer OK."""
    with pytest.raises(errors.Conflict):
        async with database.unit_of_work(write=True) as uow:
            await uow.connection.execute(text("CREATE TABLE scratch (id int)"))
            with pytest.raises(asyncpg.DivisionByZeroError):
                await uow.driver.execute("SELECT 1 / 0")
    async with database.unit_of_work(write=False) as uow:
        exists = await uow.connection.scalar(text("SELECT to_regclass('scratch') IS NOT NULL"))
        assert exists is False


async def test_connections_go_back_to_the_pool_outside_any_transaction(database):
    """After commits, rollbacks and failures, every pooled connection is idle, not idle
    in transaction (a connection pooled inside a transaction turns later ACCEPTs into lost
    writes)."""
    async with database.unit_of_work(write=True) as uow:
        await uow.connection.execute(text("SELECT 1"))
    with pytest.raises(RuntimeError):
        async with database.unit_of_work(write=True) as uow:
            await uow.connection.execute(text("SELECT 1"))
            raise RuntimeError("the caller failed")
    with pytest.raises(errors.Conflict):
        async with database.unit_of_work(write=True) as uow:
            with pytest.raises(asyncpg.DivisionByZeroError):
                await uow.driver.execute("SELECT 1 / 0")
    async with database.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert not raw.is_in_transaction()
        states = await raw.fetch(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert all(row["state"] != "idle in transaction" for row in states), states
