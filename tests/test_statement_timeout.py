"""Every PostgreSQL statement is bounded by statement_timeout (FLOWRUN_DB_STATEMENT_TIMEOUT_MS),
also behind pgbouncer (SET LOCAL with BEGIN): a call whose client has gone is abandoned,
never cancelled mid-statement (server/cancellation.py), so without it a slow statement
would hold its pooled connection for as long as it runs. A statement it cancels answers
DEADLINE_EXCEEDED with ErrorInfo metadata `statement_timeout_ms`, a write's saying that
nothing was written; the connection goes back to the pool.

And the classification of asyncpg's errors: only a dead connection is UNAVAILABLE and
triggers the one-statement write's resend (server/orchestration/unlocked.py); its
client-side InterfaceErrors (too many arguments, ...) fail again wherever they are sent.
The log line of an error is bounded whatever the statement's size."""

from __future__ import annotations

import logging

import asyncpg
import grpc
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from flowrun.server.app import build_app
from flowrun.server.config import Settings
from flowrun.server.db import migrate as migrate_module
from flowrun.server.db.dialect import StatementTimedOut, is_connection_lost
from flowrun.server.db.engine import begin_statement, create_engine
from flowrun.server.db.unit_of_work import Database
from flowrun.server.error_mapping import MAX_LOGGED_TRACEBACK, to_grpc_status
from flowrun.server.logs import JsonFormatter
from flowrun.server.orchestration import unlocked
from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.conftest import POSTGRES_ADMIN_URL, settings_for
from tests.helpers.rich_errors import expect_error

STATEMENT_TIMEOUT_MS = 300


def driver_url(database_url: str) -> str:
    """The direct asyncpg URL of the test's database (not through pgbouncer)."""
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{make_url(database_url).database}"


@pytest.mark.pgbouncer
async def test_a_statement_past_the_timeout_is_cancelled_and_its_connection_serves_the_next_call(
    database_url, backend, unique
):
    """A read and a write that wait on a table lock (lock_timeout off) past the statement
    timeout: each answers DEADLINE_EXCEEDED long before the client's deadline, no statement
    of theirs is left running, the one pooled connection serves every later call, and the
    write wrote nothing."""
    if backend != "postgres":
        pytest.skip("statement_timeout is PostgreSQL's; SQLite statements run in-process")
    settings = settings_for(
        database_url,
        lock_timeout_ms=0,
        db_statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        db_pool_size=1,
        db_max_overflow=0,
    )
    app = await build_app(settings)
    await app.start()
    holder = await asyncpg.connect(driver_url(database_url), timeout=10)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            # A write within the timeout is unaffected.
            first = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"in-time-{unique}"))).flow

            locked = holder.transaction()
            await locked.start()
            await holder.execute("LOCK TABLE flow IN ACCESS EXCLUSIVE MODE")
            read = await expect_error(flows.ListFlows(flow_service_pb2.ListFlowsRequest(), timeout=10))
            assert (read.code, read.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED")
            assert read.metadata == {"statement_timeout_ms": str(STATEMENT_TIMEOUT_MS)}
            assert "statement timeout" in read.message
            assert (
                await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'active'"
                )
                == 0
            )

            write = await expect_error(
                flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"too-late-{unique}"), timeout=10)
            )
            assert (write.code, write.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED")
            assert write.metadata == {"statement_timeout_ms": str(STATEMENT_TIMEOUT_MS)}
            assert "nothing was written" in write.message
            await locked.rollback()

            listed = await flows.ListFlows(flow_service_pb2.ListFlowsRequest(), timeout=10)
            names = {flow.name for flow in listed.flows}
            assert first.name in names and f"too-late-{unique}" not in names
            again = await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"too-late-{unique}"), timeout=10)
            assert again.flow.name == f"too-late-{unique}"
    finally:
        await holder.close()
        await app.stop(grace=0)


async def test_the_engine_bounds_every_statement(database_url, backend):
    """A session setting (single statements outside a transaction are bounded too), or
    behind pgbouncer SET LOCAL in every transaction's BEGIN."""
    if backend != "postgres":
        pytest.skip("statement_timeout is PostgreSQL's")
    engine = create_engine(settings_for(database_url, db_statement_timeout_ms=12345))
    try:
        async with engine.connect() as connection:
            shown = await connection.exec_driver_sql("SHOW statement_timeout")
            assert shown.scalar() == "12345ms"
    finally:
        await engine.dispose()
    behind = Settings(database_url=database_url, db_pgbouncer=True, db_statement_timeout_ms=12345)
    assert "SET LOCAL statement_timeout = 12345" in begin_statement(behind)


