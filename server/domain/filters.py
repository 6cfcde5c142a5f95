"""Filters, sorts and page requests for list and count queries (Prefect's FlowFilter,
FlowRunFilter, TaskRunFilter, DeploymentFilter, WorkPoolFilter, WorkQueueFilter,
FlowSort, FlowRunSort, offset/limit), as plain immutable values.

Conventions shared by every filter:

- `None` for a sub-filter means "not given"; a sub-filter that is given but has no
  criteria matches everything (inside an "or" that makes the whole "or" true, as in
  Prefect), except the `type` and `name` of a state filter, which are left out when they
  have no criteria (as Prefect leaves them out).
- An empty tuple means "not given" (proto3 cannot tell an empty list from an unset one),
  unless `strict_any` is set: then an empty `any` matches nothing.
- `not_any` is "none of these", which an unset (NULL) value satisfies.
- `operator` ("and" or "or") combines the criteria of one filter.

`fingerprint()` turns filters into a canonical string, so a page token can be bound to
the query that produced it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Literal

from flowrun.server.domain.states import StateType

Operator = Literal["and", "or"]
AND: Operator = "and"
OR: Operator = "or"

# Fields added after page tokens were first issued: left out of fingerprint() while they
# hold their default, so the tokens of queries that do not use them stay valid.
_LATER = {"fingerprint_omits_default": True}


def _strict_any() -> Any:
    """`strict_any`: an empty `any` matches nothing instead of being ignored."""
    return field(default=False, metadata=_LATER)


@dataclass(frozen=True, slots=True)
class IdFilter:
    operator: Operator = AND
    any: tuple[str, ...] = ()
    not_any: tuple[str, ...] = ()
    is_null: bool | None = None
    strict_any: bool = _strict_any()


@dataclass(frozen=True, slots=True)
class StringFilter:
    operator: Operator = AND
    any: tuple[str, ...] = ()
    not_any: tuple[str, ...] = ()
    like: str | None = None
    is_null: bool | None = None
    startswith: tuple[str, ...] = ()
    strict_any: bool = _strict_any()


@dataclass(frozen=True, slots=True)
class TagsFilter:
    operator: Operator = AND
    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    is_null: bool | None = None
    strict_any: bool = _strict_any()


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """Inclusive bounds; datetimes are timezone-aware UTC."""

    operator: Operator = AND
    before: datetime | None = None
    after: datetime | None = None
    is_null: bool | None = None


@dataclass(frozen=True, slots=True)
class StateTypeFilter:
    # The proto message has no operator; it is always "and" there.
    operator: Operator = AND
    any: tuple[StateType, ...] = ()
    not_any: tuple[StateType, ...] = ()
    strict_any: bool = _strict_any()


@dataclass(frozen=True, slots=True)
class FlowRunStateFilter:
    operator: Operator = AND
    type: StateTypeFilter | None = None
    name: StringFilter | None = None


@dataclass(frozen=True, slots=True)
class CreatedByFilter:
    operator: Operator = AND
    id: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    is_null: bool | None = None


@dataclass(frozen=True, slots=True)
class FlowDeploymentFilter:
    """Whether a flow has deployments: is_null true = none, false = at least one."""

    operator: Operator = AND
    is_null: bool | None = None


@dataclass(frozen=True, slots=True)
class FlowFilter:
    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None
    tags: TagsFilter | None = None
    deployment: FlowDeploymentFilter | None = field(default=None, metadata=_LATER)


@dataclass(frozen=True, slots=True)
class FlowRunFilter:
    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None
    tags: TagsFilter | None = None
    deployment_id: IdFilter | None = None
    work_queue_name: StringFilter | None = None
    state: FlowRunStateFilter | None = None
    flow_version: StringFilter | None = None
    start_time: TimeFilter | None = None
    end_time: TimeFilter | None = None
    expected_start_time: TimeFilter | None = None
    next_scheduled_start_time: TimeFilter | None = None
    parent_flow_run_id: IdFilter | None = None
    parent_task_run_id: IdFilter | None = None
    idempotency_key: StringFilter | None = None
    created_by: CreatedByFilter | None = None
    flow_id: IdFilter | None = None


@dataclass(frozen=True, slots=True)
class BoolFilter:
    eq: bool | None = None


@dataclass(frozen=True, slots=True)
class TaskRunStateFilter:
    operator: Operator = AND
    type: StateTypeFilter | None = None
    name: StringFilter | None = None


@dataclass(frozen=True, slots=True)
class SubflowRunsFilter:
    exists: bool | None = None


@dataclass(frozen=True, slots=True)
class TaskRunFilter:
    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None
    tags: TagsFilter | None = None
    state: TaskRunStateFilter | None = None
    start_time: TimeFilter | None = None
    end_time: TimeFilter | None = None
    expected_start_time: TimeFilter | None = None
    subflow_runs: SubflowRunsFilter | None = None
    flow_run_id: IdFilter | None = None


@dataclass(frozen=True, slots=True)
class DeploymentFilter:
    """`flow_or_deployment_name` only carries `like` (the deployment's or its flow's name)."""

    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None
    flow_or_deployment_name: StringFilter | None = None
    paused: BoolFilter | None = None
    tags: TagsFilter | None = None
    work_queue_name: StringFilter | None = None


@dataclass(frozen=True, slots=True)
class WorkPoolFilter:
    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None
    type: StringFilter | None = None


@dataclass(frozen=True, slots=True)
class WorkQueueFilter:
    operator: Operator = AND
    id: IdFilter | None = None
    name: StringFilter | None = None


@dataclass(frozen=True, slots=True)
class ListFilters:
    """Every filter a List/Count of flows or flow runs can take; None when not given.
    (Flow queries have no work queue filter.)"""

    flow: FlowFilter | None = None
    flow_run: FlowRunFilter | None = None
    task_run: TaskRunFilter | None = None
    deployment: DeploymentFilter | None = None
    work_pool: WorkPoolFilter | None = None
    work_queue: WorkQueueFilter | None = None


class FlowSort(StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class FlowRunSort(StrEnum):
    ID_DESC = "ID_DESC"
    START_TIME_ASC = "START_TIME_ASC"
    START_TIME_DESC = "START_TIME_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    NEXT_SCHEDULED_START_TIME_ASC = "NEXT_SCHEDULED_START_TIME_ASC"
    END_TIME_DESC = "END_TIME_DESC"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which rows of an ordered result to return: `limit` rows after `offset` rows, or
    after the row a page token points at (never both)."""

    offset: int = 0
    limit: int = 200
    page_token: str = ""
    max_bytes: int | None = None  # cut the page before its rows outgrow this (paging.fetch_page)


def fingerprint(*parts: Any) -> str:
    """A canonical text for filters (and anything else that selects rows): equal for
    equal queries, different for different ones. Page tokens carry a hash of it."""
    return json.dumps([_canonical(part) for part in parts], sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {
            f.name: _canonical(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get("fingerprint_omits_default") and getattr(value, f.name) == f.default)
        }
        return {type(value).__name__: body}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a filter")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (tuple, list)):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
