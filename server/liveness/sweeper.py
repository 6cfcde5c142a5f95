"""One liveness sweep and the loop that runs it (on server/periodic.py, like the lease
reaper).

A pass reads candidates a batch at a time (FLOWRUN_SERVICES_BATCH_SIZE, in the sweep's
key order, continuing after the last one read, so it ends even when runs are skipped),
then acts on each candidate in a write transaction of its own: the sweep claims the run
(its row lock, only if free) and proposes through transitions.set_state with the state
it read as the expected one. So across any number of replicas each run is acted on by
one process, a run that changed meanwhile is left alone, and a sweep holds the lock of
one run at a time. A failure on one run is logged and the pass goes on; a failure to
read candidates ends the pass (Periodic logs it and tries again next interval)."""

from __future__ import annotations

import collections
import logging
from datetime import datetime
from typing import Protocol

from flowrun.server import clock
from flowrun.server.db.unit_of_work import Database
from flowrun.server.liveness.metrics import ACTIONS
from flowrun.server.orchestration.context import TransitionResult
from flowrun.server.periodic import Periodic
from flowrun.server.repositories import Repositories
from flowrun.server.repositories.liveness import Candidate, Position

log = logging.getLogger("flowrun.liveness")

SKIPPED = "skipped"
ERROR = "error"


class Sweep(Protocol):
    """What one sweep looks for and what it does to each run it finds."""

    #: Its FLOWRUN_SERVICES name and metrics label.
    name: str

    async def candidates(
        self, repos: Repositories, now: datetime, after: Position | None, limit: int
    ) -> tuple[list[Candidate], Position | None]:
        """Runs to act on as of `now`, from one read of up to `limit` runs in key order
        after `after`, and where the next read continues (None: that was the last)."""
        ...

    async def act(self, repos: Repositories, candidate: Candidate, now: datetime) -> TransitionResult | None:
        """Claims the run and proposes its new state; None when the claim failed (the run
        is locked by someone else or no longer qualifies)."""
        ...


class Sweeper:
    def __init__(self, database: Database, sweep: Sweep, *, interval: float, batch_size: int) -> None:
        self.sweep = sweep
        self._database = database
        self._batch_size = batch_size
        self._loop = Periodic(f"flowrun-{sweep.name}", interval, self._sweep_and_report)

    @property
    def name(self) -> str:
        return self.sweep.name

    async def sweep_once(self) -> collections.Counter[str]:
        """One pass over the runs that qualify now; how many ended which way (the
        orchestration status in lower case, "skipped" or "error")."""
        outcomes: collections.Counter[str] = collections.Counter()
        now = clock.now()
        after: Position | None = None
        while True:
            async with self._database.unit_of_work(write=False) as uow:
                batch, after = await self.sweep.candidates(uow.repos, now, after, self._batch_size)
            for candidate in batch:
                outcome = await self._act(candidate)
                outcomes[outcome] += 1
                ACTIONS.labels(self.name, outcome).inc()
            if after is None:
                return outcomes

    async def _act(self, candidate: Candidate) -> str:
        try:
            async with self._database.unit_of_work(write=True) as uow:
                result = await self.sweep.act(uow.repos, candidate, clock.now())
        except Exception:
            log.warning("%s: acting on flow run %s failed", self.name, candidate.run_id, exc_info=True)
            return ERROR
        if result is None:
            return SKIPPED
        return result.status.value.lower()

    async def _sweep_and_report(self) -> None:
        outcomes = await self.sweep_once()
        if outcomes:
            log.info("%s: %s", self.name, ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items())))

    def start(self) -> None:
        self._loop.start()

    @property
    def running(self) -> bool:
        return self._loop.running

    async def stop(self) -> None:
        await self._loop.stop()
