"""Task runs: one execution of a task inside a flow run, its retry policy and its inputs.

`task_inputs` keeps the stored JSON shape of the reference (spec 1.9): argument name ->
list of inputs, each a dict discriminated by "input_type":
{"input_type": "task_run", "id": ...}, {"input_type": "flow_run", "id": ...},
{"input_type": "parameter", "name": ...}, {"input_type": "constant", "type": ...}.
The key "__parents__" lists the task runs that enclose this one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from flowrun.server.domain.states import State, StateType, estimated_run_time

PARENTS_KEY = "__parents__"
TaskInputs = dict[str, list[dict[str, Any]]]


@dataclass(slots=True)
class TaskRunPolicy:
    """The task run's retry settings (JSON column). retry_delay is in seconds."""

    retries: int | None = None
    retry_delay: float | None = None
    retry_jitter_factor: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_jitter_factor": self.retry_jitter_factor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TaskRunPolicy:
        data = data or {}
        delay = data.get("retry_delay")
        if isinstance(delay, list):  # the reference allows one delay per retry
            delay = delay[0] if delay else None
        return cls(
            retries=data.get("retries"),
            retry_delay=delay,
            retry_jitter_factor=data.get("retry_jitter_factor"),
        )


@dataclass(slots=True)
class TaskRun:
    """A task run row plus its current state. Orchestration mutates the run columns in
    place (the same bookkeeping transforms as flow runs) and the repository writes the
    changed columns back."""

    id: str
    created: datetime
    updated: datetime
    name: str
    flow_run_id: str | None
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    flow_run_run_count: int = 0
    empirical_policy: TaskRunPolicy = field(default_factory=TaskRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] | None = None
    task_inputs: TaskInputs = field(default_factory=dict)
    state_type: StateType | None = None
    state_name: str | None = None
    state_timestamp: datetime | None = None
    state_id: str | None = None
    run_count: int = 0
    expected_start_time: datetime | None = None
    next_scheduled_start_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_run_time: float = 0.0
    state: State | None = None

    def estimated_run_time(self, now: datetime) -> timedelta:
        return estimated_run_time(self.total_run_time, self.state_type, self.state_timestamp, now)


@dataclass(slots=True)
class TaskRunCreate:
    flow_run_id: str
    task_key: str
    dynamic_key: str = ""
    name: str | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = field(default_factory=TaskRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    task_inputs: TaskInputs = field(default_factory=dict)
    state: State | None = None


class TaskRunSort(StrEnum):
    """ListTaskRuns orders; each ends with the id as a tie-breaker."""

    ID_DESC = "ID_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    NEXT_SCHEDULED_START_TIME_ASC = "NEXT_SCHEDULED_START_TIME_ASC"
    END_TIME_DESC = "END_TIME_DESC"


def upstream_task_run_ids(task_inputs: TaskInputs) -> list[str]:
    """The task runs a task run depends on: every input that names a task run, under
    any key, "__parents__" included; de-duplicated, first mention first. Parameters,
    constants and flow-run results are not task runs and are skipped."""
    upstream: dict[str, None] = {}
    for inputs in task_inputs.values():
        for item in inputs:
            if item.get("input_type") == "task_run" and item.get("id"):
                upstream[str(item["id"])] = None
    return list(upstream)
