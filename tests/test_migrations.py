"""Alembic owns the schema: the migrated database must match what the code queries."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from flowrun.server.db.migrate import migrate
from flowrun.server.db.tables import metadata


async def test_migrations_match_the_tables_the_code_uses(app):
    def differences(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with app.database.engine.connect() as connection:
        diff = await connection.run_sync(differences)
    assert diff == []


async def test_migrating_again_is_a_no_op(app):
    await migrate(app.database)  # what a second replica starting up does
    async with app.database.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert set(metadata.tables) <= tables
