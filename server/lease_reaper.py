"""Background garbage collection of expired concurrency leases.

An expired lease already frees its slot (slots are counted from unexpired leases); the
reaper only deletes the rows, so a run abandoned in PENDING or CANCELLING leaves nothing
behind. One loop per process: a pass finishes before the next sleep starts, so passes
never overlap, and replicas deleting the same rows concurrently is harmless."""

from __future__ import annotations

import logging

from flowrun.server import clock, metrics
from flowrun.server.db.unit_of_work import Database
from flowrun.server.periodic import Periodic

log = logging.getLogger("flowrun.lease_reaper")
BATCH = 1_000


class LeaseReaper:
    def __init__(self, database: Database, interval_seconds: float) -> None:
        self._database = database
        self._loop = Periodic("flowrun-lease-reaper", interval_seconds, self._reap_and_report)

    async def reap_once(self) -> int:
        """Deletes expired leases in batches; the number deleted."""
        total = 0
        while True:
            async with self._database.unit_of_work(write=True) as uow:
                deleted = await uow.repos.leases.delete_expired(clock.now(), BATCH)
            total += deleted
            if metrics.enabled:
                metrics.LEASES_REAPED.inc(deleted)
            if deleted < BATCH:
                return total

    async def _reap_and_report(self) -> None:
        deleted = await self.reap_once()
        if deleted:
            log.info("deleted %d expired concurrency leases", deleted)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
