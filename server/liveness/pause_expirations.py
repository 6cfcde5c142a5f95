"""The pause-expirations sweep, as the reference's FailExpiredPauses service: a PAUSED
run whose pause_timeout passed can no longer resume, so it is failed ("The flow was
paused and never resumed."), forced like the reference does (the minimal policy and the
bookkeeping apply), and only while it is still in the pause the sweep read."""

from __future__ import annotations

from datetime import datetime

from flowrun.server.config import Settings
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.context import TransitionResult
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.repositories import Repositories
from flowrun.server.repositories.liveness import Candidate, Position, continuation

NEVER_RESUMED = "The flow was paused and never resumed."


class FailExpiredPauses:
    name = "pause_expirations"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def candidates(
        self, repos: Repositories, now: datetime, after: Position | None, limit: int
    ) -> tuple[list[Candidate], Position | None]:
        """The paused runs of one read whose pause timed out before `now`. The pass
        continues after the last paused run read, expired or not, so it reads every
        paused run once."""
        page = await repos.liveness.paused_runs(after, limit)
        expired = [run for run in page if run.when is not None and run.when < now]
        return expired, continuation(page, limit)

    async def act(self, repos: Repositories, candidate: Candidate, now: datetime) -> TransitionResult | None:
        if not await repos.liveness.claim(candidate.run_id, candidate.state_id):
            return None
        failed = State(type=StateType.FAILED, name="Failed", timestamp=now, message=NEVER_RESUMED)
        return await set_state(
            repos,
            FLOW_RUNS,
            candidate.run_id,
            failed,
            now,
            force=True,
            settings=self._settings,
            expected_state_id=candidate.state_id,
        )
