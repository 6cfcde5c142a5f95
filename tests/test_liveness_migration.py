"""Migration 0006 (liveness) on a database that already holds runs: they keep heartbeat
checking off and get no deadline, so upgrading crashes nothing; it downgrades cleanly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import MIGRATIONS, migrate
from flowrun.server.db.tables import flow, flow_run
from flowrun.server.db.unit_of_work import Database
from tests.conftest import BACKENDS, fresh_database, settings_for

pytestmark = pytest.mark.slow  # migrates a database of its own step by step: a second or two

COLUMNS = {"heartbeat_timeout_seconds", "last_heartbeat_time", "heartbeat_deadline"}


def _alembic(connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


def _flow_run_schema(connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    columns = {column["name"] for column in inspector.get_columns("flow_run")}
    indexes = {index["name"] for index in inspector.get_indexes("flow_run")}
    return columns, indexes


@pytest.mark.parametrize("backend", BACKENDS)
async def test_runs_from_before_0006_keep_heartbeats_off_and_it_downgrades(backend, tmp_path):
    async with fresh_database(backend, tmp_path) as url:
        database = Database(create_engine(settings_for(url)))
        try:
            async with database.unit_of_work(write=True) as uow:
                await uow.connection.run_sync(_alembic, "upgrade", "0005")
                now = datetime.now(UTC)
                flow_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
                await uow.connection.execute(
                    flow.insert().values(id=flow_id, name="old", created=now, updated=now, tags=[])
                )
                await uow.connection.execute(
                    flow_run.insert().values(
                        id=run_id, flow_id=flow_id, name="running-before", created=now, updated=now,
                        state_type="RUNNING", state_name="Running", parameters={}, context={},
                        empirical_policy={}, tags=[],
                    )
                )  # fmt: skip
            await migrate(database)
            async with database.unit_of_work(write=False) as uow:
                row = (
                    await uow.connection.execute(
                        select(flow_run.c.heartbeat_timeout_seconds, flow_run.c.heartbeat_deadline).where(
                            flow_run.c.id == run_id
                        )
                    )
                ).one()
                assert tuple(row) == (None, None)
                columns, indexes = await uow.connection.run_sync(_flow_run_schema)
            assert COLUMNS <= columns and "ix_flow_run__heartbeat_deadline" in indexes
            async with database.unit_of_work(write=True) as uow:
                await uow.connection.run_sync(_alembic, "downgrade", "0005")
                columns, indexes = await uow.connection.run_sync(_flow_run_schema)
            assert not COLUMNS & columns and "ix_flow_run__heartbeat_deadline" not in indexes
        finally:
            await database.dispose()
