"""Retention: events older than FLOWRUN_EVENT_RETENTION are deleted in the background,
every FLOWRUN_EVENT_PRUNE_INTERVAL_SECONDS, by every replica (deleting a prefix twice
is harmless). A cursor before what was deleted then gets OUT_OF_RANGE.

A pass deletes in batches of PRUNE_BATCH events, oldest first, each its own short
transaction (a week of a busy server's events in one would hold its locks and WAL for
long): each batch moves the horizon to its last event in the same transaction, so the
horizon only moves forward and a reader that finds events missing finds the horizon
past them too (server/watch/stream.py checks it after each read)."""

from __future__ import annotations

import logging

from flowrun.server import clock
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.periodic import Periodic

log = logging.getLogger("flowrun.watch")

#: Events deleted per transaction.
PRUNE_BATCH = 5_000


async def prune_events(database: Database, settings: Settings, *, batch_size: int = PRUNE_BATCH) -> int:
    """One pass: deletes the events that expired by its start, batch by batch, and
    returns how many."""
    before = clock.now() - settings.event_retention
    async with database.unit_of_work(write=False) as uow:
        through = await uow.repos.flow_run_events.last_expired(before)
    deleted = 0
    while through is not None:
        async with database.unit_of_work(write=True) as uow:
            batch = await uow.repos.flow_run_events.prune(through, batch_size)
        deleted += batch
        if batch < batch_size:
            break
    if deleted:
        log.info("deleted %d flow-run events older than %s", deleted, settings.event_retention)
    return deleted


def event_pruner(database: Database, settings: Settings) -> Periodic:
    return Periodic("event-retention", settings.event_prune_interval_seconds, lambda: prune_events(database, settings))
