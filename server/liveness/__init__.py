"""The server's liveness sweeps: background services that change runs nobody else will.

- zombies: a RUNNING run whose heartbeat deadline passed is proposed CRASHED.
- late_runs: a Scheduled run FLOWRUN_LATE_RUNS_AFTER_SECONDS past its time is marked Late.
- pause_expirations: a PAUSED run whose pause timed out is failed.

Each runs in every process (FLOWRUN_SERVICES picks which) and changes a run only through
transitions.set_state, in a transaction of its own, with the run claimed and the state
the sweep read as the expected one (server/liveness/sweeper.py)."""

from __future__ import annotations

from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.liveness.late_runs import MarkLateRuns
from flowrun.server.liveness.pause_expirations import FailExpiredPauses
from flowrun.server.liveness.sweeper import Sweep, Sweeper
from flowrun.server.liveness.zombies import CrashZombies

__all__ = ["Sweep", "Sweeper", "sweepers"]


def sweepers(database: Database, settings: Settings) -> list[Sweeper]:
    """The sweeps FLOWRUN_SERVICES switches on, each with its interval; not started."""
    every: list[tuple[Sweep, float]] = [
        (CrashZombies(settings), settings.zombies_interval_seconds),
        (MarkLateRuns(settings), settings.late_runs_interval_seconds),
        (FailExpiredPauses(settings), settings.pause_expirations_interval_seconds),
    ]
    enabled = settings.enabled_services
    return [
        Sweeper(database, sweep, interval=interval, batch_size=settings.services_batch_size)
        for sweep, interval in every
        if sweep.name in enabled
    ]
