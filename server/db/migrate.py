"""Bring the schema to the latest migration. Safe to run from many processes at once:
PostgreSQL serializes them with an advisory lock, SQLite with its write lock."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from flowrun.server.db.unit_of_work import Database

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK_KEY = 7_246_170_113  # any constant unique to flowrun


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(database: Database) -> None:
    async with database.unit_of_work(write=True) as uow:
        assert uow.connection is not None, "an entered unit of work holds its connection"
        if not database.dialect.is_sqlite:
            await uow.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        await uow.connection.run_sync(_upgrade)
