""" "No data" has one encoding: SQL NULL, on every write path and both databases
(server/db/types.py), and migration 0005 rewrites the JSON nulls stored before it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, text

from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import MIGRATIONS, migrate
from flowrun.server.db.tables import flow, metadata
from flowrun.server.db.unit_of_work import Database
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import state_pb2, task_run_service_pb2, task_run_service_pb2_grpc
from tests.conftest import fresh_database, settings_for

#: Every nullable JSON column of the schema, read from the tables (a new one is covered too).
NULLABLE_JSON_COLUMNS = tuple(
    (table.name, column.name)
    for table in metadata.sorted_tables
    for column in table.c
    if column.nullable and isinstance(column.type, JSON)
)


def json_null(dialect: str) -> str:
    return "'null'" if dialect == "sqlite" else "'null'::jsonb"


async def json_nulls(database: Database) -> dict[str, int]:
    """Rows per nullable JSON column that hold the JSON value null."""
    found = {}
    async with database.unit_of_work(write=False) as uow:
        literal = json_null(uow.connection.dialect.name)
        for table, column in NULLABLE_JSON_COLUMNS:
            query = f"SELECT count(*) FROM {table} WHERE {column} = {literal}"
            found[f"{table}.{column}"] = (await uow.connection.execute(text(query))).scalar_one()
    return found


async def sql_nulls(database: Database, table: str, column: str) -> int:
    async with database.unit_of_work(write=False) as uow:
        query = f"SELECT count(*) FROM {table} WHERE {column} IS NULL"
        return (await uow.connection.execute(text(query))).scalar_one()


async def test_every_write_path_stores_no_data_as_sql_null(app, channel, flows, runs):
    """CreateFlowRun, SetFlowRunState (the asyncpg hot path on PostgreSQL), CreateTaskRun,
    SetTaskRunState and the subflow mirror all write states without data."""
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name="no-data-encoding"))).flow
    parent = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    task_runs = task_run_service_pb2_grpc.TaskRunServiceStub(channel)
    task = (
        await task_runs.CreateTaskRun(task_run_service_pb2.CreateTaskRunRequest(flow_run_id=parent.id, task_key="t"))
    ).task_run
    running = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    await task_runs.SetTaskRunState(task_run_service_pb2.SetTaskRunStateRequest(task_run_id=task.id, state=running))
    subflow = (
        await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, parent_task_run_id=task.id))
    ).flow_run
    await runs.SetFlowRunState(runs_pb.SetFlowRunStateRequest(flow_run_id=subflow.id, state=running))
    assert await json_nulls(app.database) == {f"{t}.{c}": 0 for t, c in NULLABLE_JSON_COLUMNS}
    assert await sql_nulls(app.database, "flow_run_state", "data") >= 3
    assert await sql_nulls(app.database, "task_run_state", "data") >= 3


def _upgrade_to(connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_migration_0005_rewrites_stored_json_nulls(backend, tmp_path):
    async with fresh_database(backend, tmp_path) as url:
        database = Database(create_engine(settings_for(url)))
        try:
            async with database.unit_of_work(write=True) as uow:
                await uow.connection.run_sync(_upgrade_to, "0004")
                now = datetime.now(UTC)
                legacy = {"id": str(uuid.uuid4()), "name": "legacy", "created": now, "updated": now, "tags": []}
                await uow.connection.execute(flow.insert().values(**legacy, labels=JSON.NULL))  # as SQLAlchemy did
            assert (await json_nulls(database))["flow.labels"] == 1
            await migrate(database)
            assert (await json_nulls(database))["flow.labels"] == 0
            assert await sql_nulls(database, "flow", "labels") == 1
        finally:
            await database.dispose()
