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


# A migration may rewrite or index every row (0005's UPDATE, 0008's indexes: ~15 s on
# 1,000,000 runs), and a replica waits for another's migration on the advisory lock: no
# request's statement_timeout or lock_timeout applies to it (SET LOCAL: this transaction only).
UNBOUNDED = ("SET LOCAL statement_timeout = 0", "SET LOCAL lock_timeout = 0")


async def migrate(database: Database) -> None:
    async with database.unit_of_work(write=True) as uow:
        assert uow.connection is not None, "an entered unit of work holds its connection"
        if not database.dialect.is_sqlite:
            for setting in UNBOUNDED:
                await uow.connection.exec_driver_sql(setting)
            await uow.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        await uow.connection.run_sync(_upgrade)
