"""Flow runs and their retry/pause policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowrun.server.domain.states import State, StateType, estimated_run_time


@dataclass(slots=True)
class FlowRunPolicy:
    """The run's empirical policy (JSON column). retry_delay is in seconds."""

    max_retries: int = 0
    retry_delay_seconds: float = 0.0
    retries: int | None = None
    retry_delay: float | None = None
    pause_keys: list[str] = field(default_factory=list)
    resuming: bool = False
    retry_type: str | None = None  # "in_process" | "reschedule" | None

    def __post_init__(self) -> None:
        # Deprecated aliases, applied the way the reference validates them.
        if not self.retries and self.max_retries:
            self.retries = self.max_retries
        if not self.retry_delay and self.retry_delay_seconds:
            self.retry_delay = self.retry_delay_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "pause_keys": list(self.pause_keys),
            "resuming": self.resuming,
            "retry_type": self.retry_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FlowRunPolicy:
        data = data or {}
        return cls(
            max_retries=data.get("max_retries") or 0,
            retry_delay_seconds=data.get("retry_delay_seconds") or 0.0,
            retries=data.get("retries"),
            retry_delay=data.get("retry_delay"),
            pause_keys=list(data.get("pause_keys") or []),
            resuming=bool(data.get("resuming")),
            retry_type=data.get("retry_type"),
        )


@dataclass(slots=True)
class FlowRun:
    """A flow run row plus its current state. Orchestration mutates it in place and the
    repository writes the changed columns back."""

    id: str
    created: datetime
    updated: datetime
    flow_id: str
    name: str
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
    deployment_id: str | None = None
    deployment_version: str | None = None
    work_queue_name: str | None = None
    work_queue_id: str | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    empirical_policy: FlowRunPolicy = field(default_factory=FlowRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] | None = None
    created_by: dict[str, Any] | None = None
    infrastructure_pid: str | None = None
    job_variables: dict[str, Any] | None = None
    infrastructure_document_id: str | None = None
    parent_task_run_id: str | None = None
    auto_scheduled: bool = False
    work_pool_id: str | None = None
    work_pool_name: str | None = None
    state: State | None = None
    # Liveness: the heartbeat timeout (None: off), the last heartbeat, and while RUNNING
    # with a timeout the time after which the zombie sweep crashes the run.
    heartbeat_timeout_seconds: int | None = None
    last_heartbeat_time: datetime | None = None
    heartbeat_deadline: datetime | None = None

    def estimated_run_time(self, now: datetime) -> timedelta:
        return estimated_run_time(self.total_run_time, self.state_type, self.state_timestamp, now)

    def estimated_start_time_delta(self, now: datetime) -> timedelta:
        expected = self.expected_start_time
        if expected is None:
            return timedelta(0)
        if self.start_time is not None:
            return max(self.start_time - expected, timedelta(0))
        terminal = self.state_type is not None and self.state_type.is_terminal
        if not terminal and expected < now:
            return now - expected
        return timedelta(0)


@dataclass(slots=True)
class FlowRunCreate:
    flow_id: str
    name: str | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    parent_task_run_id: str | None = None
    infrastructure_document_id: str | None = None
    empirical_policy: FlowRunPolicy = field(default_factory=FlowRunPolicy)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None
    deployment_id: str | None = None
    state: State | None = None
    # Queues the run in this pool: on work_queue_name there, or the pool's default queue.
    work_pool_name: str | None = None
    # None: the deployment's heartbeat timeout, else the server default; 0: off.
    heartbeat_timeout_seconds: int | None = None
