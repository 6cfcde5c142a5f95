"""Flow-run events: what the outbox stores for each committed change of a run, and the
JSON its payload column holds (the run as read right after the change, and the state
it entered)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from flowrun.server.domain.flow_runs import FlowRun, FlowRunPolicy
from flowrun.server.domain.states import State, StateDetails, StateType


class EventKind(StrEnum):
    CREATED = "CREATED"
    STATE_CHANGED = "STATE_CHANGED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class FlowRunEvent:
    """One stored event. `sequence` is its place in the outbox (the cursor's position)."""

    sequence: int
    kind: EventKind
    occurred: datetime
    run: FlowRun
    state: State | None = None
    previous_state_type: StateType | None = None
    xid: int | None = None  # the writing transaction (PostgreSQL)


_RUN_TIMES = frozenset(
    f.name for f in fields(FlowRun) if f.type in ("datetime", "datetime | None")
)  # created, updated, state_timestamp, ...


def encode_payload(run: FlowRun, state: State | None, previous: StateType | None) -> str:
    """The payload column's JSON text."""
    return json.dumps(
        {"run": _run_json(run), "state": _state_json(state), "previous": previous.value if previous else None},
        separators=(",", ":"),
        default=_unsupported,
    )


def decode_payload(sequence: int, kind: str, occurred: datetime, payload: str, xid: int | None = None) -> FlowRunEvent:
    data = json.loads(payload)
    return FlowRunEvent(
        sequence=sequence,
        kind=EventKind(kind),
        occurred=occurred,
        run=_run_from_json(data["run"]),
        state=_state_from_json(data["state"]),
        previous_state_type=StateType(data["previous"]) if data.get("previous") else None,
        xid=xid,
    )


def _unsupported(value: Any) -> Any:
    if isinstance(value, datetime):  # inside free-form JSON (never expected)
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _run_json(run: FlowRun) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(run):
        value = getattr(run, f.name)
        if f.name == "state":
            value = _state_json(value)
        elif f.name == "empirical_policy":
            value = value.to_json()
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, StateType):
            value = value.value
        out[f.name] = value
    return out


def _run_from_json(data: dict[str, Any]) -> FlowRun:
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in _RUN_TIMES and value is not None:
            value = datetime.fromisoformat(value)
        values[name] = value
    values["state_type"] = StateType(data["state_type"]) if data.get("state_type") else None
    values["empirical_policy"] = FlowRunPolicy.from_json(data.get("empirical_policy"))
    values["state"] = _state_from_json(data.get("state"))
    known = {f.name for f in fields(FlowRun)}
    return FlowRun(**{name: value for name, value in values.items() if name in known})


def _state_json(state: State | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "id": str(state.id),
        "type": state.type.value,
        "name": state.name,
        "timestamp": state.timestamp.isoformat(),
        "message": state.message,
        "data": state.data,
        "state_details": state.state_details.to_json(),
    }


def _state_from_json(data: dict[str, Any] | None) -> State | None:
    if data is None:
        return None
    return State(
        id=data["id"],
        type=StateType(data["type"]),
        name=data["name"],
        timestamp=datetime.fromisoformat(data["timestamp"]),
        message=data.get("message"),
        data=data.get("data"),
        state_details=StateDetails.from_json(data.get("state_details")),
    )
