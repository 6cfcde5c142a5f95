"""The late-runs sweep, as the reference's MarkLateRuns service: a run still in
Scheduled "Scheduled" FLOWRUN_LATE_RUNS_AFTER_SECONDS (15 s) after its scheduled time is
proposed Scheduled "Late" with the same scheduled time, under the reference's
MarkLateRunsPolicy (EnsureOnlyScheduledFlowsMarkedLate: only a Scheduled run, and only
once; EnforceDeploymentConcurrencyOnLate: a late run of a full CANCEL_NEW deployment is
cancelled instead). Runs waiting for a retry or a slot (other Scheduled names) are not
late."""

from __future__ import annotations

from datetime import datetime, timedelta

from flowrun.server.config import Settings
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.orchestration.context import TransitionResult
from flowrun.server.orchestration.liveness_rules import LATE
from flowrun.server.orchestration.policies import FLOW_RUNS, MARK_LATE_RUNS_POLICY
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.repositories import Repositories
from flowrun.server.repositories.liveness import Candidate, Position, continuation


class MarkLateRuns:
    name = "late_runs"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._after = timedelta(seconds=settings.late_runs_after_seconds)

    async def candidates(
        self, repos: Repositories, now: datetime, after: Position | None, limit: int
    ) -> tuple[list[Candidate], Position | None]:
        batch = await repos.liveness.late_runs(now - self._after, after, limit)
        return batch, continuation(batch, limit)

    async def act(self, repos: Repositories, candidate: Candidate, now: datetime) -> TransitionResult | None:
        if not await repos.liveness.claim(candidate.run_id, candidate.state_id):
            return None
        late = State(
            type=StateType.SCHEDULED,
            name=LATE,
            timestamp=now,
            state_details=StateDetails(scheduled_time=candidate.when),
        )
        return await set_state(
            repos,
            FLOW_RUNS,
            candidate.run_id,
            late,
            now,
            force=False,
            settings=self._settings,
            expected_state_id=candidate.state_id,
            policy=MARK_LATE_RUNS_POLICY,
        )
