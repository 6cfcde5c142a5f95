"""The connection budget (server/db/connection_budget.py): FLOWRUN_DB_MAX_CONNECTIONS is
split over the workers so that workers x (pool size + overflow) never exceeds it,
contradicting settings are refused with a message saying what to change, and a server
whose pools could ask PostgreSQL for more connections than it gives ordinary roles
refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowrun.server.config import Settings
from flowrun.server.db.connection_budget import (
    Capacity,
    ConnectionBudgetError,
    Pool,
    check_capacity,
    pool_per_worker,
    read_capacity,
    sized_for,
)
from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers.servers import REPO

POSTGRES = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://", 1)


def settings(**values) -> Settings:
    return Settings(database_url=POSTGRES, **values)


@pytest.mark.parametrize(
    ("values", "workers", "pool"),
    [
        ({}, 4, Pool(20, 10)),  # no budget: as configured, per worker
        ({"db_pool_size": 5, "db_max_overflow": 2}, 8, Pool(5, 2)),
        ({"db_max_connections": 100}, 1, Pool(20, 80)),  # the pool keeps 20 open, overflow is the rest
        ({"db_max_connections": 100}, 4, Pool(20, 5)),
        ({"db_max_connections": 100}, 8, Pool(12, 0)),  # floor(100 / 8): 4 connections stay unused
        ({"db_max_connections": 6}, 3, Pool(2, 0)),  # the least on PostgreSQL: LISTEN + one for calls
        ({"db_max_connections": 3, "db_pgbouncer": True}, 3, Pool(1, 0)),  # behind pgbouncer: no LISTEN
        ({"db_max_connections": 40, "db_pool_size": 4}, 4, Pool(4, 6)),
        ({"db_max_connections": 40, "db_max_overflow": 4}, 4, Pool(6, 4)),
        ({"db_max_connections": 40, "db_pool_size": 4, "db_max_overflow": 2}, 4, Pool(4, 2)),  # fewer is fine
        ({"db_max_connections": 40, "db_pool_size": 5, "db_max_overflow": 5}, 4, Pool(5, 5)),  # exactly fits
    ],
)
def test_each_workers_pool_fits_its_share(values, workers, pool):
    assert pool_per_worker(settings(**values), workers) == pool
    assert workers * pool.most <= values.get("db_max_connections", workers * pool.most)


@pytest.mark.parametrize(
    ("values", "workers", "message"),
    [
        ({"db_max_connections": 3, "db_pgbouncer": True}, 4, "leaves 0 connection(s) per worker, less than the 1"),
        ({"db_max_connections": 7}, 4, "leaves 1 connection(s) per worker, less than the 2 each needs"),
        ({"db_pool_size": 1, "db_max_overflow": 0}, 1, "is less than the 2 connections a worker needs"),
        (
            {"db_max_connections": 40, "db_pool_size": 6, "db_max_overflow": 5},
            4,
            "leaves 10 connection(s) per worker, but FLOWRUN_DB_POOL_SIZE=6 + FLOWRUN_DB_MAX_OVERFLOW=5 = 11",
        ),
        ({"db_max_connections": 40, "db_pool_size": 11}, 4, "less than FLOWRUN_DB_POOL_SIZE=11"),
        ({"db_max_connections": 40, "db_max_overflow": 10}, 4, "not more than FLOWRUN_DB_MAX_OVERFLOW=10"),
    ],
)
def test_contradictions_are_refused(values, workers, message):
    with pytest.raises(ConnectionBudgetError) as refused:
        pool_per_worker(settings(**values), workers)
    assert message in str(refused.value)


def test_the_budget_reaches_the_workers_settings():
    sized = sized_for(settings(db_max_connections=24), 3)
    assert (sized.db_pool_size, sized.db_max_overflow) == (8, 0)
    unbudgeted = settings()
    assert sized_for(unbudgeted, 3) is unbudgeted
    sqlite = Settings(database_url="sqlite+aiosqlite:///x.db", db_max_connections=1)
    assert sized_for(sqlite, 4) is sqlite  # SQLite has no connection limit to keep


async def test_capacity_is_read_from_postgresql():
    capacity = await read_capacity(POSTGRES)
    assert capacity.max_connections > 0 and capacity.superuser_reserved >= 0 and capacity.reserved >= 0
    assert capacity.available == capacity.max_connections - capacity.superuser_reserved - capacity.reserved


async def test_pools_that_would_exceed_postgresql_are_refused():
    capacity = await read_capacity(POSTGRES)
    fits = settings(db_pool_size=capacity.available // 2, db_max_overflow=0)
    await check_capacity(fits, 2)
    with pytest.raises(ConnectionBudgetError) as refused:
        await check_capacity(fits, 3)
    assert f"= {capacity.available}; set FLOWRUN_DB_MAX_CONNECTIONS to at most {capacity.available}" in str(
        refused.value
    )
    # Behind pgbouncer the server sees pgbouncer's limits, not PostgreSQL's: no check.
    await check_capacity(fits.model_copy(update={"db_pgbouncer": True}), 3)


def test_with_metrics_on_the_slot_collectors_connection_comes_off_the_budget():
    # 25 over 3 workers leaves 8 each; the scraping process's own connection leaves 24, still 8 each ...
    assert pool_per_worker(settings(db_max_connections=25, metrics_port=9090), 3).most == 8
    # ... but with 24, 23 remain: 7 each, so 3 x 7 + 1 = 22 <= 24.
    assert pool_per_worker(settings(db_max_connections=24), 3).most == 8
    assert pool_per_worker(settings(db_max_connections=24, metrics_port=9090), 3).most == 7
    with pytest.raises(ConnectionBudgetError) as refused:
        pool_per_worker(settings(db_max_connections=4, metrics_port=9090), 2)
    assert "FLOWRUN_DB_MAX_CONNECTIONS=4 (less 1 for metrics) over 2 worker(s) leaves 1" in str(refused.value)


async def test_the_capacity_check_counts_the_metrics_connection():
    capacity = await read_capacity(POSTGRES)
    exactly = settings(db_pool_size=capacity.available, db_max_overflow=0)  # one worker takes every connection
    await check_capacity(exactly, 1)
    with pytest.raises(ConnectionBudgetError) as refused:
        await check_capacity(exactly.model_copy(update={"metrics_port": 9090}), 1)
    assert "+ 1 for metrics" in str(refused.value)


def test_the_capacity_message_names_every_term():
    assert Capacity(100, 3, 2).describe() == (
        "max_connections 100 - superuser_reserved_connections 3 - reserved_connections 2"
    )
    assert Capacity(100, 3, 2).available == 95


def run_server(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FLOWRUN_PORT": "0", "FLOWRUN_DATABASE_URL": POSTGRES, **env}
    return subprocess.run(
        [sys.executable, "-m", "flowrun.server"], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLOWRUN_WORKERS": "2", "FLOWRUN_DB_POOL_SIZE": "100000"}, "is more than PostgreSQL allows"),
        ({"FLOWRUN_WORKERS": "2", "FLOWRUN_DB_MAX_CONNECTIONS": "3"}, "less than the 2 each needs"),
    ],
)
def test_a_server_that_does_not_fit_refuses_to_start(env, says):
    """One line on stderr, a non-zero exit, and nothing started (no worker, no migration)."""
    result = run_server(**env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("flowrun-server: error: ") and says in last, result.stderr
    assert "Traceback" not in result.stderr
