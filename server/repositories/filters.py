"""Domain filters -> SQLAlchemy Core WHERE clauses (Prefect's `as_sql_filter`, spec 3.1-3.8),
identical on SQLite and PostgreSQL.

Semantics:

- A filter with no criteria is TRUE; inside an "or" it makes the "or" true (as Prefect).
  The exception, also Prefect's: inside a state filter, a `type` or `name` with no
  criteria is left out, so `or(type: {}, name: {any: [Late]})` is the Late runs.
- `any` is IN; an empty `any` is ignored unless `strict_any`, which makes it IN () (no
  row). `not_any` is "none of these", which a NULL value satisfies (Prefect's plain NOT IN
  would drop rows whose column is NULL; `is_null: false` beside it does the same).
- `like` is a case-insensitive substring match in which `%`, `_` and `\\` are literal.
  This deliberately fixes Prefect, which pastes the text into the pattern unescaped.
  Case folding is the database's: SQLite's lower() folds ASCII letters only.
  `startswith` is an OR of case-insensitive prefix matches, escaped the same way.
- `is_null` on a column that cannot be NULL: true matches nothing, false everything.
  On tags it means "no tags" (the column holds a JSON list, never NULL).
- Time bounds are inclusive. start_time before/after compare
  coalesce(start_time, expected_start_time); its is_null tests start_time alone.

Cross-entity filters (spec 3.8) are EXISTS subqueries correlated with the row being
filtered. A given filter, even one with no criteria, requires the related row to exist:
a run without a deployment (or work queue) never matches a deployment (pool, queue)
filter, and a flow-run filter on flows keeps the flows that have at least one matching
run. Subqueries read deployments, queues, pools, task runs and subflow runs through
aliases, so they never correlate with the same table in the outer query (flow runs are
read LEFT JOINed to their work queue and pool).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Boolean, ColumnElement, and_, exists, false, func, or_, select, true, type_coerce
from sqlalchemy.sql import FromClause

from flowrun.server.db import tables
from flowrun.server.db.dialect import Dialect
from flowrun.server.db.types import Timestamp
from flowrun.server.domain.filters import (
    BoolFilter,
    CreatedByFilter,
    DeploymentFilter,
    FlowDeploymentFilter,
    FlowFilter,
    FlowRunFilter,
    FlowRunStateFilter,
    IdFilter,
    ListFilters,
    Operator,
    StateTypeFilter,
    StringFilter,
    TagsFilter,
    TaskRunFilter,
    TaskRunStateFilter,
    TimeFilter,
    WorkPoolFilter,
    WorkQueueFilter,
)

flow = tables.flow
flow_run = tables.flow_run
task_run = tables.task_run


def flow_where(dialect: Dialect, filters: ListFilters) -> ColumnElement[bool]:
    """WHERE for a query on `flow`: the flow filter on the flow itself; deployment and
    work pool filters keep flows with a matching deployment (whose queue is in a
    matching pool); flow-run and task-run filters keep flows with a matching run (that
    has a matching task run)."""
    clauses: list[ColumnElement[bool]] = []
    if filters.flow is not None:
        clauses.append(_flow(dialect, filters.flow))
    if filters.deployment is not None or filters.work_pool is not None:
        deployment = tables.deployment.alias("filter_deployment")
        deployments = select(deployment.c.id).where(deployment.c.flow_id == flow.c.id)
        if filters.deployment is not None:
            deployments = deployments.where(_deployment(dialect, filters.deployment, deployment))
        if filters.work_pool is not None:
            deployments = deployments.where(_queue_in_pool(filters.work_pool, deployment.c.work_queue_id))
        clauses.append(exists(deployments))
    if filters.flow_run is not None or filters.task_run is not None:
        runs = select(flow_run.c.id).where(flow_run.c.flow_id == flow.c.id)
        if filters.flow_run is not None:
            runs = runs.where(_flow_run(dialect, filters.flow_run))
        if filters.task_run is not None:
            runs = runs.where(_has_task_run(dialect, filters.task_run, flow_run.c.id))
        clauses.append(exists(runs))
    return and_(true(), *clauses)


def flow_run_where(dialect: Dialect, filters: ListFilters) -> ColumnElement[bool]:
    """WHERE for a query on `flow_run`: the flow-run filter on the run itself; every
    other filter keeps the runs whose flow, deployment, work pool or work queue matches,
    or that have a matching task run."""
    clauses: list[ColumnElement[bool]] = []
    if filters.flow_run is not None:
        clauses.append(_flow_run(dialect, filters.flow_run))
    if filters.flow is not None:
        flows = select(flow.c.id).where(flow.c.id == flow_run.c.flow_id, _flow(dialect, filters.flow))
        clauses.append(exists(flows))
    if filters.task_run is not None:
        clauses.append(_has_task_run(dialect, filters.task_run, flow_run.c.id))
    if filters.deployment is not None:
        deployment = tables.deployment.alias("filter_deployment")
        deployments = select(deployment.c.id).where(
            deployment.c.id == flow_run.c.deployment_id, _deployment(dialect, filters.deployment, deployment)
        )
        clauses.append(exists(deployments))
    if filters.work_pool is not None:
        clauses.append(_queue_in_pool(filters.work_pool, flow_run.c.work_queue_id))
    if filters.work_queue is not None:
        queue = tables.work_queue.alias("filter_work_queue")
        queues = select(queue.c.id).where(
            queue.c.id == flow_run.c.work_queue_id, _work_queue(filters.work_queue, queue)
        )
        clauses.append(exists(queues))
    return and_(true(), *clauses)


def task_run_where(dialect: Dialect, f: TaskRunFilter | None) -> ColumnElement[bool]:
    """WHERE for a query on `task_run`."""
    return true() if f is None else _task_run(dialect, f, task_run)


def deployment_where(dialect: Dialect, f: DeploymentFilter | None) -> ColumnElement[bool]:
    """WHERE for a query on `deployment`."""
    return true() if f is None else _deployment(dialect, f, tables.deployment)


def work_pool_where(f: WorkPoolFilter | None) -> ColumnElement[bool]:
    """WHERE for a query on `work_pool`."""
    return true() if f is None else _work_pool(f, tables.work_pool)


def work_queue_where(f: WorkQueueFilter | None) -> ColumnElement[bool]:
    """WHERE for a query on `work_queue`."""
    return true() if f is None else _work_queue(f, tables.work_queue)


def _has_task_run(dialect: Dialect, f: TaskRunFilter, flow_run_id: ColumnElement) -> ColumnElement[bool]:
    task = task_run.alias("filter_task_run")
    return exists(select(task.c.id).where(task.c.flow_run_id == flow_run_id, _task_run(dialect, f, task)))


def _queue_in_pool(f: WorkPoolFilter, work_queue_id: ColumnElement) -> ColumnElement[bool]:
    """The work queue `work_queue_id` (NULL matches nothing) is in a pool matching `f`."""
    queue = tables.work_queue.alias("filter_work_queue")
    pool = tables.work_pool.alias("filter_work_pool")
    pools = select(queue.c.id).where(
        queue.c.id == work_queue_id, pool.c.id == queue.c.work_pool_id, _work_pool(f, pool)
    )
    return exists(pools)


def _combine(operator: Operator, clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    if not clauses:
        return true()
    return and_(*clauses) if operator == "and" else or_(*clauses)


def _flow(dialect: Dialect, f: FlowFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.id is not None:
        clauses.append(_id(flow.c.id, f.id))
    if f.name is not None:
        clauses.append(_string(flow.c.name, f.name))
    if f.tags is not None:
        clauses.append(_tags(dialect, flow.c.tags, f.tags))
    if f.deployment is not None:
        clauses.append(_flow_deployment(f.deployment))
    return _combine(f.operator, clauses)


def _flow_deployment(f: FlowDeploymentFilter) -> ColumnElement[bool]:
    """is_null true: the flow has no deployment; false: it has one."""
    clauses: list[ColumnElement[bool]] = []
    if f.is_null is not None:
        deployment = tables.deployment.alias("filter_flow_deployment")
        has_one = exists(select(deployment.c.id).where(deployment.c.flow_id == flow.c.id))
        clauses.append(~has_one if f.is_null else has_one)
    return _combine(f.operator, clauses)


def _flow_run(dialect: Dialect, f: FlowRunFilter) -> ColumnElement[bool]:
    c = flow_run.c
    clauses: list[ColumnElement[bool]] = []
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
        clauses.append(_state(f.state, flow_run))
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


def _task_run(dialect: Dialect, f: TaskRunFilter, table: FromClause) -> ColumnElement[bool]:
    c = table.c
    clauses: list[ColumnElement[bool]] = []
    if f.id is not None:
        clauses.append(_id(c.id, f.id))
    if f.name is not None:
        clauses.append(_string(c.name, f.name))
    if f.tags is not None:
        clauses.append(_tags(dialect, c.tags, f.tags))
    if f.state is not None:
        clauses.append(_state(f.state, table))
    if f.start_time is not None:
        clauses.append(_time(c.start_time, f.start_time))
    if f.end_time is not None:
        clauses.append(_time(c.end_time, f.end_time))
    if f.expected_start_time is not None:
        clauses.append(_time(c.expected_start_time, f.expected_start_time))
    if f.subflow_runs is not None and f.subflow_runs.exists is not None:
        subflow = flow_run.alias("filter_subflow_run")
        has_subflow = exists(select(subflow.c.id).where(subflow.c.parent_task_run_id == c.id))
        clauses.append(has_subflow if f.subflow_runs.exists else ~has_subflow)
    if f.flow_run_id is not None:
        clauses.append(_task_flow_run_id(c.flow_run_id, f.flow_run_id))
    return _combine(f.operator, clauses)


def _task_flow_run_id(column: ColumnElement, f: IdFilter) -> ColumnElement[bool]:
    """The reference's precedence: is_null true selects task runs without a flow run
    (any is ignored); is_null false without any selects those with one; otherwise any
    is IN. not_any (a flowrun extension) is combined by the operator."""
    clauses: list[ColumnElement[bool]] = []
    if f.is_null is True:
        clauses.append(column.is_(None))
    elif f.is_null is False and not f.any:
        clauses.append(column.is_not(None))
    elif f.any or f.strict_any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    return _combine(f.operator, clauses)


def _deployment(dialect: Dialect, f: DeploymentFilter, table: FromClause) -> ColumnElement[bool]:
    c = table.c
    clauses: list[ColumnElement[bool]] = []
    if f.id is not None:
        clauses.append(_id(c.id, f.id))
    if f.name is not None:
        clauses.append(_string(c.name, f.name))
    if f.flow_or_deployment_name is not None and f.flow_or_deployment_name.like:
        pattern = f"%{escape_like(f.flow_or_deployment_name.like)}%"
        deployment_flow = flow.alias("filter_deployment_flow")
        flow_named = select(deployment_flow.c.id).where(
            deployment_flow.c.id == c.flow_id, deployment_flow.c.name.ilike(pattern, escape="\\")
        )
        clauses.append(or_(c.name.ilike(pattern, escape="\\"), exists(flow_named)))
    if f.paused is not None:
        clauses.append(_bool(c.paused, f.paused))
    if f.tags is not None:
        clauses.append(_tags(dialect, c.tags, f.tags))
    if f.work_queue_name is not None:
        clauses.append(_string(c.work_queue_name, f.work_queue_name))
    return _combine(f.operator, clauses)


def _work_pool(f: WorkPoolFilter, table: FromClause) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.id is not None:
        clauses.append(_id(table.c.id, f.id))
    if f.name is not None:
        clauses.append(_string(table.c.name, f.name))
    if f.type is not None:
        clauses.append(_string(table.c.type, f.type))
    return _combine(f.operator, clauses)


def _work_queue(f: WorkQueueFilter, table: FromClause) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.id is not None:
        clauses.append(_id(table.c.id, f.id))
    if f.name is not None:
        clauses.append(_string(table.c.name, f.name))
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
    clauses: list[ColumnElement[bool]] = []
    if f.any or f.strict_any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    if f.is_null is not None:
        clauses.append(_is_null(column, f.is_null))
    return _combine(f.operator, clauses)


def _string(column: ColumnElement, f: StringFilter) -> ColumnElement[bool]:
    return _combine(f.operator, _string_clauses(column, f))


def _string_clauses(column: ColumnElement, f: StringFilter) -> list[ColumnElement[bool]]:
    """The criteria of `f`, each a clause; none when `f` has no criteria."""
    clauses: list[ColumnElement[bool]] = []
    if f.any or f.strict_any:
        clauses.append(column.in_(f.any))
    if f.not_any:
        clauses.append(_not_any(column, f.not_any))
    if f.like:
        clauses.append(column.ilike(f"%{escape_like(f.like)}%", escape="\\"))
    if f.is_null is not None:
        clauses.append(_is_null(column, f.is_null))
    if f.startswith:
        clauses.append(_any_of([column.ilike(f"{escape_like(prefix)}%", escape="\\") for prefix in f.startswith]))
    return clauses


def _any_of(clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """The OR of `clauses` as a balanced tree in parentheses: SQLite parses a flat
    `a OR b OR c ...` into a tree as deep as it is long and refuses one deeper than 1,000
    ("Expression tree is too large"), which 1,000 `startswith` prefixes reached; nested
    halves keep the depth at about log2(n)."""
    if len(clauses) <= 2:
        return or_(*clauses)
    middle = len(clauses) // 2
    return or_(_parenthesized(_any_of(clauses[:middle])), _parenthesized(_any_of(clauses[middle:])))


def _parenthesized(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """`clause` in parentheses that or_() keeps: or_() flattens a nested OR into its own
    list, even one grouped by self_group() (the group passes the OR through), but not one
    behind a type_coerce."""
    return type_coerce(clause, Boolean()).self_group()


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tags(dialect: Dialect, column: ColumnElement, f: TagsFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.all:
        clauses.append(dialect.tags_has_all(column, list(f.all)))
    if f.any:
        clauses.append(dialect.tags_has_any(column, list(f.any)))
    elif f.strict_any:
        clauses.append(false())  # an overlap with no tags: PostgreSQL cannot type ARRAY[]
    if f.is_null is not None:
        empty = dialect.json_is_empty_list(column)
        clauses.append(empty if f.is_null else ~empty)
    return _combine(f.operator, clauses)


def _bool(column: ColumnElement, f: BoolFilter) -> ColumnElement[bool]:
    return true() if f.eq is None else column == f.eq


def _time(column: ColumnElement, f: TimeFilter, *, null_column: ColumnElement | None = None) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if f.before is not None:
        clauses.append(column <= f.before)
    if f.after is not None:
        clauses.append(column >= f.after)
    if f.is_null is not None:
        clauses.append(_is_null(column if null_column is None else null_column, f.is_null))
    return _combine(f.operator, clauses)


def _state_type_clauses(column: ColumnElement, f: StateTypeFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f.any or f.strict_any:
        clauses.append(column.in_([t.value for t in f.any]))
    if f.not_any:
        clauses.append(_not_any(column, [t.value for t in f.not_any]))
    return clauses


def _state(f: FlowRunStateFilter | TaskRunStateFilter, table: FromClause) -> ColumnElement[bool]:
    """On the denormalized current-state columns of a flow run or task run table. A
    `type` or `name` with no criteria is left out (it does not make an "or" true)."""
    clauses: list[ColumnElement[bool]] = []
    if f.type is not None and (type_clauses := _state_type_clauses(table.c.state_type, f.type)):
        clauses.append(_combine(f.type.operator, type_clauses))
    if f.name is not None and (name_clauses := _string_clauses(table.c.state_name, f.name)):
        clauses.append(_combine(f.name.operator, name_clauses))
    return _combine(f.operator, clauses)


def _parent_flow_run(f: IdFilter) -> ColumnElement[bool]:
    """Subflow runs whose parent task run belongs to one of `f.any` (only `any` is
    meaningful; the proto conversion rejects the rest)."""
    if not f.any and not f.strict_any:
        return true()
    parent_tasks = select(task_run.c.id).where(task_run.c.flow_run_id.in_(f.any))
    return flow_run.c.parent_task_run_id.in_(parent_tasks)


def _created_by(dialect: Dialect, f: CreatedByFilter) -> ColumnElement[bool]:
    column = flow_run.c.created_by
    clauses: list[ColumnElement[bool]] = []
    if f.id:
        clauses.append(dialect.json_text(column, "id").in_(f.id))
    if f.type:
        clauses.append(dialect.json_text(column, "type").in_(f.type))
    if f.is_null is not None:
        missing = dialect.json_is_null(column)
        clauses.append(missing if f.is_null else ~missing)
    return _combine(f.operator, clauses)
