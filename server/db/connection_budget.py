"""How many PostgreSQL connections one replica may open, and whether the database has them.

FLOWRUN_DB_MAX_CONNECTIONS is the budget of a whole replica: with `--workers N` each
worker gets floor(budget / N) connections, and its pool (pool_size kept open, plus up to
max_overflow more under load) is sized to fit that share, so N x (pool_size +
max_overflow) never exceeds the budget:

- neither FLOWRUN_DB_POOL_SIZE nor FLOWRUN_DB_MAX_OVERFLOW set: pool_size = min(20, share),
  max_overflow = share - pool_size;
- one of them set: the other is the rest of the share;
- both set: used as they are, and they must fit in the share.

A configuration that cannot fit (a share below the least a worker needs, a pool size or
overflow larger than the share) is refused with a message that says what to change.
Without a budget the pool is as configured (default 20 + 10 per worker).

The least a worker needs: on PostgreSQL the watch hub (server/watch/hub.py) holds one
pooled connection for its LISTEN while the process has watch streams, so a worker needs
that one plus one for calls; behind pgbouncer the hub polls instead and one connection will do.

With metrics on (FLOWRUN_METRICS_PORT), the process that serves /metrics (the single
process, or the supervisor of `--workers`) keeps one more connection of its own, outside
the pools, to read the deployment slots at scrape time (server/metrics_export.py
SlotCollector): it is taken off the budget before the share is split, and counted in the
start-up check.

At start, on PostgreSQL, workers x (pool_size + max_overflow) must fit in max_connections
less superuser_reserved_connections and reserved_connections (PostgreSQL 16+): a server
whose pools could ask for more would fail under load with "too many clients" instead of
at start. This sees one replica only: keeping the sum over replicas (plus anything else
connecting) within the database's limit is the operator's part (README: Scaling out).
Behind pgbouncer (FLOWRUN_DB_PGBOUNCER) the check is skipped: the server's connections go
to pgbouncer, whose own pool sizes bound what reaches PostgreSQL."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from flowrun.server.config import Settings

log = logging.getLogger("flowrun.db")

DEFAULT_POOL_SIZE = Settings.model_fields["db_pool_size"].default


def least_per_worker(settings: Settings) -> int:
    """The fewest pooled connections a worker can serve with (see the module's docstring)."""
    return 1 if settings.db_pgbouncer else 2


class ConnectionBudgetError(Exception):
    """Pool settings that contradict each other or do not fit the database."""


@dataclass(frozen=True)
class Pool:
    """One worker's pool: connections kept open, and how many more it may open under load."""

    size: int
    overflow: int

    @property
    def most(self) -> int:
        return self.size + self.overflow

    def describe(self) -> str:
        return f"pool {self.size} + overflow {self.overflow}"


def outside_pools(settings: Settings) -> int:
    """Connections a replica keeps besides its workers' pools: the slot collector's, with
    metrics on."""
    return 1 if settings.metrics_port is not None else 0


def metrics_note(settings: Settings) -> str:
    return " (less 1 for metrics)" if outside_pools(settings) else ""


def pool_per_worker(settings: Settings, workers: int) -> Pool:
    """Each worker's pool (see the module's docstring for the rules)."""
    size, overflow = settings.db_pool_size, settings.db_max_overflow
    budget = settings.db_max_connections
    least = least_per_worker(settings)
    if budget is None:
        if size + overflow < least:
            raise ConnectionBudgetError(
                f"FLOWRUN_DB_POOL_SIZE={size} + FLOWRUN_DB_MAX_OVERFLOW={overflow} is less than the {least} "
                "connections a worker needs (one stays with the watch hub's LISTEN)"
            )
        return Pool(size, overflow)
    share = (budget - outside_pools(settings)) // workers
    if share < least:
        raise ConnectionBudgetError(
            f"FLOWRUN_DB_MAX_CONNECTIONS={budget}{metrics_note(settings)} over {workers} worker(s) leaves {share} "
            "connection(s) per worker, "
            f"less than the {least} each needs (one stays with the watch hub's LISTEN); raise it or run fewer workers"
        )
    where = (
        f"FLOWRUN_DB_MAX_CONNECTIONS={budget}{metrics_note(settings)} over {workers} worker(s) leaves {share} "
        "connection(s) per worker"
    )
    size_set = "db_pool_size" in settings.model_fields_set
    overflow_set = "db_max_overflow" in settings.model_fields_set
    if size_set and overflow_set:
        if size + overflow > share:
            raise ConnectionBudgetError(
                f"{where}, but FLOWRUN_DB_POOL_SIZE={size} + FLOWRUN_DB_MAX_OVERFLOW={overflow} = {size + overflow}; "
                "lower them, or unset them to size the pool from the budget"
            )
        return Pool(size, overflow)
    if size_set:
        if size > share:
            raise ConnectionBudgetError(f"{where}, less than FLOWRUN_DB_POOL_SIZE={size}")
        return Pool(size, share - size)
    if overflow_set:
        if overflow >= share:
            raise ConnectionBudgetError(
                f"{where}, not more than FLOWRUN_DB_MAX_OVERFLOW={overflow} (the pool needs at least one besides)"
            )
        return Pool(share - overflow, overflow)
    size = min(DEFAULT_POOL_SIZE, share)
    return Pool(size, share - size)


def sized_for(settings: Settings, workers: int) -> Settings:
    """`settings` with each worker's pool sized from the budget (the same settings when
    there is none). Raises ConnectionBudgetError for pools that cannot serve or fit."""
    if settings.is_sqlite:
        return settings
    pool = pool_per_worker(settings, workers)
    if settings.db_max_connections is None:
        return settings
    return settings.model_copy(update={"db_pool_size": pool.size, "db_max_overflow": pool.overflow})


@dataclass(frozen=True)
class Capacity:
    """PostgreSQL's connection limit and what it keeps back from ordinary roles."""

    max_connections: int
    superuser_reserved: int
    reserved: int  # reserved_connections (pg_use_reserved_connections), PostgreSQL 16+; else 0

    @property
    def available(self) -> int:
        return self.max_connections - self.superuser_reserved - self.reserved

    def describe(self) -> str:
        return (
            f"max_connections {self.max_connections} - superuser_reserved_connections {self.superuser_reserved}"
            f" - reserved_connections {self.reserved}"
        )


async def read_capacity(database_url: str) -> Capacity:
    """The server's settings, read the way SHOW reads them (current_setting; a setting this
    version lacks reads as 0), on a connection of its own."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT current_setting('max_connections')::int,"
                        " current_setting('superuser_reserved_connections')::int,"
                        " coalesce(current_setting('reserved_connections', true), '0')::int"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return Capacity(*row)


async def check_capacity(settings: Settings, workers: int) -> None:
    """Raises ConnectionBudgetError if this replica's pools could ask PostgreSQL for more
    connections than it gives ordinary roles. Nothing to check on SQLite or behind
    pgbouncer; a database that cannot be reached now is left to the start-up that follows
    (which reports it as it always has)."""
    if settings.is_sqlite or settings.db_pgbouncer:
        return
    pool = Pool(settings.db_pool_size, settings.db_max_overflow)
    try:
        capacity = await read_capacity(settings.database_url)
    except (OSError, DBAPIError) as exc:
        log.warning("could not read PostgreSQL's max_connections to check the pool sizes: %s", exc)
        return
    extra = outside_pools(settings)
    needed = workers * pool.most + extra
    if needed > capacity.available:
        raise ConnectionBudgetError(
            f"{workers} worker(s) x {pool.most} connections ({pool.describe()})"
            f"{f' + {extra} for metrics' if extra else ''} = {needed} is more than PostgreSQL "
            f"allows: {capacity.describe()} = {capacity.available}; set FLOWRUN_DB_MAX_CONNECTIONS to at most "
            f"{capacity.available} (less what other replicas use), or lower the pool or the workers"
        )
    log.info(
        "connections: %d worker(s) x %d (%s) + %d for metrics = %d of PostgreSQL's %d",
        workers,
        pool.most,
        pool.describe(),
        extra,
        needed,
        capacity.available,
    )
