"""States, their types and details (Prefect's State / StateCreate / StateDetails)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    @property
    def default_name(self) -> str:
        return self.value.replace("_", " ").title().replace(" ", "")

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})

_DATETIME_DETAILS = ("scheduled_time", "cache_expiration", "pause_timeout")


@dataclass(slots=True)
class StateDetails:
    """Bookkeeping attached to a state. Empty strings and None both mean "not set"."""

    flow_run_id: str | None = None
    task_run_id: str | None = None
    child_flow_run_id: str | None = None
    scheduled_time: datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    deferred: bool = False
    untrackable_result: bool = False
    pause_timeout: datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: str | None = None
    task_parameters_id: str | None = None
    traceparent: str | None = None
    deployment_concurrency_lease_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON stored in the state_details column: set fields only."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> StateDetails:
        details = cls()
        if not data:
            return details
        for key, value in data.items():
            if key in _DATETIME_DETAILS and isinstance(value, str):
                value = datetime.fromisoformat(value)
            if hasattr(details, key):
                setattr(details, key, value)
        return details

    def copy(self) -> StateDetails:
        clone = StateDetails()
        for f in fields(self):
            setattr(clone, f.name, getattr(self, f.name))
        if self.run_input_keyset is not None:
            clone.run_input_keyset = dict(self.run_input_keyset)
        return clone


def is_persisted_data(data: Any) -> bool:
    """Whether a state's data is stored: any JSON value except null and an
    {"type": "unpersisted"} placeholder (which is only echoed in the response)."""
    if data is None:
        return False
    return not (isinstance(data, dict) and data.get("type") == "unpersisted")


def has_persisted_result(data: Any) -> bool:
    """Orchestration's stricter notion, used to protect a COMPLETED run's result: only
    a non-empty JSON object that is not an {"type": "unpersisted"} placeholder counts
    (result metadata is always an object; a bare string or number does not)."""
    return bool(data) and isinstance(data, dict) and data.get("type") != "unpersisted"


@dataclass(slots=True)
class State:
    """One entry of a run's state history (also a proposal once stamped)."""

    type: StateType
    name: str
    timestamp: datetime
    id: str = field(default_factory=lambda: str(new_state_id()))
    message: str | None = None
    data: Any = None
    state_details: StateDetails = field(default_factory=StateDetails)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_STATES

    def fresh_copy(self, timestamp: datetime) -> State:
        """A new state (new id and timestamp) with the same content."""
        return State(
            type=self.type,
            name=self.name,
            timestamp=timestamp,
            message=self.message,
            data=self.data,
            state_details=self.state_details.copy(),
        )


def new_state_id() -> uuid.UUID:
    """UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids are
    time-ordered like Prefect's state ids. (uuid.uuid7 arrives only in Python 3.14.)"""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)


def estimated_run_time(
    total_run_time: float, state_type: StateType | None, state_timestamp: datetime | None, now: datetime
) -> timedelta:
    """Time spent running: the finished stretches plus, while RUNNING, the current one."""
    total = timedelta(seconds=total_run_time)
    if state_type == StateType.RUNNING and state_timestamp is not None:
        total += now - state_timestamp
    return total
