"""Task runs as seen from their flow run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from server.domain.states import State, StateType


@dataclass(slots=True)
class TaskRunDependency:
    id: str
    name: str
    upstream_task_run_ids: list[str]
    state: State | None
    expected_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    total_run_time: float
    state_type: str | None
    state_timestamp: datetime | None

    def estimated_run_time(self, now: datetime) -> timedelta:
        total = timedelta(seconds=self.total_run_time)
        if self.state_type == StateType.RUNNING and self.state_timestamp is not None:
            total += now - self.state_timestamp
        return total

    @property
    def untrackable_result(self) -> bool:
        return bool(self.state and self.state.state_details.untrackable_result)
