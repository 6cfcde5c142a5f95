"""The pgbouncer the `pgbouncer`-marked tests run behind (tests/helpers/pgbouncer.py) really
pools by transaction: one client connection's transactions land on several PostgreSQL
connections, so a prepared statement or a session setting kept across transactions
would break there, as in production behind pgbouncer. And what the server sends at
connect time, as a plain PostgreSQL connection would, pgbouncer refuses."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

pytestmark = pytest.mark.multiprocess  # starts pgbouncer


async def test_one_client_connections_transactions_use_several_server_connections(pgbouncer):
    url = pgbouncer.url("postgres", driver="postgresql")
    # Busy clients at once make pgbouncer open several server connections; then it hands
    # them out round robin.
    others = [await asyncpg.connect(url, statement_cache_size=0) for _ in range(3)]
    try:
        await asyncio.gather(*(other.execute("SELECT pg_sleep(0.2)") for other in others))
    finally:
        await asyncio.gather(*(other.close() for other in others))
    connection = await asyncpg.connect(url, statement_cache_size=0)
    try:
        pids = set()
        for _ in range(20):
            async with connection.transaction():
                pids.add(await connection.fetchval("SELECT pg_backend_pid()"))
                # Inside a transaction the server connection stays the same.
                assert await connection.fetchval("SELECT pg_backend_pid()") in pids
    finally:
        await connection.close()
    assert len(pids) > 1


async def test_pgbouncer_refuses_lock_timeout_as_a_startup_parameter(pgbouncer):
    """Why the server sets lock_timeout per transaction (SET LOCAL, server/db/engine.py)."""
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter: lock_timeout"):
        await asyncpg.connect(
            pgbouncer.url("postgres", driver="postgresql"),
            statement_cache_size=0,
            server_settings={"lock_timeout": "1000"},
        )
