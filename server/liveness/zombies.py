"""The zombie sweep: a RUNNING run whose heartbeat deadline passed is proposed CRASHED.

The process that ran it is presumed dead (killed, evicted, its machine lost): nobody
else will report a final state, and until then the run holds its concurrency slot. The
proposal goes through the core policy like any SetFlowRunState (so the slot is released
and the run's bookkeeping is kept), only while the run is still in the RUNNING state the
sweep read and no heartbeat moved its deadline since: a run that completed, failed or
was cancelled an instant earlier, or that heartbeat in time, is never touched."""

from __future__ import annotations

from datetime import datetime

from flowrun.server.config import Settings
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.context import TransitionResult
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.repositories import Repositories
from flowrun.server.repositories.liveness import Candidate, Position, Silence, continuation


def crash_message(silence: Silence) -> str:
    """The crash message, "No heartbeat since <time>": the last heartbeat, or when the
    run entered RUNNING if none came since."""
    since = silence.running_since
    if silence.last_heartbeat_time is not None and (since is None or silence.last_heartbeat_time > since):
        since = silence.last_heartbeat_time
    when = since.isoformat() if since is not None else "the run started"
    return (
        f"No heartbeat since {when} (heartbeat timeout {silence.heartbeat_timeout_seconds} s): "
        "the process running the flow run is presumed dead."
    )


class CrashZombies:
    name = "zombies"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def candidates(
        self, repos: Repositories, now: datetime, after: Position | None, limit: int
    ) -> tuple[list[Candidate], Position | None]:
        batch = await repos.liveness.silent_runs(now, after, limit)
        return batch, continuation(batch, limit)

    async def act(self, repos: Repositories, candidate: Candidate, now: datetime) -> TransitionResult | None:
        silence = await repos.liveness.claim_silent(candidate.run_id, candidate.state_id, now)
        if silence is None:
            return None
        crashed = State(type=StateType.CRASHED, name="Crashed", timestamp=now, message=crash_message(silence))
        return await set_state(
            repos,
            FLOW_RUNS,
            candidate.run_id,
            crashed,
            now,
            force=False,
            settings=self._settings,
            expected_state_id=candidate.state_id,
        )
