"""The asyncpg connection under a unit of work, for the few statements where
SQLAlchemy's per-statement Python overhead dominates (the SetState read and write).

SQLAlchemy's asyncpg adapter begins its transaction lazily, on the first statement it
runs. Starting it here, through the adapter, keeps one transaction for everything: raw
statements and SQLAlchemy statements on the same unit of work commit or roll back
together. This reaches into the adapter (sqlalchemy is pinned below 2.2); every
PostgreSQL test goes through it, so a change there fails loudly."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection


async def asyncpg_connection(connection: AsyncConnection) -> asyncpg.Connection:
    fairy = await connection.get_raw_connection()
    adapter = fairy.dbapi_connection
    if adapter._transaction is None:
        await adapter._start_transaction()
    return fairy.driver_connection
