"""What differs between SQLite and PostgreSQL, in one place: upserts, row locks,
JSON tag containment and the classification of driver errors."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import String, Table, exists, func, or_, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement

from flowrun.server import errors


class Dialect:
    def __init__(self, name: str) -> None:
        self.name = name
        self.is_sqlite = name == "sqlite"

    def insert(self, table: Table):
        """An INSERT that supports .on_conflict_do_nothing() on both dialects."""
        return sqlite.insert(table) if self.is_sqlite else postgresql.insert(table)

    def lock_for_update(self, query: Select, *of: Any) -> Select:
        """Row lock for the SetState read. SQLite has no row locks: the transaction began
        IMMEDIATE and already holds the database write lock."""
        if self.is_sqlite:
            return query
        return query.with_for_update(of=list(of) or None)

    def lock_for_update_skip_locked(self, query: Select) -> Select:
        """Row lock only where it is free (FOR UPDATE SKIP LOCKED): rows another
        transaction holds are left out instead of waited for. SQLite: as lock_for_update
        (its write transaction holds the whole database)."""
        if self.is_sqlite:
            return query
        return query.with_for_update(skip_locked=True)

    def lock_for_key_share(self, query: Select, *of: Any) -> Select:
        """A shared row lock (FOR KEY SHARE on PostgreSQL) that only blocks deleting the
        row: taken on a row that a new row will reference without a foreign key, which
        would otherwise take that lock itself. SQLite: as lock_for_update."""
        if self.is_sqlite:
            return query
        return query.with_for_update(read=True, key_share=True, of=list(of) or None)

    def tags_has_all(self, column: ColumnElement, values: list[str]) -> ColumnElement[bool]:
        if not self.is_sqlite:
            return _jsonb(column).has_all(postgresql.array(values))
        distinct = sorted(set(values))
        each = func.json_each(column).table_valued("value")
        matched = select(func.count(func.distinct(each.c.value))).where(each.c.value.in_(distinct))
        return matched.scalar_subquery() >= len(distinct)

    def tags_has_any(self, column: ColumnElement, values: list[str]) -> ColumnElement[bool]:
        if not self.is_sqlite:
            return _jsonb(column).has_any(postgresql.array(values))
        each = func.json_each(column).table_valued("value")
        return exists(select(each.c.value).where(each.c.value.in_(values)))

    def json_is_empty_list(self, column: ColumnElement) -> ColumnElement[bool]:
        if self.is_sqlite:
            return func.json_array_length(column) == 0
        return func.jsonb_array_length(column) == 0

    def json_text(self, column: ColumnElement, key: str) -> ColumnElement[str]:
        """column->>'key' as text."""
        if self.is_sqlite:
            return func.json_extract(column, f"$.{key}")
        # as_string(), not .astext: the column's Python-side type is the generic JSON
        # (JSONB only as a variant), which has no .astext; on PostgreSQL this is ->>.
        return column[key].as_string()

    def json_is_null(self, column: ColumnElement) -> ColumnElement[bool]:
        """SQL NULL or a JSON null: SQLAlchemy's JSON type writes Python None as 'null'."""
        if self.is_sqlite:
            return or_(column.is_(None), func.json_type(column) == "null")
        return or_(column.is_(None), func.jsonb_typeof(column) == "null")


def _jsonb(column: ColumnElement) -> ColumnElement:
    """The column with JSONB's operators (?&, ?|): JSON columns are declared as generic
    JSON with a JSONB variant, so their Python-side comparator lacks them."""
    return type_coerce(column, postgresql.JSONB())


class binary_order(FunctionElement[str]):
    """A text expression compared byte-wise (code point order), the same on both
    dialects: SQLite's default BINARY collation, COLLATE "C" on PostgreSQL, whose
    default collation depends on the database locale. Used for sort keys, so that
    ORDER BY and the keyset comparison of a page token agree everywhere."""

    type = String()
    inherit_cache = True


@compiles(binary_order)
def _binary_order_default(element: binary_order, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(binary_order, "postgresql")
def _binary_order_postgresql(element: binary_order, compiler, **kw) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


# PostgreSQL's SQLSTATEs of a transaction that lost a race and may simply be retried.
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
LOCK_NOT_AVAILABLE = "55P03"  # the row lock was not granted within lock_timeout
# The statement was cancelled: by statement_timeout (or by an operator's pg_cancel_backend);
# it and its transaction were rolled back.
QUERY_CANCELED = "57014"


class StatementTimedOut(errors.FlowrunError):
    """The database cancelled a statement that ran past statement_timeout; its transaction
    was rolled back (server/db/unit_of_work.py raises it; DEADLINE_EXCEEDED)."""

    reason = "DEADLINE_EXCEEDED"

    def __init__(self, timeout_ms: int, *, write: bool) -> None:
        outcome = "; nothing was written" if write else ""
        super().__init__(
            f"A database statement ran past the statement timeout ({timeout_ms} ms) and was cancelled{outcome}",
            metadata={"statement_timeout_ms": str(timeout_ms)},
        )


# What asyncpg raises on a connection that is closed (its `_check_open` and protocol
# state checks); its other InterfaceErrors are mistakes of the client side (too many
# arguments, a wrong argument count, an operation in progress) that fail again wherever
# they are sent.
_CLOSED_CONNECTION_TEXT = "connection is closed"


def is_connection_lost(exc: BaseException | None) -> bool:
    """Whether `exc` (raw from asyncpg) says the connection died or was found dead:
    before the statement reached the server (a pooled connection after a database
    restart) or after (mid-call), so the statement may have committed. A socket error, a
    connection exception (SQLSTATE class 08, asyncpg's ConnectionDoesNotExistError
    among them), an administrator's shutdown, or the InterfaceError of a closed
    connection; never one of asyncpg's other InterfaceErrors."""
    if isinstance(exc, (OSError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError)):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and _CLOSED_CONNECTION_TEXT in str(exc)


# Connection exceptions (class 08) and an administrator's shutdown or a server that cannot
# accept connections (57P): the database is away, for now.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P")


def is_database_away(exc: BaseException) -> bool:
    """Whether `exc` (raw or wrapped by SQLAlchemy) says the database cannot be reached or
    the connection died, so a retry may work: a socket error, no pooled connection within
    the pool timeout, SQLSTATE class 08 or 57P, or a lost connection (is_connection_lost,
    never asyncpg's client-side InterfaceErrors). server/error_mapping.py answers these
    UNAVAILABLE."""
    if isinstance(exc, (ConnectionError, PoolTimeoutError)):
        return True
    if (sqlstate(exc) or "").startswith(UNAVAILABLE_SQLSTATE_CLASSES):
        return True
    return is_connection_lost(exc) or is_connection_lost(getattr(exc, "orig", None))


def is_transient(exc: BaseException) -> bool:
    """A failure a retry may not meet: the database away (is_database_away) or a
    statement cancelled by statement_timeout (the watch streams resume from their cursor
    after one)."""
    return isinstance(exc, StatementTimedOut) or is_database_away(exc)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, raw from asyncpg (the SetState fast path) or
    wrapped by SQLAlchemy, if any."""
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if code:
            return code
    return None


def is_foreign_key_violation(exc: BaseException) -> bool:
    return sqlstate(exc) == "23503" or "FOREIGN KEY constraint failed" in str(exc)


def is_unique_violation(exc: BaseException) -> bool:
    return sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc)