async def test_too_many_arguments_is_internal_not_unavailable(database_url, backend, caplog):
    """asyncpg's own InterfaceError for more than 32,767 arguments, raised for real: not a
    lost connection (no resend), not UNAVAILABLE, and logged bounded."""
    if backend != "postgres":
        pytest.skip("asyncpg is PostgreSQL's driver")
    connection = await asyncpg.connect(driver_url(database_url), timeout=10)
    try:
        placeholders = ", ".join(f"${n}" for n in range(1, 40_001))
        with pytest.raises(asyncpg.InterfaceError) as raised:
            await connection.fetch(f"SELECT x FROM unnest(ARRAY[{placeholders}]::text[]) x", *["v" * 30] * 40_000)
    finally:
        await connection.close()
    assert not is_connection_lost(raised.value)
    with caplog.at_level(logging.ERROR, logger="flowrun.errors"):
        status = to_grpc_status(raised.value, "/m")
    assert status.code == grpc.StatusCode.INTERNAL


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("the number of query arguments cannot exceed 32767"),
        asyncpg.InterfaceError("the server expects 1 argument for this query, 2 were passed"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.DataError("invalid input for query argument $1: 'x' (an integer is required)"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        StatementTimedOut(100, write=True),
    ],
    ids=["too-many-arguments", "argument-count", "operation-in-progress", "data-error", "57014", "timed-out"],
)
def test_client_side_errors_and_timeouts_are_not_a_lost_connection(error):
    assert not is_connection_lost(error)
    assert to_grpc_status(error, "/m").code != grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError("network is unreachable"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ],
    ids=["does-not-exist", "state-closed", "check-open", "reset", "os-error", "admin-shutdown"],
)
def test_a_lost_connection_is_still_one(error):
    assert is_connection_lost(error)
    assert to_grpc_status(error, "/m").code == grpc.StatusCode.UNAVAILABLE


def test_a_statement_timeout_maps_to_deadline_exceeded_with_its_timeout():
    status = to_grpc_status(StatementTimedOut(2500, write=False), "/m")
    assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "2500 ms" in status.details and "nothing was written" not in status.details
    assert "nothing was written" in to_grpc_status(StatementTimedOut(2500, write=True), "/m").details


def test_the_error_log_line_is_bounded_whatever_the_statement(caplog):
    """A driver error's text carries its statement and parameters: 1.2 MB of them here."""
    huge = RuntimeError("[SQL: SELECT " + "$1, " * 300_000 + "]")
    with caplog.at_level(logging.WARNING, logger="flowrun.errors"):
        assert to_grpc_status(huge, "/m").code == grpc.StatusCode.INTERNAL
        lost = ConnectionResetError("reset: " + "x" * 1_000_000)
        assert to_grpc_status(lost, "/m").code == grpc.StatusCode.UNAVAILABLE
    formatter = logging.Formatter("%(message)s")
    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) == 2
    assert all(len(line) < MAX_LOGGED_TRACEBACK + 1000 for line in lines), [len(line) for line in lines]
    assert "RuntimeError: [SQL: SELECT $1" in lines[0] and "characters not shown" in lines[0]
    assert caplog.records[0].exc_info  # still an error with its traceback, for handlers that look
    as_json = JsonFormatter().format(caplog.records[0])
    assert len(as_json) < MAX_LOGGED_TRACEBACK + 1000 and "characters not shown" in as_json


async def test_a_resent_write_that_times_out_has_an_unknown_outcome():
    """The first attempt of a resent one-statement write may still be running and about to
    commit: "nothing was written" would be a lie (UNAVAILABLE, outcome unknown)."""
    with pytest.raises(ConnectionError, match="outcome is unknown"):
        async with unlocked._resent():
            raise StatementTimedOut(100, write=True)


def test_the_statement_timeout_setting_is_validated(monkeypatch):
    assert Settings().db_statement_timeout_ms == 30_000
    monkeypatch.setenv("FLOWRUN_DB_STATEMENT_TIMEOUT_MS", "0")
    assert Settings().db_statement_timeout_ms == 0  # off
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings(db_statement_timeout_ms=-1)
    postgres = "postgresql+asyncpg://postgres@127.0.0.1:5432/any"
    with pytest.raises(ValidationError, match="more than lock_timeout_ms"):
        Settings(database_url=postgres, lock_timeout_ms=10_000, db_statement_timeout_ms=5_000)
    assert Settings(database_url=postgres, lock_timeout_ms=0, db_statement_timeout_ms=5).db_statement_timeout_ms == 5
    # SQLite applies neither: a lock timeout kept from before the setting existed still starts.
    sqlite = Settings(database_url="sqlite+aiosqlite:///x.db", lock_timeout_ms=60_000, db_statement_timeout_ms=30_000)
    assert (sqlite.lock_timeout_ms, sqlite.db_statement_timeout_ms) == (60_000, 30_000)


async def test_migrations_run_without_the_requests_timeouts(database_url, backend, monkeypatch):
    """A migration may rewrite or index every row, for longer than any request may take:
    neither statement_timeout nor lock_timeout applies to it (an upgraded server would
    otherwise fail to start on a large database, every replica alike)."""
    if backend == "sqlite":
        pytest.skip("SQLite has neither timeout")
    seen: list[tuple[str, str]] = []

    def slow_upgrade(connection) -> None:  # stands in for a long migration step
        connection.exec_driver_sql("SELECT pg_sleep(0.3)")
        timeouts = connection.exec_driver_sql(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
        )
        seen.append(tuple(timeouts.one()))

    monkeypatch.setattr(migrate_module, "_upgrade", slow_upgrade)
    database = Database(create_engine(settings_for(database_url, db_statement_timeout_ms=100, lock_timeout_ms=50)))
    try:
        await migrate_module.migrate(database)
    finally:
        await database.dispose()
    assert seen == [("0", "0")]
