"""SQLite write transactions in one hand-off: the whole unit of work runs in a thread of
its own, on a plain (synchronous) SQLite connection, and the event loop waits for it
once.

Why: through aiosqlite every statement is a trip from the event loop to aiosqlite's
thread and back, and a SetState is six of them (BEGIN IMMEDIATE, the read, the state,
the run, the event, COMMIT). SQLite admits one writer at a time, and between those
statements the write lock waits for a busy event loop to get round to sending the next:
measured at 8 clients, that wait is most of a write transaction's time. Here the loop
hands the writer thread the whole unit of work and awaits one future; the transaction
runs from BEGIN IMMEDIATE to COMMIT without waiting on the loop.

How the same async repositories run there: their only use of the connection is
`await connection.execute(...)` (InlineConnection gives them that over the synchronous
connection, returning at once; the hot statements of CreateFlowRun and SetState go
through `execute_prepared`, which runs them on the sqlite3 connection itself), so a
write unit of work written as a coroutine never suspends in the writer thread, and it is
driven to its end with one `send` (run_inline): no event loop in that thread at all. A
unit of work that would suspend (wait on something of the event loop's) is a
programming error: it raises and rolls back.

The thread's context is the caller's (contextvars are copied): traces, the call's
abandonment flag and log fields see the call. A unit of work whose call was abandoned
by the time its work is done rolls back instead of committing, as every unit of work
does (server/cancellation.py). One writer thread per process, so its
units of work run one after the other; they also hold the process's SQLite write gate
(server/db/unit_of_work.py), like every other write, so writers on aiosqlite and here
never wait on SQLite's sleeping busy handler for each other. Only the writer thread
touches its connections (pysqlite requires it); dispose runs there too.

Shutdown. Once dispose has begun, submit refuses new work with ShuttingDown (UNAVAILABLE),
checked on the event loop before anything is handed over, so no unit of work can open a
connection after the connections were closed. Work handed over before runs to its end
first (the thread takes its jobs in order, and dispose is the last one).

A unit of work that fails after its caller was cancelled (Database.write leaves it to
finish) has nobody to take its error: the writer takes it and logs it once, instead of
asyncio reporting "Future exception was never retrieved" when the future is collected."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowrun.server import errors
from flowrun.server.call_scope import call_abandoned
from flowrun.server.db.dialect import Dialect
from flowrun.server.db.engine import WRITE_OPTION, configure_sqlite
from flowrun.server.repositories import Repositories

log = logging.getLogger("flowrun.db")
T = TypeVar("T")


class InlineConnection:
    """What repositories use of an AsyncConnection, over a synchronous connection of the
    writer thread: `execute` returns at once (see the module docstring).

    With `driver_statements`, CreateFlowRun's and SetState's statements
    (server/repositories/driver_sql.py execute_prepared) run on the sqlite3 connection
    under `connection`, in its transaction, compiled once and kept there (the writer's;
    only its thread uses it). SQLAlchemy's execution of each statement (cache key,
    execution context, Row) cost more CPU than SQLite's own work, all of it holding the
    GIL the event loop needs. Without (None), SQLAlchemy executes them too."""

    def __init__(self, connection: Connection, driver_statements: dict[Any, Any] | None) -> None:
        self.sync_connection = connection
        self.driver_statements = driver_statements

    async def execute(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self.sync_connection.execute(statement, parameters, **options)


def run_inline(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that never suspends to its end, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a unit of work on the SQLite writer thread waited for the event loop")


class SqliteWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        """A synchronous engine on the same database file, set up as `engine` is
        (server/db/engine.py configure_sqlite), used by one thread."""
        self.dialect = Dialect("sqlite")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        url = engine.url.set(drivername="sqlite")
        self.engine: Engine = create_engine(url, pool_size=1, max_overflow=0)
        configure_sqlite(self.engine, engine.get_execution_options())
        self._closing = False
        self._driver_statements: dict[Any, Any] = {}  # InlineConnection.driver_statements
        self._connection: Connection | None = None  # the thread's (_writing)
        # Called in the writer thread after each transaction that committed (the watch hub
        # wakes its streams: SQLAlchemy's own commit event fires before the commit lands).
        self.after_commit: list[Callable[[], None]] = []

    def submit(self, work: Callable[[Repositories], Awaitable[T]]) -> asyncio.Future[T]:
        """Hands `work(repos)` to the writer thread, to run in one write transaction:
        committed if it returns, rolled back if it raises. It runs to its end whatever
        becomes of the returned future's awaiter. Raises ShuttingDown once dispose began."""
        if self._closing:
            raise errors.ShuttingDown("The server is shutting down; retry the write on another server")
        context = contextvars.copy_context()
        handed = asyncio.get_running_loop().run_in_executor(self._thread, context.run, self._run, work)
        handed.add_done_callback(functools.partial(_report_if_unawaited, asyncio.current_task()))
        return handed

    def _run(self, work: Callable[[Repositories], Awaitable[T]]) -> T:
        writing = self._writing()
        with writing.begin():  # BEGIN IMMEDIATE (configure_sqlite)
            # Whoever listens for cursor executions (tracing's SQL spans) sees every
            # statement: then none runs on the driver.
            raw = None if self.engine.dispatch.before_cursor_execute else self._driver_statements
            repos = Repositories(cast(AsyncConnection, InlineConnection(writing, raw)), self.dialect, None)
            result = run_inline(cast(Coroutine[Any, Any, T], work(repos)))
            if call_abandoned():  # as every unit of work: never commit for a client gone
                raise asyncio.CancelledError("the client went away; rolled back")
        for callback in self.after_commit:
            callback()
        return result

    def _writing(self) -> Connection:
        """The thread's connection, opened once and kept between transactions (outside
        one it holds no lock): a checkout from the pool and setting its options cost
        more than a SetState's statements. (One that an error invalidated reconnects by
        itself on its next use: SQLAlchemy's Connection does.)"""
        if self._connection is None:
            self._connection = self.engine.connect().execution_options(**{WRITE_OPTION: True})
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()

    async def dispose(self) -> None:
        """Refuses new work at once, lets the work handed over before run to its end,
        then closes the connections (in the writer thread) and ends the thread; again:
        nothing."""
        if self._closing:
            return
        self._closing = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        finally:
            self._thread.shutdown(wait=False)  # the thread ends after its last job, the dispose


def _report_if_unawaited(caller: asyncio.Task[Any] | None, handed: asyncio.Future[Any]) -> None:
    """Takes the error of a unit of work whose caller is gone (finished or being
    cancelled) and logs it once; a caller still waiting takes it itself."""
    if handed.cancelled() or (exc := handed.exception()) is None:
        return
    if caller is None or caller.done() or caller.cancelling():
        log.info("a write unit of work whose caller was cancelled failed and was rolled back: %r", exc)
