"""Proto filters, sorts and paging fields -> domain values, with validation.

The one place this direction is converted. Every problem found in a message is collected
and raised as one InvalidArgument whose violations name field paths such as
"flow_run_filter.id.any[2]".

Filter functions take the parent message and the field name, e.g.
`flow_filter(request, "flow_filter")`: presence is read with HasField on the parent
(an unset filter gives None, which is not the same as a set but empty one: a set, empty
`flow_run_filter` on ListFlows still keeps only flows that have runs), and the field name
starts every violation path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flowrun.server.domain.filters import (
    AND,
    OR,
    BoolFilter,
    CreatedByFilter,
    DeploymentFilter,
    FlowDeploymentFilter,
    FlowFilter,
    FlowRunFilter,
    FlowRunSort,
    FlowRunStateFilter,
    FlowSort,
    IdFilter,
    ListFilters,
    Operator,
    PageRequest,
    StateTypeFilter,
    StringFilter,
    SubflowRunsFilter,
    TagsFilter,
    TaskRunFilter,
    TaskRunStateFilter,
    TimeFilter,
    WorkPoolFilter,
    WorkQueueFilter,
)
from flowrun.server.domain.states import StateType
from flowrun.server.domain.task_runs import TaskRunSort
from flowrun.server.errors import InvalidArgument
from flowrun.server.services.from_proto import canonical_uuid
from flowrun.v1 import filters_pb2, state_pb2

MAX_LIST_VALUES = 1000
# All the lists of one request's filters together. Each value is one bind parameter of
# the query, and PostgreSQL's protocol (asyncpg) takes at most 32,767 per statement: a
# request of many full lists failed there (UNAVAILABLE or INTERNAL) while SQLite answered.
# A statement holds each filter once, and its own parameters (like, time bounds, paging)
# are a few dozen, so 10,000 leaves room threefold; WatchFlowRuns' ten supported lists
# never exceed it.
MAX_FILTER_VALUES = 10_000
# A `like` or `startswith` text. No filtered value is longer (names hold 200 characters,
# flow_version / work_queue_name / idempotency_key 1,000 UTF-8 bytes: see from_proto.py)
# and each character of the text matches one character of the value, so a longer text
# can never match; it only costs (on PostgreSQL time per row, on SQLite an error past its
# 50,000-byte LIKE pattern limit). Escaped, 1,000 characters are at most 4,002 bytes.
MAX_PATTERN_LENGTH = 1_000
# All the `like` and `startswith` texts of one request together. Each is matched against
# every row the query reads (ILIKE costs text length x rows), so the caps above allowed
# 10,000 texts of 1,000 characters: 3,000 of them took 58 ms a row on PostgreSQL and
# 13 ms a row on SQLite, which has no statement timeout. 50,000 characters still take
# 1,000 prefixes of 50 characters.
MAX_PATTERN_CHARACTERS = 50_000

_OPERATORS: dict[int, Operator] = {
    filters_pb2.FILTER_OPERATOR_UNSPECIFIED: AND,
    filters_pb2.FILTER_OPERATOR_AND: AND,
    filters_pb2.FILTER_OPERATOR_OR: OR,
}
_STATE_TYPES: dict[int, StateType] = {
    number: StateType(name.removeprefix("STATE_TYPE_"))
    for name, number in state_pb2.StateType.items()
    if number != state_pb2.STATE_TYPE_UNSPECIFIED
}


def _sorts(enum: Any, domain: type[StrEnum], prefix: str, default: StrEnum) -> dict[int, Any]:
    """Proto sort enum number -> domain sort; UNSPECIFIED means `default`."""
    table = {number: domain(name.removeprefix(prefix)) for name, number in enum.items() if number}
    table[0] = default
    return table


_FLOW_SORTS = _sorts(filters_pb2.FlowSort, FlowSort, "FLOW_SORT_", FlowSort.NAME_ASC)
_FLOW_RUN_SORTS = _sorts(filters_pb2.FlowRunSort, FlowRunSort, "FLOW_RUN_SORT_", FlowRunSort.ID_DESC)
_TASK_RUN_SORTS = _sorts(filters_pb2.TaskRunSort, TaskRunSort, "TASK_RUN_SORT_", TaskRunSort.ID_DESC)


def flow_filter(parent: Any, field: str) -> FlowFilter | None:
    """`parent.<field>` as a FlowFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.flow_filter)
    reader.raise_if_invalid()
    return result


