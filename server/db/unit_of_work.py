"""The unit of work: one connection, one transaction, the repositories bound to it.

Servicers and the orchestration interceptor open one per RPC; nothing else touches
connections. A clean exit commits, any exception rolls everything back."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.db.dialect import Dialect
from server.db.engine import WRITE_OPTION
from server.repositories import Repositories


class Database:
    """Owns the engine. On SQLite it also serializes this process's write transactions
    with an asyncio lock: waiting on the lock is cheaper and fairer than SQLite's
    sleeping busy handler, which then only arbitrates between processes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = Dialect(engine.dialect.name)
        self._sqlite_write_gate = asyncio.Lock() if self.dialect.is_sqlite else None

    def unit_of_work(self, *, write: bool) -> UnitOfWork:
        return UnitOfWork(self, write=write)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


class UnitOfWork:
    def __init__(self, database: Database, *, write: bool) -> None:
        self.database = database
        self.dialect = database.dialect
        self.write = write
        self.connection: AsyncConnection | None = None
        self._gate: asyncio.Lock | None = database._sqlite_write_gate if write else None

    async def __aenter__(self) -> UnitOfWork:
        if self._gate is not None:
            await self._gate.acquire()
        try:
            connection = await self.database.engine.connect()
            try:
                if self.write:
                    connection = await connection.execution_options(**{WRITE_OPTION: True})
                await connection.begin()
            except BaseException:
                await connection.close()
                raise
        except BaseException:
            self._release_gate()
            raise
        self.connection = connection
        self.repos = Repositories(connection, self.dialect)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self.connection
        assert connection is not None
        try:
            if exc_type is None:
                await connection.commit()
            else:
                await connection.rollback()
        finally:
            try:
                await connection.close()
            finally:
                self._release_gate()

    def _release_gate(self) -> None:
        if self._gate is not None and self._gate.locked():
            self._gate.release()
            self._gate = None
