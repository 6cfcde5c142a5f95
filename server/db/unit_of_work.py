"""The unit of work: one connection, one transaction, the repositories bound to it.

Servicers and the orchestration interceptor open one per RPC; nothing else touches
connections. A clean exit commits, any exception rolls everything back.

Cancellation safety. gRPC cancels a handler's task when its client cancels or its
deadline passes, at whatever await the handler is in, including the commit or the
rollback. Ending a unit of work therefore runs in a task of its own that a
cancellation cannot interrupt (asyncio.shield): the transaction is committed or rolled
back, the connection goes back to the pool only if it is provably outside a
transaction (else it is discarded), and the SQLite write gate is released only after
all that. The cancelled caller never sees an answer, so nothing unacknowledged can
look acknowledged, and nothing acknowledged can be left uncommitted. RPC handlers are
not cancelled mid-statement at all (server/cancellation.py): a unit of work whose call
was abandoned rolls back at its end instead of committing; what bounds how long its
statement keeps the connection is PostgreSQL's statement_timeout (server/db/engine.py),
whose cancellation a unit of work reports as StatementTimedOut. The shielded ending
covers everything else that can be cancelled: shutdown, and the server's background loops.

PostgreSQL transactions belong to this module, not to SQLAlchemy's adapter: the engine
runs in AUTOCOMMIT (server/db/engine.py) and the unit of work sends BEGIN, COMMIT and
ROLLBACK itself on the asyncpg connection, using asyncpg's public API only. So SQLAlchemy
statements and the plain asyncpg statements of the SetState hot path share one
transaction, and whether a connection is inside one is read from the server's own
report (`is_in_transaction()`), never from bookkeeping that a cancellation can tear."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowrun.server import errors, metrics
from flowrun.server.call_scope import call_abandoned, in_call
from flowrun.server.db.dialect import QUERY_CANCELED, Dialect, StatementTimedOut, is_connection_lost, sqlstate
from flowrun.server.db.engine import BEGIN_OPTION, SESSION_LOCK_TIMEOUT_OPTION, STATEMENT_TIMEOUT_OPTION, WRITE_OPTION
from flowrun.server.db.sqlite_writer import SqliteWriter
from flowrun.server.repositories import Repositories

log = logging.getLogger("flowrun.db")
T = TypeVar("T")

# Tasks that end units of work whose callers were cancelled: referenced until done, so
# the event loop cannot drop them half-way.
_endings: set[asyncio.Task[None]] = set()


class Database:
    """Owns the engine. On SQLite it also serializes this process's write transactions
    with an asyncio lock: waiting on the lock is cheaper and fairer than SQLite's
    sleeping busy handler, which then only arbitrates between processes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = Dialect(engine.dialect.name)
        self.sqlite_write_gate = asyncio.Lock() if self.dialect.is_sqlite else None
        # PostgreSQL: BEGIN with the transaction's settings (server/db/engine.py).
        options = engine.get_execution_options()
        self.begin = options.get(BEGIN_OPTION, "BEGIN")
        # PostgreSQL with lock_timeout on every connection: a unit of work may run single
        # statements outside a transaction (unit_of_work(transaction=False)).
        self.single_statements = bool(options.get(SESSION_LOCK_TIMEOUT_OPTION, False))
        self.statement_timeout_ms = int(options.get(STATEMENT_TIMEOUT_OPTION, 0))
        # A dead pooled connection fails its BEGIN at once; after a database restart every
        # pooled connection is dead, so opening tries at most this many before giving up.
        self.open_attempts = engine.pool.size() + 2 if hasattr(engine.pool, "size") else 2
        # Units of work waiting for a connection or the write gate (the pool has no public
        # count of its waiters); sampled by server/metrics_export.py.
        self.waiting = 0
        # SQLite: write units of work in one hand-off to a thread of their own (write()).
        self.sqlite_writer = SqliteWriter(engine) if self.dialect.is_sqlite else None

    async def write(self, work: Callable[[Repositories], Awaitable[T]]) -> T:
        """`work(repos)` in one write transaction: committed if it returns, rolled back
        if it raises. On SQLite the whole transaction runs in the writer thread, handed
        over once (server/db/sqlite_writer.py; `work` must only await the repositories);
        on PostgreSQL it is a write unit of work."""
        writer = self.sqlite_writer
        if writer is None:
            async with self.unit_of_work(write=True) as uow:
                return await work(uow.repos)
        if call_abandoned():
            raise asyncio.CancelledError("the client went away; not opening a unit of work")
        gate = self.sqlite_write_gate
        assert gate is not None
        self.waiting += 1
        try:
            await gate.acquire()
        finally:
            self.waiting -= 1
        try:
            handed = writer.submit(work)
        except BaseException:
            gate.release()
            raise
        handed.add_done_callback(lambda _: gate.release())  # held until the thread is done
        return await asyncio.shield(handed)  # a cancelled caller leaves it to finish

    def unit_of_work(self, *, write: bool, transaction: bool = True) -> UnitOfWork:
        """`transaction=False` (PostgreSQL, when `single_statements`): a pooled connection
        and no BEGIN; each statement commits on its own. For callers whose every write is
        one statement (server/orchestration/unlocked.py)."""
        return UnitOfWork(self, write=write, transaction=transaction)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self.sqlite_writer is not None:
            await self.sqlite_writer.dispose()
        await self.engine.dispose()


