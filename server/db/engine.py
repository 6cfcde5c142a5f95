"""The async engine for either dialect, with the connection settings each one needs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flowrun.server.config import Settings

WRITE_OPTION = "flowrun_write"
# The SQLite engine's execution option holding its busy timeout (ms), for configure_sqlite.
SQLITE_BUSY_TIMEOUT_OPTION = "flowrun_sqlite_busy_timeout_ms"
# The engine's execution option holding the statement that opens a PostgreSQL transaction
# (read by server/db/unit_of_work.py).
BEGIN_OPTION = "flowrun_begin"
# The engine's execution option saying that lock_timeout and statement_timeout are
# session settings of every connection, so a single statement outside a transaction is
# bounded by them too (not behind pgbouncer, which refuses them as startup parameters):
# the two-round-trip SetState (server/orchestration/unlocked.py) needs that.
SESSION_LOCK_TIMEOUT_OPTION = "flowrun_session_lock_timeout"
# The engine's execution option holding statement_timeout (ms, 0: off), for the message
# of a statement it cancelled (server/db/unit_of_work.py).
STATEMENT_TIMEOUT_OPTION = "flowrun_statement_timeout_ms"
# Behind pgbouncer in transaction pooling mode consecutive transactions of one connection
# may run on different server connections, so no prepared statement may outlive its
# transaction: asyncpg prepares every statement unnamed and re-sends it with each
# execution (statement_cache_size=0; its documented pgbouncer setting), and SQLAlchemy's
# adapter keeps no prepared statements of its own (prepared_statement_cache_size=0).
PGBOUNCER_CONNECT_ARGS = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


def begin_statement(settings: Settings) -> str:
    """BEGIN and the transaction's lock_timeout and statement_timeout, in one round trip
    (asyncpg sends a statement without arguments as a simple query). SET LOCAL, not a
    session setting: behind pgbouncer's transaction pooling a session setting would stay
    on a server connection other clients then use (and pgbouncer refuses both as startup
    parameters)."""
    return (
        f"BEGIN; SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}; "
        f"SET LOCAL statement_timeout = {int(settings.db_statement_timeout_ms)}"
    )


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, url)
    return create_async_engine(
        url,
        # The unit of work owns every transaction (server/db/unit_of_work.py): it sends
        # BEGIN/COMMIT/ROLLBACK itself, so SQLAlchemy's adapter never starts one of its own.
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=False,
        execution_options={
            BEGIN_OPTION: begin_statement(settings),
            SESSION_LOCK_TIMEOUT_OPTION: not settings.db_pgbouncer,
            STATEMENT_TIMEOUT_OPTION: int(settings.db_statement_timeout_ms),
        },
        connect_args={
            "server_settings": _server_settings(settings),
            **(PGBOUNCER_CONNECT_ARGS if settings.db_pgbouncer else {}),
        },
    )


def _server_settings(settings: Settings) -> dict[str, str]:
    """Session settings sent at connect. lock_timeout and statement_timeout too, except
    behind pgbouncer (see begin_statement): there every transaction sets them with SET
    LOCAL instead. statement_timeout bounds every statement, a call's whose client has
    gone too: flowrun abandons such a call, never cancels its statement
    (server/cancellation.py), so this is what gives its connection back to the pool."""
    if settings.db_pgbouncer:
        return {"application_name": "flowrun"}
    return {
        "application_name": "flowrun",
        "lock_timeout": str(int(settings.lock_timeout_ms)),
        "statement_timeout": str(int(settings.db_statement_timeout_ms)),
    }


def _sqlite_engine(settings: Settings, url) -> AsyncEngine:
    """SQLite through aiosqlite, set up by configure_sqlite."""
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        execution_options={SQLITE_BUSY_TIMEOUT_OPTION: int(settings.sqlite_busy_timeout_ms)},
    )
    configure_sqlite(engine.sync_engine, engine.get_execution_options())
    return engine


def configure_sqlite(engine: Engine, options: Mapping[str, Any]) -> None:
    """SQLite in WAL mode with a busy timeout (`options`' SQLITE_BUSY_TIMEOUT_OPTION) and
    foreign keys on. pysqlite's own transaction handling is switched off so that every
    transaction starts with our BEGIN: IMMEDIATE for writes, so a writer takes the write
    lock before its first read and never fails with "database is locked" half-way
    through. For the aiosqlite engine and the synchronous one of the SQLite writer
    thread (server/db/sqlite_writer.py) alike."""
    busy_timeout = int(options[SQLITE_BUSY_TIMEOUT_OPTION])

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching to WAL needs a lock that a second process
        # starting at the same moment may hold, and without it that fails at once.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
        switch_to_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def switch_to_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """PRAGMA journal_mode=WAL, tried again for up to the busy timeout while SQLite says
    the database is locked. Two processes opening a new database file at once both switch
    it, and SQLite may answer the second "database is locked" at once, without its busy
    handler (it does so where waiting could deadlock); WAL is kept in the file, so once
    the first has switched it the second's switch succeeds. Only a new file's first
    connections ever wait here, 20 ms at a time."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError (sqlite3's, or aiosqlite's adaptation)
            if "database is locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
