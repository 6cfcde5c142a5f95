"""Domain filters -> SQLAlchemy Core WHERE clauses (Prefect's `as_sql_filter`, spec 3.1-3.3
and 3.8), identical on SQLite and PostgreSQL.

Semantics:

- A filter with no criteria is TRUE; inside an "or" it makes the "or" true (as Prefect).
- `any` is IN; `not_any` is "none of these", which a NULL value satisfies (Prefect's plain
  NOT IN would drop rows whose column is NULL).
- `like` is a case-insensitive substring match in which `%`, `_` and `\\` are literal.
  This deliberately fixes Prefect, which pastes the text into the pattern unescaped.
  Case folding is the database's: SQLite's lower() folds ASCII letters only.
- `is_null` on a column that cannot be NULL: true matches nothing, false everything.
  On tags it means "no tags" (the column holds a JSON list, never NULL).
- Time bounds are inclusive. start_time before/after compare
  coalesce(start_time, expected_start_time); its is_null tests start_time alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true

from server.db import tables
from server.db.dialect import Dialect
from server.db.types import Timestamp
from server.domain.filters import (
    CreatedByFilter,
    FlowFilter,
    FlowRunFilter,
    FlowRunStateFilter,
    IdFilter,
    Operator,
    StateTypeFilter,
    StringFilter,
    TagsFilter,
    TimeFilter,
)

flow = tables.flow
flow_run = tables.flow_run
task_run = tables.task_run


def flow_where(
    dialect: Dialect, flow_filter: FlowFilter | None, flow_run_filter: FlowRunFilter | None
) -> ColumnElement[bool]:
    """WHERE for a query on `flow`. A flow-run filter (even an empty one) keeps the flows
    that have at least one matching run."""
    clauses = []
    if flow_filter is not None:
        clauses.append(_flow(dialect, flow_filter))
    if flow_run_filter is not None:
        runs = select(flow_run.c.id).where(
            flow_run.c.flow_id == flow.c.id, _flow_run(dialect, flow_run_filter)
        )
        clauses.append(exists(runs))
    return and_(true(), *clauses)


def flow_run_where(
    dialect: Dialect, flow_filter: FlowFilter | None, flow_run_filter: FlowRunFilter | None
) -> ColumnElement[bool]:
    """WHERE for a query on `flow_run`. A flow filter keeps the runs whose flow matches."""
    clauses = []
    if flow_run_filter is not None:
        clauses.append(_flow_run(dialect, flow_run_filter))
    if flow_filter is not None:
        flows = select(flow.c.id).where(flow.c.id == flow_run.c.flow_id, _flow(dialect, flow_filter))
        clauses.append(exists(flows))
    return and_(true(), *clauses)


def _combine(operator: Operator, clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    if not clauses:
        return true()
    return and_(*clauses) if operator == "and" else or_(*clauses)


def _flow(dialect: Dialect, f: FlowFilter) -> ColumnElement[bool]:
    clauses = []
    if f.id is not None:
        clauses.append(_id(flow.c.id, f.id))
    if f.name is not None:
        clauses.append(_string(flow.c.name, f.name))
    if f.tags is not None:
        clauses.append(_tags(dialect, flow.c.tags, f.tags))
    return _combine(f.operator, clauses)


def _flow_run(dialect: Dialect, f: FlowRunFilter) -> ColumnElement[bool]:
    c = flow_run.c
    clauses = []
    if f.id is not None:
        clauses.append(_id(c.id, f.id))
    if f.name is not None:
        clauses.append(_string(c.name, f.name))
    if f.tags is not None:
        clauses.append(_tags(dialect, c.tags, f.tags))
    if f.deployment_id is not None:
        clauses.append(_id(c.deployment_id, f.deployment_id))
    if f.work_queue_name is not None:
        clauses.append(_string(c.work_queue_name, f.work_queue_name))
    if f.state is not None:
        clauses.append(_state(f.state))
    if f.flow_version is not None:
        clauses.append(_string(c.flow_version, f.flow_version))
    if f.start_time is not None:
        started = func.coalesce(c.start_time, c.expected_start_time, type_=Timestamp())
        clauses.append(_time(started, f.start_time, null_column=c.start_time))
    if f.end_time is not None:
        clauses.append(_time(c.end_time, f.end_time))
    if f.expected_start_time is not None:
        clauses.append(_time(c.expected_start_time, f.expected_start_time))
    if f.next_scheduled_start_time is not None:
        clauses.append(_time(c.next_scheduled_start_time, f.next_scheduled_start_time))
    if f.parent_flow_run_id is not None:
        clauses.append(_parent_flow_run(f.parent_flow_run_id))
    if f.parent_task_run_id is not None:
        clauses.append(_id(c.parent_task_run_id, f.parent_task_run_id))
    if f.idempotency_key is not None:
        clauses.append(_string(c.idempotency_key, f.idempotency_key))
    if f.created_by is not None:
        clauses.append(_created_by(dialect, f.created_by))
    if f.flow_id is not None:
        clauses.append(_id(c.flow_id, f.flow_id))
    return _combine(f.operator, clauses)


# -- leaves -----------------------------------------------------------------------------


def _is_null(column: ColumnElement, is_null: bool) -> ColumnElement[bool]:
    if not getattr(column, "nullable", True):
        return false() if is_null else true()
    return column.is_(None) if is_null else column.is_not(None)


def _not_any(column: ColumnElement, values: Sequence) -> ColumnElement[bool]:
    """None of `values`; NULL is none of them."""
    if not getattr(column, "nullable", True):
        return column.not_in(values)
    return or_(column.is_(None), column.not_in(values))


def _id(column: ColumnElement, f: IdFilter) -> ColumnElement[bool]:
    clauses = []
    if f.any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    if f.is_null is not None:
        clauses.append(_is_null(column, f.is_null))
    return _combine(f.operator, clauses)


def _string(column: ColumnElement, f: StringFilter) -> ColumnElement[bool]:
    clauses = []
    if f.any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    if f.like:
        clauses.append(column.ilike(f"%{escape_like(f.like)}%", escape="\\"))
    if f.is_null is not None:
        clauses.append(_is_null(column, f.is_null))
    return _combine(f.operator, clauses)


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tags(dialect: Dialect, column: ColumnElement, f: TagsFilter) -> ColumnElement[bool]:
    clauses = []
    if f.all:
        clauses.append(dialect.tags_has_all(column, list(f.all)))
    if f.any:
        clauses.append(dialect.tags_has_any(column, list(f.any)))
    if f.is_null is not None:
        empty = dialect.json_is_empty_list(column)
        clauses.append(empty if f.is_null else ~empty)
    return _combine(f.operator, clauses)


def _time(
    column: ColumnElement, f: TimeFilter, *, null_column: ColumnElement | None = None
) -> ColumnElement[bool]:
    clauses = []
    if f.before is not None:
        clauses.append(column <= f.before)
    if f.after is not None:
        clauses.append(column >= f.after)
    if f.is_null is not None:
        clauses.append(_is_null(column if null_column is None else null_column, f.is_null))
    return _combine(f.operator, clauses)


def _state_type(f: StateTypeFilter) -> ColumnElement[bool]:
    column = flow_run.c.state_type
    clauses = []
    if f.any:
        clauses.append(column.in_([t.value for t in f.any]))
    if f.not_any:
        clauses.append(_not_any(column, [t.value for t in f.not_any]))
    return _combine(f.operator, clauses)


def _state(f: FlowRunStateFilter) -> ColumnElement[bool]:
    clauses = []
    if f.type is not None:
        clauses.append(_state_type(f.type))
    if f.name is not None:
        clauses.append(_string(flow_run.c.state_name, f.name))
    return _combine(f.operator, clauses)


def _parent_flow_run(f: IdFilter) -> ColumnElement[bool]:
    """Subflow runs whose parent task run belongs to one of `f.any` (only `any` is
    meaningful; the proto conversion rejects the rest)."""
    if not f.any:
        return true()
    parent_tasks = select(task_run.c.id).where(task_run.c.flow_run_id.in_(f.any))
    return flow_run.c.parent_task_run_id.in_(parent_tasks)


def _created_by(dialect: Dialect, f: CreatedByFilter) -> ColumnElement[bool]:
    column = flow_run.c.created_by
    clauses = []
    if f.id:
        clauses.append(dialect.json_text(column, "id").in_(f.id))
    if f.type:
        clauses.append(dialect.json_text(column, "type").in_(f.type))
    if f.is_null is not None:
        missing = dialect.json_is_null(column)
        clauses.append(missing if f.is_null else ~missing)
    return _combine(f.operator, clauses)
