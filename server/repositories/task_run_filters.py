"""TaskRunFilter -> SQLAlchemy Core WHERE clause on `task_run` (spec 3.4), identical on
SQLite and PostgreSQL. The leaves (ids, strings, tags, times) and the shared semantics
are those of server.repositories.filters.

Kept in its own module while the cross-entity filters are being written; it belongs in
server/repositories/filters.py once both are merged."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select, true

from server.db import tables
from server.db.dialect import Dialect
from server.domain.filters import IdFilter, StateTypeFilter, SubflowRunsFilter, TaskRunFilter, TaskRunStateFilter
from server.repositories.filters import _combine, _id, _not_any, _string, _tags, _time

task_run = tables.task_run
flow_run = tables.flow_run


def task_run_where(dialect: Dialect, task_run_filter: TaskRunFilter | None) -> ColumnElement[bool]:
    """WHERE for a query on `task_run`; TRUE without a filter."""
    return true() if task_run_filter is None else _task_run(dialect, task_run_filter)


def _task_run(dialect: Dialect, f: TaskRunFilter) -> ColumnElement[bool]:
    c = task_run.c
    clauses = []
    if f.id is not None:
        clauses.append(_id(c.id, f.id))
    if f.name is not None:
        clauses.append(_string(c.name, f.name))
    if f.tags is not None:
        clauses.append(_tags(dialect, c.tags, f.tags))
    if f.state is not None:
        clauses.append(_state(f.state))
    # Unlike flow runs, start_time compares the column itself (no coalesce).
    if f.start_time is not None:
        clauses.append(_time(c.start_time, f.start_time))
    if f.end_time is not None:
        clauses.append(_time(c.end_time, f.end_time))
    if f.expected_start_time is not None:
        clauses.append(_time(c.expected_start_time, f.expected_start_time))
    if f.subflow_runs is not None:
        clauses.append(_subflow_runs(f.subflow_runs))
    if f.flow_run_id is not None:
        clauses.append(_flow_run_id(f.flow_run_id))
    return _combine(f.operator, clauses)


def _state_type(f: StateTypeFilter) -> ColumnElement[bool]:
    column = task_run.c.state_type
    clauses = []
    if f.any:
        clauses.append(column.in_([t.value for t in f.any]))
    if f.not_any:
        clauses.append(_not_any(column, [t.value for t in f.not_any]))
    return _combine(f.operator, clauses)


def _state(f: TaskRunStateFilter) -> ColumnElement[bool]:
    clauses = []
    if f.type is not None:
        clauses.append(_state_type(f.type))
    if f.name is not None:
        clauses.append(_string(task_run.c.state_name, f.name))
    return _combine(f.operator, clauses)


def _subflow_runs(f: SubflowRunsFilter) -> ColumnElement[bool]:
    """exists true: a flow run names the task run as its parent task; false: none does."""
    if f.exists is None:
        return true()
    subflows = exists(select(flow_run.c.id).where(flow_run.c.parent_task_run_id == task_run.c.id))
    return subflows if f.exists else ~subflows


def _flow_run_id(f: IdFilter) -> ColumnElement[bool]:
    """The reference's precedence: is_null true selects task runs without a flow run
    (any is ignored); is_null false without any selects those with one; otherwise any
    is IN. not_any (a flowrun extension) is combined by the operator."""
    column = task_run.c.flow_run_id
    clauses = []
    if f.is_null is True:
        clauses.append(column.is_(None))
    elif f.is_null is False and not f.any:
        clauses.append(column.is_not(None))
    elif f.any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    return _combine(f.operator, clauses)