def flow_run_filter(parent: Any, field: str) -> FlowRunFilter | None:
    """`parent.<field>` as a FlowRunFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.flow_run_filter)
    reader.raise_if_invalid()
    return result


def task_run_filter(parent: Any, field: str) -> TaskRunFilter | None:
    """`parent.<field>` as a TaskRunFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.task_run_filter)
    reader.raise_if_invalid()
    return result


def deployment_filter(parent: Any, field: str) -> DeploymentFilter | None:
    """`parent.<field>` as a DeploymentFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.deployment_filter)
    reader.raise_if_invalid()
    return result


def work_pool_filter(parent: Any, field: str) -> WorkPoolFilter | None:
    """`parent.<field>` as a WorkPoolFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.work_pool_filter)
    reader.raise_if_invalid()
    return result


def work_queue_filter(parent: Any, field: str) -> WorkQueueFilter | None:
    """`parent.<field>` as a WorkQueueFilter, or None when the field is unset."""
    reader = _Reader()
    result = reader.optional(parent, field, field, reader.work_queue_filter)
    reader.raise_if_invalid()
    return result


def list_filters(request: Any) -> ListFilters:
    """Every filter of a List/Count request of flows or flow runs (flow_filter,
    flow_run_filter, task_run_filter, deployment_filter, work_pool_filter and, on flow
    runs, work_queue_filter), validated together so that one error lists every
    violation. Fields the request does not have are None."""
    reader = _Reader()
    fields = request.DESCRIPTOR.fields_by_name

    def read(field: str, convert):
        return reader.optional(request, field, field, convert) if field in fields else None

    filters = ListFilters(
        flow=read("flow_filter", reader.flow_filter),
        flow_run=read("flow_run_filter", reader.flow_run_filter),
        task_run=read("task_run_filter", reader.task_run_filter),
        deployment=read("deployment_filter", reader.deployment_filter),
        work_pool=read("work_pool_filter", reader.work_pool_filter),
        work_queue=read("work_queue_filter", reader.work_queue_filter),
    )
    reader.raise_if_invalid()
    return filters


def flow_sort(value: int) -> FlowSort:
    """FlowSort enum number -> FlowSort; UNSPECIFIED is NAME_ASC."""
    return _sort(_FLOW_SORTS, value, "FlowSort")


def flow_run_sort(value: int) -> FlowRunSort:
    """FlowRunSort enum number -> FlowRunSort; UNSPECIFIED is ID_DESC."""
    return _sort(_FLOW_RUN_SORTS, value, "FlowRunSort")


def task_run_sort(value: int) -> TaskRunSort:
    """TaskRunSort enum number -> TaskRunSort; UNSPECIFIED is ID_DESC."""
    return _sort(_TASK_RUN_SORTS, value, "TaskRunSort")


def _sort(table: dict[int, Any], value: int, enum_name: str) -> Any:
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument.field("sort", f"unknown {enum_name} value {value}") from None


def page_request(
    request: Any, *, max_bytes: int | None = None, default_size: int = 200, max_size: int = 200
) -> PageRequest:
    """The paging fields of a List request. `page_size` (AIP-158): 0 means default_size,
    larger than max_size is capped, negative is invalid. `limit` (Prefect): unset means
    default_size, else it must be 0..max_size. `offset` must not be negative and cannot
    be combined with `page_token`, nor `limit` with `page_size`. Requests without
    `offset` / `limit` fields (ListFlowRunStates) are fine. `max_bytes` is the server's
    byte budget for one page (Settings.page_max_bytes): the repository cuts the page
    early rather than build a response past the message limit, and its next_page_token
    continues after the last item returned (server/repositories/paging.py)."""
    fields = request.DESCRIPTOR.fields_by_name
    page_size = request.page_size
    page_token = request.page_token
    offset = request.offset if "offset" in fields else 0
    limit = request.limit if "limit" in fields and request.HasField("limit") else None

    violations: list[tuple[str, str]] = []
    if page_size < 0:
        violations.append(("page_size", "Invalid page_size: must be greater than or equal to 0."))
    if limit is not None:
        if limit < 0:
            violations.append(("limit", "Invalid limit: must be greater than or equal to 0."))
        elif limit > max_size:
            violations.append(("limit", f"Invalid limit: must be less than or equal to {max_size}."))
        if page_size != 0:
            violations.append(("limit", "Set limit or page_size, not both."))
    if offset < 0:
        violations.append(("offset", "Invalid offset: must be greater than or equal to 0."))
    elif offset > 0 and page_token:
        violations.append(("offset", "Set offset or page_token, not both."))
    if violations:
        raise InvalidArgument(violations)

    if limit is not None:
        size = limit
    elif page_size > 0:
        size = min(page_size, max_size)
    else:
        size = default_size
    return PageRequest(offset=offset, limit=size, page_token=page_token, max_bytes=max_bytes)