class UnitOfWork:
    def __init__(self, database: Database, *, write: bool, transaction: bool = True) -> None:
        self.database = database
        self.dialect = database.dialect
        self.write = write
        self.transaction = transaction
        assert transaction or database.single_statements, "statements outside a transaction need PostgreSQL"
        self.connection: AsyncConnection | None = None
        self.driver: asyncpg.Connection | None = None  # PostgreSQL only
        self._gate: asyncio.Lock | None = database.sqlite_write_gate if write else None

    async def __aenter__(self) -> UnitOfWork:
        if call_abandoned():
            raise asyncio.CancelledError("the client went away; not opening a unit of work")
        if self._gate is not None:
            self.database.waiting += 1
            try:
                await self._gate.acquire()
            finally:
                self.database.waiting -= 1
        try:
            await self._open()
        except BaseException:
            await _shielded(self._end(commit=False))
            raise
        assert self.connection is not None
        self.repos = Repositories(self.connection, self.dialect, self.driver)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        abandoned = call_abandoned()
        await _shielded(self._end(commit=exc_type is None and not abandoned))
        if abandoned and exc_type is None:
            # Outside a transaction each statement committed itself: nothing to roll back.
            raise asyncio.CancelledError("the client went away" + ("; rolled back" if self.transaction else ""))
        if exc is not None and sqlstate(exc) == QUERY_CANCELED:
            # Rolled back with its transaction (or alone, outside one): nothing written.
            raise StatementTimedOut(self.database.statement_timeout_ms, write=self.write) from exc

    async def _open(self) -> None:
        if self.dialect.is_sqlite:
            connection = self.connection = await self._connect()
            if self.write:
                connection = self.connection = await connection.execution_options(**{WRITE_OPTION: True})
            await connection.begin()  # BEGIN [IMMEDIATE], from the engine's begin event
            return
        for attempt in range(1, self.database.open_attempts + 1):
            connection = self.connection = await self._connect()
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None, "an open connection has its asyncpg connection"
            self.driver = driver
            if driver.is_in_transaction():  # never expected; never trusted either
                log.error("a pooled connection was inside a transaction; discarding it")
                await self._discard()
                continue
            if not self.transaction:
                return
            try:
                await driver.execute(self.database.begin)
                return
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                # Dead before anything was sent but BEGIN: safe to try another connection.
                await self._discard()
                if attempt == self.database.open_attempts:
                    raise
                if metrics.enabled:
                    metrics.DB_CONNECTION_RETRIES.inc()
        raise ConnectionError("no pooled connection was usable")  # UNAVAILABLE, with RetryInfo

    async def _connect(self) -> AsyncConnection:
        database = self.database
        database.waiting += 1
        try:
            return await database.engine.connect()
        finally:
            database.waiting -= 1

    async def _end(self, *, commit: bool) -> None:
        """Commit or roll back, then return the connection clean or discard it; always
        release the SQLite write gate last. A failed commit raises; a failed rollback
        only discards the connection, so the error that caused it is the one reported."""
        try:
            if self.connection is None:
                return
            try:
                await self._finish_transaction(commit)
            except BaseException:
                await self._discard()
                if commit:
                    raise
                log.debug("rollback failed; connection discarded", exc_info=True)
                return
            if self.driver is not None and (self.driver.is_in_transaction() or self.driver.is_closed()):
                await self._discard()
            else:
                await self.connection.close()
        finally:
            self._release_gate()

    async def _finish_transaction(self, commit: bool) -> None:
        assert self.connection is not None
        if not self.transaction:
            return  # each statement committed itself; _end discards a connection left in one
        if self.driver is None:
            await (self.connection.commit() if commit else self.connection.rollback())
        elif not commit:
            # Sent whether or not a transaction seems open: after a cancelled statement the
            # connection's view is stale until it settles, and asyncpg settles it first.
            await self.driver.execute("ROLLBACK")
        elif not self.driver.is_in_transaction() or await self.driver.execute("COMMIT") != "COMMIT":
            # PostgreSQL answers COMMIT of a failed transaction with ROLLBACK: never acknowledge that.
            raise errors.Conflict("The transaction could not be committed; nothing was written; retry")

    async def _discard(self) -> None:
        """Closes the connection for good instead of pooling it."""
        connection, self.connection, self.driver = self.connection, None, None
        if connection is None:
            return
        try:
            await connection.invalidate()
        finally:
            await connection.close()

    def _release_gate(self) -> None:
        if self._gate is not None and self._gate.locked():
            self._gate.release()
            self._gate = None


async def _shielded(ending: Coroutine[Any, Any, None]) -> None:
    """Runs `ending` to completion even if the caller is cancelled meanwhile: the caller
    still gets its CancelledError at once, the ending goes on in its own task. Inside an
    RPC that task is not needed: a handler's task is never cancelled there, only
    abandoned (server/cancellation.py), so the ending runs inline and the hot path pays
    for no extra task."""
    if in_call():
        await ending
        return
    task = asyncio.ensure_future(ending)
    _endings.add(task)
    task.add_done_callback(_endings.discard)
    task.add_done_callback(_log_failed_ending)
    await asyncio.shield(task)


def _log_failed_ending(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("ending a unit of work failed: %r", task.exception())
