"""Retention: events older than FLOWRUN_EVENT_RETENTION are deleted in the background,
every FLOWRUN_EVENT_PRUNE_INTERVAL_SECONDS, by every replica (deleting a prefix twice
is harmless). A cursor before what was deleted then gets OUT_OF_RANGE."""

from __future__ import annotations

import logging

from flowrun.server import clock
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.periodic import Periodic

log = logging.getLogger("flowrun.watch")


async def prune_events(database: Database, settings: Settings) -> int:
    """One pass: deletes the expired events and returns how many."""
    async with database.unit_of_work(write=True) as uow:
        deleted = await uow.repos.flow_run_events.prune(clock.now() - settings.event_retention)
    if deleted:
        log.info("deleted %d flow-run events older than %s", deleted, settings.event_retention)
    return deleted


def event_pruner(database: Database, settings: Settings) -> Periodic:
    return Periodic("event-retention", settings.event_prune_interval_seconds, lambda: prune_events(database, settings))
