"""Background garbage collection of expired concurrency leases.

An expired lease already frees its slot (slots are counted from unexpired leases); the
reaper only deletes the rows, so a run abandoned in PENDING or CANCELLING leaves nothing
behind. One loop per process: a pass finishes before the next sleep starts, so passes
never overlap, and replicas deleting the same rows concurrently is harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server import clock
from server.db.unit_of_work import Database

log = logging.getLogger("flowrun.lease_reaper")
BATCH = 1_000


class LeaseReaper:
    def __init__(self, database: Database, interval_seconds: float) -> None:
        self._database = database
        self._interval = interval_seconds
        self._task: asyncio.Task | None = None

    async def reap_once(self) -> int:
        """Deletes expired leases in batches; the number deleted."""
        total = 0
        while True:
            async with self._database.unit_of_work(write=True) as uow:
                deleted = await uow.repos.leases.delete_expired(clock.now(), BATCH)
            total += deleted
            if deleted < BATCH:
                return total

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="flowrun-lease-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                deleted = await self.reap_once()
            except Exception:  # the database may be briefly away; try again next time
                log.warning("lease reaping failed", exc_info=True)
            else:
                if deleted:
                    log.info("deleted %d expired concurrency leases", deleted)
