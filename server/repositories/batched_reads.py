"""Rows of one statement, read a few at a time: for answers whose rows may be large
(a task run's task_inputs reach the write budget, ~1.37 MB) and that are refused once
they pass the response limit. Reading them in batches, and stopping at the batch that
passes the limit, keeps what one call holds near that limit instead of near the rows'
total size (up to 10,000 task runs of a flow run).

One statement, so one snapshot, as a plain read: a server-side cursor inside the unit of
work's transaction on PostgreSQL (SQLAlchemy's asyncpg cursor fetches 50 rows a round
trip, whatever the batch), the statement stepped a batch at a time on SQLite. Callers
read a large JSON column as text and decode it one row at a time: asyncpg would decode
JSON as it fetches, 50 rows at once. Callers close the reader when they stop early
(contextlib.aclosing), which closes the cursor."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import Row, Select
from sqlalchemy.ext.asyncio import AsyncConnection

BATCH_ROWS = 8


async def rows_in_batches(connection: AsyncConnection, query: Select) -> AsyncGenerator[Sequence[Row[Any]], None]:
    """The rows of `query`, `BATCH_ROWS` at a time."""
    async with connection.stream(query.execution_options(yield_per=BATCH_ROWS)) as result:
        async for batch in result.partitions():
            yield batch