class _Reader:
    """Converts filter messages, collecting violations instead of stopping at the first."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.total_values = 0
        self.list_over_total: str | None = None  # the list that took the total past the cap
        self.pattern_characters = 0
        self.pattern_over_total: str | None = None  # the text that took them past the cap

    def raise_if_invalid(self) -> None:
        if self.list_over_total is not None:
            self.fail(
                self.list_over_total,
                f"the filters of one request hold at most {MAX_FILTER_VALUES} values in all, got {self.total_values}",
            )
            self.list_over_total = None
        if self.pattern_over_total is not None:
            self.fail(
                self.pattern_over_total,
                f"the like and startswith texts of one request hold at most {MAX_PATTERN_CHARACTERS} characters "
                f"in all, got {self.pattern_characters}",
            )
            self.pattern_over_total = None
        if self.violations:
            raise InvalidArgument(self.violations)

    def fail(self, path: str, description: str) -> None:
        self.violations.append((path, description))

    def optional(self, parent: Any, field: str, path: str, convert):
        """convert(parent.field, path) if the field is set, else None."""
        if not parent.HasField(field):
            return None
        return convert(getattr(parent, field), path)

    # -- leaves ---------------------------------------------------------------------

    def operator(self, msg: Any, path: str) -> Operator:
        try:
            return _OPERATORS[msg.operator]
        except KeyError:
            self.fail(f"{path}.operator", f"unknown FilterOperator value {msg.operator}")
            return AND

    def counted(self, values: Any, path: str) -> bool:
        """Whether a list is within MAX_LIST_VALUES and, counted with the lists read
        before it, within MAX_FILTER_VALUES; a list past either is not converted."""
        if len(values) > MAX_LIST_VALUES:
            self.fail(path, f"at most {MAX_LIST_VALUES} values, got {len(values)}")
            return False
        self.total_values += len(values)
        if self.total_values <= MAX_FILTER_VALUES:
            return True
        if self.list_over_total is None:
            self.list_over_total = path
        return False

    def values(self, msg: Any, field: str, path: str) -> tuple[str, ...] | None:
        """The repeated field as a tuple, or None (after recording why) if too long."""
        values = getattr(msg, field)
        if not self.counted(values, f"{path}.{field}"):
            return None
        return tuple(values)

    def pattern(self, text: str, path: str) -> str | None:
        """A `like` or `startswith` text (None when empty), within MAX_PATTERN_LENGTH."""
        if len(text) > MAX_PATTERN_LENGTH:
            self.fail(path, f"at most {MAX_PATTERN_LENGTH} characters, got {len(text)}")
        self.pattern_characters += len(text)
        if self.pattern_characters > MAX_PATTERN_CHARACTERS and self.pattern_over_total is None:
            self.pattern_over_total = path
        return text or None

    def prefixes(self, msg: Any, path: str) -> tuple[str, ...]:
        values = self.strings(msg, "startswith", path)
        for index, value in enumerate(values):
            self.pattern(value, f"{path}.startswith[{index}]")
        return values

    def ids(self, msg: Any, field: str, path: str) -> tuple[str, ...]:
        values = self.values(msg, field, path)
        if values is None:
            return ()
        canonical = []
        for index, value in enumerate(values):
            parsed = canonical_uuid(value)
            if parsed is None:
                self.fail(f"{path}.{field}[{index}]", f"not a UUID: {value!r}")
            else:
                canonical.append(parsed)
        return tuple(canonical)

    def strings(self, msg: Any, field: str, path: str) -> tuple[str, ...]:
        return self.values(msg, field, path) or ()

    def state_types(self, msg: Any, field: str, path: str) -> tuple[StateType, ...]:
        values = getattr(msg, field)
        if not self.counted(values, f"{path}.{field}"):
            return ()
        types = []
        for index, number in enumerate(values):
            if number == state_pb2.STATE_TYPE_UNSPECIFIED:
                self.fail(f"{path}.{field}[{index}]", "STATE_TYPE_UNSPECIFIED is not a state type")
            elif number not in _STATE_TYPES:
                self.fail(f"{path}.{field}[{index}]", f"unknown StateType value {number}")
            else:
                types.append(_STATE_TYPES[number])
        return tuple(types)

    def time(self, msg: Any, field: str, path: str) -> datetime | None:
        if not msg.HasField(field):
            return None
        try:
            return getattr(msg, field).ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            self.fail(f"{path}.{field}", "timestamp out of range")
            return None

    @staticmethod
    def is_null(msg: Any) -> bool | None:
        return msg.is_null if msg.HasField("is_null") else None

    def id_filter(self, msg: filters_pb2.IdFilter, path: str) -> IdFilter:
        return IdFilter(
            operator=self.operator(msg, path),
            any=self.ids(msg, "any", path),
            not_any=self.ids(msg, "not_any", path),
            is_null=self.is_null(msg),
            strict_any=msg.strict_any,
        )

    def string_filter(self, msg: filters_pb2.StringFilter, path: str) -> StringFilter:
        return StringFilter(
            operator=self.operator(msg, path),
            any=self.strings(msg, "any", path),
            not_any=self.strings(msg, "not_any", path),
            like=self.pattern(msg.like, f"{path}.like"),
            is_null=self.is_null(msg),
            startswith=self.prefixes(msg, path),
            strict_any=msg.strict_any,
        )

    def tags_filter(self, msg: filters_pb2.TagsFilter, path: str) -> TagsFilter:
        return TagsFilter(
            operator=self.operator(msg, path),
            all=self.strings(msg, "all", path),
            any=self.strings(msg, "any", path),
            is_null=self.is_null(msg),
            strict_any=msg.strict_any,
        )

    def time_filter(self, msg: filters_pb2.TimeFilter, path: str) -> TimeFilter:
        return TimeFilter(
            operator=self.operator(msg, path),
            before=self.time(msg, "before", path),
            after=self.time(msg, "after", path),
            is_null=self.is_null(msg),
        )

    def state_type_filter(self, msg: filters_pb2.StateTypeFilter, path: str) -> StateTypeFilter:
        return StateTypeFilter(
            any=self.state_types(msg, "any", path),
            not_any=self.state_types(msg, "not_any", path),
            strict_any=msg.strict_any,
        )

    def state_filter(self, msg: filters_pb2.FlowRunStateFilter, path: str) -> FlowRunStateFilter:
        return FlowRunStateFilter(
            operator=self.operator(msg, path),
            type=self.optional(msg, "type", f"{path}.type", self.state_type_filter),
            name=self.optional(msg, "name", f"{path}.name", self.string_filter),
        )

    def created_by_filter(self, msg: filters_pb2.CreatedByFilter, path: str) -> CreatedByFilter:
        return CreatedByFilter(
            operator=self.operator(msg, path),
            id=self.ids(msg, "id", path),
            type=self.strings(msg, "type", path),
            is_null=self.is_null(msg),
        )

    def bool_filter(self, msg: filters_pb2.BoolFilter, path: str) -> BoolFilter:
        return BoolFilter(eq=msg.eq if msg.HasField("eq") else None)

    def task_run_state_filter(self, msg: filters_pb2.TaskRunStateFilter, path: str) -> TaskRunStateFilter:
        return TaskRunStateFilter(
            operator=self.operator(msg, path),
            type=self.optional(msg, "type", f"{path}.type", self.state_type_filter),
            name=self.optional(msg, "name", f"{path}.name", self.string_filter),
        )

    def subflow_runs_filter(self, msg: filters_pb2.SubflowRunsFilter, path: str) -> SubflowRunsFilter:
        return SubflowRunsFilter(exists=msg.exists if msg.HasField("exists") else None)

    def like_only_filter(self, msg: filters_pb2.StringFilter, path: str) -> StringFilter:
        """A StringFilter of which only `like` has a meaning (flow_or_deployment_name)."""
        for field in ("any", "not_any", "startswith", "strict_any"):
            if getattr(msg, field):
                self.fail(f"{path}.{field}", "not supported here; use like")
        if msg.HasField("is_null"):
            self.fail(f"{path}.is_null", "not supported here; use like")
        return StringFilter(operator=self.operator(msg, path), like=self.pattern(msg.like, f"{path}.like"))

    def parent_flow_run_filter(self, msg: filters_pb2.IdFilter, path: str) -> IdFilter:
        """Only `any` has a meaning here (as in Prefect)."""
        if msg.not_any:
            self.fail(f"{path}.not_any", "not supported on parent_flow_run_id; use any")
        if msg.HasField("is_null"):
            self.fail(f"{path}.is_null", "not supported on parent_flow_run_id; use parent_task_run_id")
        return IdFilter(operator=self.operator(msg, path), any=self.ids(msg, "any", path), strict_any=msg.strict_any)

    # -- composites -----------------------------------------------------------------

    def flow_filter(self, msg: filters_pb2.FlowFilter, path: str) -> FlowFilter:
        return FlowFilter(
            operator=self.operator(msg, path),
            id=self.optional(msg, "id", f"{path}.id", self.id_filter),
            name=self.optional(msg, "name", f"{path}.name", self.string_filter),
            tags=self.optional(msg, "tags", f"{path}.tags", self.tags_filter),
            deployment=self.optional(msg, "deployment", f"{path}.deployment", self.flow_deployment_filter),
        )

    def flow_deployment_filter(self, msg: filters_pb2.FlowDeploymentFilter, path: str) -> FlowDeploymentFilter:
        return FlowDeploymentFilter(operator=self.operator(msg, path), is_null=self.is_null(msg))

    def flow_run_filter(self, msg: filters_pb2.FlowRunFilter, path: str) -> FlowRunFilter:
        def sub(field: str, convert):
            return self.optional(msg, field, f"{path}.{field}", convert)

        return FlowRunFilter(
            operator=self.operator(msg, path),
            id=sub("id", self.id_filter),
            name=sub("name", self.string_filter),
            tags=sub("tags", self.tags_filter),
            deployment_id=sub("deployment_id", self.id_filter),
            work_queue_name=sub("work_queue_name", self.string_filter),
            state=sub("state", self.state_filter),
            flow_version=sub("flow_version", self.string_filter),
            start_time=sub("start_time", self.time_filter),
            end_time=sub("end_time", self.time_filter),
            expected_start_time=sub("expected_start_time", self.time_filter),
            next_scheduled_start_time=sub("next_scheduled_start_time", self.time_filter),
            parent_flow_run_id=sub("parent_flow_run_id", self.parent_flow_run_filter),
            parent_task_run_id=sub("parent_task_run_id", self.id_filter),
            idempotency_key=sub("idempotency_key", self.string_filter),
            created_by=sub("created_by", self.created_by_filter),
            flow_id=sub("flow_id", self.id_filter),
        )

    def task_run_filter(self, msg: filters_pb2.TaskRunFilter, path: str) -> TaskRunFilter:
        def sub(field: str, convert):
            return self.optional(msg, field, f"{path}.{field}", convert)

        return TaskRunFilter(
            operator=self.operator(msg, path),
            id=sub("id", self.id_filter),
            name=sub("name", self.string_filter),
            tags=sub("tags", self.tags_filter),
            state=sub("state", self.task_run_state_filter),
            start_time=sub("start_time", self.time_filter),
            end_time=sub("end_time", self.time_filter),
            expected_start_time=sub("expected_start_time", self.time_filter),
            subflow_runs=sub("subflow_runs", self.subflow_runs_filter),
            flow_run_id=sub("flow_run_id", self.id_filter),
        )

    def deployment_filter(self, msg: filters_pb2.DeploymentFilter, path: str) -> DeploymentFilter:
        def sub(field: str, convert):
            return self.optional(msg, field, f"{path}.{field}", convert)

        return DeploymentFilter(
            operator=self.operator(msg, path),
            id=sub("id", self.id_filter),
            name=sub("name", self.string_filter),
            flow_or_deployment_name=sub("flow_or_deployment_name", self.like_only_filter),
            paused=sub("paused", self.bool_filter),
            tags=sub("tags", self.tags_filter),
            work_queue_name=sub("work_queue_name", self.string_filter),
        )

    def work_pool_filter(self, msg: filters_pb2.WorkPoolFilter, path: str) -> WorkPoolFilter:
        return WorkPoolFilter(
            operator=self.operator(msg, path),
            id=self.optional(msg, "id", f"{path}.id", self.id_filter),
            name=self.optional(msg, "name", f"{path}.name", self.string_filter),
            type=self.optional(msg, "type", f"{path}.type", self.string_filter),
        )

    def work_queue_filter(self, msg: filters_pb2.WorkQueueFilter, path: str) -> WorkQueueFilter:
        return WorkQueueFilter(
            operator=self.operator(msg, path),
            id=self.optional(msg, "id", f"{path}.id", self.id_filter),
            name=self.optional(msg, "name", f"{path}.name", self.string_filter),
        )
