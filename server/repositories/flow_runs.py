"""Flow runs: idempotent creation, reads with the current state, updates, deletes and
the locked read and write-back that orchestration uses."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from flowrun.server import clock, errors
from flowrun.server.db.dialect import Dialect, is_foreign_key_violation
from flowrun.server.db.tables import (
    ORCHESTRATED_RUN_COLUMNS,
    deployment,
    flow,
    flow_run,
    flow_run_state,
    task_run,
    work_pool,
    work_queue,
)
from flowrun.server.db.types import Timestamp, UUIDText
from flowrun.server.domain.events import EventKind, encode_payload
from flowrun.server.domain.filters import AND, FlowRunSort, ListFilters, PageRequest, fingerprint
from flowrun.server.domain.flow_runs import FlowRun, FlowRunCreate, FlowRunPolicy
from flowrun.server.domain.names import random_run_name
from flowrun.server.domain.states import State, StateType
from flowrun.server.repositories import orchestration_sql as sql
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.driver_sql import Compiled, CompiledStatements, execute_prepared
from flowrun.server.repositories.filters import flow_run_where
from flowrun.server.repositories.flow_run_events import CHANNEL, FlowRunEventRepository
from flowrun.server.repositories.flow_run_states import STATE_PREFIX, state_from_row, state_values
from flowrun.server.repositories.paging import PAGE_KEY_LABEL, fetch_page, flow_run_sort_key

_state_columns = [column.label(f"{STATE_PREFIX}{column.name}") for column in flow_run_state.c]


QUEUE_PREFIX = "current_queue_"
_queue_columns = [
    work_queue.c.name.label(f"{QUEUE_PREFIX}name"),
    work_pool.c.id.label(f"{QUEUE_PREFIX}pool_id"),
    work_pool.c.name.label(f"{QUEUE_PREFIX}pool_name"),
]


def _run_with_state() -> Select:
    """The run with its current state and, when it is queued, its work queue and pool,
    in one query."""
    return select(flow_run, *_state_columns, *_queue_columns).select_from(_RUN_WITH_STATE_JOIN)


_RUN_WITH_STATE_JOIN = (
    flow_run.outerjoin(flow_run_state, flow_run_state.c.id == flow_run.c.state_id)
    .outerjoin(work_queue, work_queue.c.id == flow_run.c.work_queue_id)
    .outerjoin(work_pool, work_pool.c.id == work_queue.c.work_pool_id)
)


def _as_text(column: Any, label: str) -> Any:
    """A JSON or UUID column read as its text, under its usual label; other columns as
    they are."""
    return cast(column, Text).label(label) if isinstance(column.type, JSON | UUIDText) else column.label(label)


# Listing reads the same columns as _run_with_state, with every JSON column as its text:
# decoding it per value (asyncpg's and SQLAlchemy's JSON codecs: a Python call each, eight
# per run) cost more than the rest of the read together; _decode_page decodes a page's
# texts in one json.loads. UUIDs come as text too (the domain's form: PostgreSQL writes
# them canonically), rather than through two Python conversions per value.
_LISTED_COLUMNS = [
    *(_as_text(column, column.name) for column in flow_run.c),
    *(_as_text(column, f"{STATE_PREFIX}{column.name}") for column in flow_run_state.c),
    *(_as_text(column.element, column.name) for column in _queue_columns),
]
_JSON_LABELS = frozenset(
    [column.name for column in flow_run.c if isinstance(column.type, JSON)]
    + [f"{STATE_PREFIX}{column.name}" for column in flow_run_state.c if isinstance(column.type, JSON)]
)


# Times, and a time order's page key: asyncpg reads PostgreSQL's infinity and -infinity
# (a stored datetime.max or datetime.min, a time order's stand-in) as naive datetimes.
_TIME_LABELS = frozenset([column.name for column in _LISTED_COLUMNS if isinstance(column.type, Timestamp)]) | {
    PAGE_KEY_LABEL
}


def _decode_page(labels: list[str], rows: list[Any]) -> list[dict[str, Any]]:
    """Positional rows of _LISTED_COLUMNS (SQLAlchemy rows or asyncpg records), whose
    columns are `labels`, as dicts by label, their JSON texts decoded by one json.loads
    of the whole page (SQL NULL reads as None, as JSON null does), and a naive time (only
    ever an infinity read by asyncpg) made UTC, as the Timestamp type reads it."""
    if not rows:
        return []
    times = [index for index, label in enumerate(labels) if label in _TIME_LABELS]
    naive = [
        (number, index)
        for number, row in enumerate(rows)
        for index in times
        if (value := row[index]) is not None and value.__class__ is datetime and value.tzinfo is None
    ]
    positions = [index for index, label in enumerate(labels) if label in _JSON_LABELS]
    json_labels = [labels[index] for index in positions]
    texts = [row[index] for row in rows for index in positions]
    values = json.loads("[" + ",".join("null" if text is None else text for text in texts) + "]")
    width = len(positions)
    decoded = []
    for number, row in enumerate(rows):
        mapping = dict(zip(labels, row, strict=True))
        mapping.update(zip(json_labels, values[number * width : (number + 1) * width], strict=True))
        decoded.append(mapping)
    for number, index in naive:
        decoded[number][labels[index]] = rows[number][index].replace(tzinfo=UTC)
    return decoded


# ListFlowRuns' statements on PostgreSQL, compiled once per query (list_page).
LIST_STATEMENTS_KEPT = 512
_LIST_STATEMENTS = CompiledStatements(LIST_STATEMENTS_KEPT)
# An entry holds its filters twice over (the key's canonical text and the statement's
# bound values): only filters whose canonical text is at most this long are kept, so an
# entry holds ~50 KB (mostly the compiled SQL) and the cache ~25 MiB at most, whatever
# callers send. A larger filter (hundreds of ids,
# a long pattern) is compiled for its call: ~1.5 ms, small beside reading it.
CACHED_FILTER_CHARS = 2048


# The SetState writes, built once: only their bound values change per call. SQLite runs
# these statements (execute_prepared: on the sqlite3 connection in the writer thread);
# PostgreSQL one plain statement through asyncpg.
RUN_WRITE_COLUMNS = (*ORCHESTRATED_RUN_COLUMNS, "heartbeat_deadline", "empirical_policy", "updated")
INSERT_STATE = flow_run_state.insert()
SAVE_RUN = (
    update(flow_run)
    .where(flow_run.c.id == bindparam("run_key"))
    .values({name: bindparam(f"run_{name}") for name in RUN_WRITE_COLUMNS})
)
_WRITE_TRANSITION = sql.write_transition_sql(RUN_WRITE_COLUMNS)
_WRITE_TRANSITION_IF_UNCHANGED = sql.write_transition_if_unchanged_sql(RUN_WRITE_COLUMNS, CHANNEL)
# What orchestration reads: the run as `get` reads it (with its queue's and pool's names,
# which the watchers' events carry).
_ORCHESTRATION_READ = _run_with_state().where(flow_run.c.id == bindparam("flow_run_id"))
# The run as `get` reads it, plus its row version (PostgreSQL's xmin: it changes with
# every committed write of the row) for the conditional writes below.
_READ_WITH_VERSION = sql.postgresql_sql(
    _ORCHESTRATION_READ.add_columns(literal_column("flow_run.xmin").label("row_version"))
)
# The run as `get` reads it, locked (only its own row: the queue and pool are read, not locked).
_READ_FOR_UPDATE = sql.postgresql_sql(_ORCHESTRATION_READ)


_CREATE_IN_ONE_STATEMENT = sql.create_run_sql(CHANNEL)

# CreateFlowRun's statements, built once (execute_prepared: see SAVE_RUN): the flow's
# labels, and the insert of the run (executed with its values), per dialect, plain or
# ON CONFLICT (flow_id, idempotency_key) DO NOTHING.
_FLOW_LABELS = select(flow.c.labels).where(flow.c.id == bindparam("flow_id"))


def _insert_run(insert: Any, keyed: bool) -> Any:
    if keyed:
        insert = insert.on_conflict_do_nothing(index_elements=["flow_id", "idempotency_key"])
    return insert.returning(*flow_run.c)


_INSERT_RUN = {
    (name, keyed): _insert_run(Dialect(name).insert(flow_run), keyed)
    for name in ("sqlite", "postgresql")
    for keyed in (False, True)
}


def new_run_values(new: FlowRunCreate, now: datetime, labels: dict[str, Any], heartbeat_timeout: int) -> dict[str, Any]:
    """The columns of a new run before its first state (no work queue or deployment
    version: `create` adds those)."""
    return {
        "id": str(uuid.uuid4()),
        "created": now,
        "updated": now,
        "name": new.name or random_run_name(),
        "flow_id": new.flow_id,
        "flow_version": new.flow_version,
        "parameters": new.parameters,
        "context": new.context,
        "parent_task_run_id": new.parent_task_run_id,
        "infrastructure_document_id": new.infrastructure_document_id,
        "empirical_policy": new.empirical_policy.to_json(),
        "tags": new.tags,
        "labels": labels,
        "idempotency_key": new.idempotency_key,
        "work_queue_name": new.work_queue_name,
        "work_queue_id": None,
        "job_variables": new.job_variables if new.job_variables is not None else {},
        "deployment_id": new.deployment_id,
        "deployment_version": None,
        "run_count": 0,
        "total_run_time": 0.0,
        "auto_scheduled": False,
        "heartbeat_timeout_seconds": heartbeat_timeout or None,
    }


def key_holder_gone() -> errors.Conflict:
    """The run holding an idempotency key was deleted after an insert met it (READ COMMITTED)."""
    return errors.Conflict("The flow run holding the idempotency key changed concurrently; retry")


def _run_write_values(run: FlowRun, policy: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The values of RUN_WRITE_COLUMNS for a state change of `run`."""
    columns = {name: getattr(run, name) for name in ORCHESTRATED_RUN_COLUMNS}
    columns["state_type"] = run.state_type.value if run.state_type else None
    columns["heartbeat_deadline"] = run.heartbeat_deadline
    columns["empirical_policy"] = policy
    columns["updated"] = now
    return columns


def flow_run_from_row(row: Any) -> FlowRun:
    """From a SQLAlchemy row or a plain mapping (the asyncpg fast path)."""
    m = getattr(row, "_mapping", row)
    has_state = m.get(f"{STATE_PREFIX}id") is not None
    # A queued run shows its queue's and pool's names, not the stored work_queue_name.
    queued = m.get(f"{QUEUE_PREFIX}name") is not None
    return FlowRun(
        id=m["id"],
        created=m["created"],
        updated=m["updated"],
        flow_id=m["flow_id"],
        name=m["name"],
        state_type=StateType(m["state_type"]) if m["state_type"] else None,
        state_name=m["state_name"],
        state_timestamp=m["state_timestamp"],
        state_id=m["state_id"],
        run_count=m["run_count"],
        expected_start_time=m["expected_start_time"],
        next_scheduled_start_time=m["next_scheduled_start_time"],
        start_time=m["start_time"],
        end_time=m["end_time"],
        total_run_time=m["total_run_time"],
        deployment_id=m["deployment_id"],
        deployment_version=m["deployment_version"],
        work_queue_name=m[f"{QUEUE_PREFIX}name"] if queued else m["work_queue_name"],
        work_queue_id=m["work_queue_id"],
        work_pool_id=m[f"{QUEUE_PREFIX}pool_id"] if queued else None,
        work_pool_name=m[f"{QUEUE_PREFIX}pool_name"] if queued else None,
        flow_version=m["flow_version"],
        parameters=m["parameters"] or {},
        idempotency_key=m["idempotency_key"],
        context=m["context"] or {},
        empirical_policy=FlowRunPolicy.from_json(m["empirical_policy"]),
        tags=list(m["tags"] or []),
        labels=m["labels"],
        created_by=m["created_by"],
        infrastructure_pid=m["infrastructure_pid"],
        job_variables=m["job_variables"],
        infrastructure_document_id=m["infrastructure_document_id"],
        parent_task_run_id=m["parent_task_run_id"],
        auto_scheduled=m["auto_scheduled"],
        state=state_from_row(row, STATE_PREFIX) if has_state else None,
        heartbeat_timeout_seconds=m["heartbeat_timeout_seconds"],
        last_heartbeat_time=m["last_heartbeat_time"],
        heartbeat_deadline=m["heartbeat_deadline"],
    )


def _in_start_time_order(
    filters: ListFilters, sort: FlowRunSort, order: ColumnElement[Any]
) -> tuple[ListFilters, list[ColumnElement[bool]]]:
    """In a start-time order, the start-time filter's range written on the order's own
    expression `order` (filters without that range, and the clauses that replace it).
    The filter compares coalesce(start_time, expected_start_time); `order` is the same
    coalesce with a stand-in last (server/db/time_order.py), so on a run with one of the
    two times they are equal, and a run with neither is left out as the filter leaves it
    out. The same rows, but the index that gives the order (migration 0009) now bounds
    the page too: a one-day range reads its first page backwards and stops, instead of
    reading every run of the day through the filter's index and sorting them. Only in
    START_TIME_DESC: its stand-in (-infinity) is the one 0009 indexes; START_TIME_ASC's
    (infinity) has no index, so rewritten its range would read the whole table, while
    left alone it reads the day through the filter's index (0008) and sorts it."""
    run_filter = filters.flow_run
    if sort is not FlowRunSort.START_TIME_DESC or run_filter is None or run_filter.operator != AND:
        return filters, []
    started = run_filter.start_time
    if started is None or started.operator != AND or (started.after is None and started.before is None):
        return filters, []
    c = flow_run.c
    clauses = [or_(c.start_time.is_not(None), c.expected_start_time.is_not(None))]
    if started.after is not None:
        clauses.append(order >= started.after)
    if started.before is not None:
        clauses.append(order <= started.before)
    rest = replace(run_filter, start_time=replace(started, after=None, before=None))
    return replace(filters, flow_run=rest), clauses


class FlowRunRepository(Repository):
    async def create(
        self,
        new: FlowRunCreate,
        now: datetime,
        *,
        work_queue_id: str | None = None,
        default_heartbeat_timeout_seconds: int = 0,
    ) -> tuple[FlowRun, bool]:
        """Inserts the run on `work_queue_id` (resolved by the caller from the work pool
        and queue names). Its heartbeat timeout is the run's own, else its deployment's,
        else `default_heartbeat_timeout_seconds`; 0 is stored as NULL (off). With an
        idempotency key the insert is
        ON CONFLICT (flow_id, idempotency_key) DO NOTHING and a conflict returns the run
        that holds the key, untouched. Labels are the deployment's (when the run names an
        existing one, which also gives its version) or else the flow's, then the system
        labels, then the run's own. Raises NotFound for an unknown flow or parent task."""
        flow_row = (await execute_prepared(self.connection, _FLOW_LABELS, {"flow_id": new.flow_id})).first()
        if flow_row is None:
            raise errors.flow_not_found(new.flow_id)
        if new.parent_task_run_id is not None:
            found = await self.connection.execute(select(task_run.c.id).where(task_run.c.id == new.parent_task_run_id))
            if found.first() is None:
                raise errors.task_run_not_found(new.parent_task_run_id)
        labels = {**(flow_row.labels or {}), "prefect.flow.id": new.flow_id, **new.labels}
        deployment_version = None
        heartbeat_timeout = new.heartbeat_timeout_seconds
        if new.deployment_id is not None:
            query = select(deployment.c.labels, deployment.c.version, deployment.c.heartbeat_timeout_seconds).where(
                deployment.c.id == new.deployment_id
            )
            deployment_row = (await self.connection.execute(query)).first()
            if deployment_row is not None:
                system = {"prefect.flow.id": new.flow_id, "prefect.deployment.id": new.deployment_id}
                labels = {**(deployment_row.labels or {}), **system, **new.labels}
                deployment_version = deployment_row.version
                if heartbeat_timeout is None:
                    heartbeat_timeout = deployment_row.heartbeat_timeout_seconds
        if heartbeat_timeout is None:
            heartbeat_timeout = default_heartbeat_timeout_seconds
        values = new_run_values(new, now, labels, heartbeat_timeout)
        values["work_queue_id"] = work_queue_id
        values["deployment_version"] = deployment_version
        insert = _INSERT_RUN[self.dialect.name, new.idempotency_key is not None]
        try:
            inserted = (await execute_prepared(self.connection, insert, values)).first()
        except IntegrityError as exc:
            if is_foreign_key_violation(exc):  # the flow was deleted concurrently
                raise errors.flow_not_found(new.flow_id) from exc
            raise
        if inserted is not None:
            if work_queue_id is None:  # a new run has no state: the inserted row is all of it
                return flow_run_from_row(inserted), True
            run = await self.get(inserted.id)  # with its queue's and pool's names
            if run is None:  # not expected (our own insert): retriable, never an assert
                raise errors.Conflict("The flow run changed concurrently; retry")
            return run, True
        assert new.idempotency_key is not None, "only a key can conflict"
        existing = await self.get_by_idempotency_key(new.flow_id, new.idempotency_key)
        if existing is None:
            raise key_holder_gone()
        return existing, False

    async def create_in_one_statement(self, run: FlowRun, state: State, payload: str) -> tuple[bool, bool]:
        """PostgreSQL: CreateFlowRun for a run with no deployment, work pool or parent
        task run, as one statement that is its own transaction. `run` is the new run in
        the shape its initial state `state` gives it (orchestrated in memory), its labels
        the system and the run's own; the flow's labels go under them in the statement
        (flow labels || run labels: the later wins, as in `create`), in the stored run and
        in the CREATED event's `payload`. Returns (the flow exists, the run was inserted);
        not inserted means its idempotency key is taken (read that run with
        `get_by_idempotency_key`) or its id is: sent again after a lost answer, the first
        attempt committed it. On success `run.labels` are the stored ones."""
        assert self.driver is not None, "PostgreSQL only"
        values = {column.name: getattr(run, column.name, None) for column in flow_run.c}
        values["state_type"] = run.state_type.value if run.state_type else None
        values["empirical_policy"] = run.empirical_policy.to_json()
        args = [sql.json_param(name, values[name]) for name in sql.RUN_COLUMNS]
        state_row = state_values(state, run.created, flow_run_id=run.id)
        args += [sql.json_param(name, state_row[name]) for name in sql.STATE_COLUMNS]
        args += [run.created, EventKind.CREATED.value, payload]
        try:
            record = await self.driver.fetchrow(_CREATE_IN_ONE_STATEMENT, *args)
        except asyncpg.ForeignKeyViolationError as exc:  # the flow was deleted concurrently
            raise errors.flow_not_found(run.flow_id) from exc
        assert record is not None, "the statement always returns one row"
        if record["labels"] is not None:
            run.labels = record["labels"]
        return bool(record["flow_found"]), record["labels"] is not None

    async def get_by_idempotency_key(self, flow_id: str, idempotency_key: str) -> FlowRun | None:
        query = _run_with_state().where(flow_run.c.flow_id == flow_id, flow_run.c.idempotency_key == idempotency_key)
        row = (await self.connection.execute(query)).first()
        return flow_run_from_row(row) if row else None

    async def get(self, flow_run_id: str) -> FlowRun | None:
        row = (await self.connection.execute(_run_with_state().where(flow_run.c.id == flow_run_id))).first()
        return flow_run_from_row(row) if row else None

    async def get_for_orchestration(self, flow_run_id: str) -> FlowRun | None:
        """The run and its current state, with the run's row locked (FOR UPDATE OF
        flow_run on PostgreSQL; on SQLite the IMMEDIATE transaction holds the lock).

        One round trip, except after waiting for a concurrent transition on PostgreSQL:
        the re-checked run row is the latest, but its join partner comes from the
        statement's snapshot, where the new state row does not exist yet. The lock is
        ours by then, so a second read sees the state that transaction committed."""
        if not self.dialect.is_sqlite:
            return await self._get_for_orchestration_pg(flow_run_id)
        row = (await execute_prepared(self.connection, _ORCHESTRATION_READ, {"flow_run_id": flow_run_id})).first()
        return flow_run_from_row(row) if row else None

    async def _get_for_orchestration_pg(self, flow_run_id: str) -> FlowRun | None:
        pg = self.driver
        assert pg is not None, "the PostgreSQL unit of work provides its asyncpg connection"
        record = await pg.fetchrow(_READ_FOR_UPDATE + sql.LOCK, flow_run_id)
        if record is None:
            return None
        run = flow_run_from_row(sql.as_mapping(record))
        if run.state_id is not None and (run.state is None or run.state.id != run.state_id):
            again = await pg.fetchrow(_READ_FOR_UPDATE, flow_run_id)
            assert again is not None, "the row is locked by the read above: it cannot be gone"
            run = flow_run_from_row(sql.as_mapping(again))
        return run

    async def read_with_version(self, flow_run_id: str) -> tuple[FlowRun, int] | None:
        """PostgreSQL, without a lock: the run as `get` reads it and its row version, for
        the conditional writes below (server/orchestration/unlocked.py)."""
        assert self.driver is not None, "PostgreSQL only"
        record = await self.driver.fetchrow(_READ_WITH_VERSION, flow_run_id)
        if record is None:
            return None
        return flow_run_from_row(sql.as_mapping(record)), record["row_version"]

    async def save_transition_if_unchanged(
        self, run: FlowRun, version: int, state: State, previous: StateType | None, now: datetime
    ) -> bool:
        """save_transition and the STATE_CHANGED event of the run, as one statement that
        is its own transaction and writes only if the run's row version is still
        `version`. False: nothing was written (the run changed or is gone)."""
        assert self.driver is not None, "PostgreSQL only"
        columns = _run_write_values(run, run.empirical_policy.to_json(), now)
        args = sql.write_transition_args(
            state_values(state, now, flow_run_id=run.id), columns, RUN_WRITE_COLUMNS, run.id
        )
        payload = encode_payload(run, state, previous)
        rows = await self.driver.fetch(
            _WRITE_TRANSITION_IF_UNCHANGED, *args, version, now, EventKind.STATE_CHANGED.value, payload
        )
        return bool(rows)

    async def save_policy_if_unchanged(self, run: FlowRun, version: int, now: datetime) -> bool:
        """save_policy, only if the run's row version is still `version` (one statement)."""
        assert self.driver is not None, "PostgreSQL only"
        policy = json.dumps(run.empirical_policy.to_json())
        return await self.driver.execute(sql.SAVE_POLICY_IF_UNCHANGED, policy, now, run.id, version) == "UPDATE 1"

    async def save_transition(self, run: FlowRun, state: State, policy: dict[str, Any], now: datetime) -> None:
        """Appends `state` to the run's history and writes the run's orchestrated columns
        (state pointer, denormalized state, timing bookkeeping, and `policy`, the run's
        policy as JSON): one statement on PostgreSQL (the INSERT rides in a CTE), two on
        SQLite. The statements are built once; each call only binds values."""
        columns = _run_write_values(run, policy, now)
        state_row = state_values(state, now, flow_run_id=run.id)
        if self.dialect.is_sqlite:
            await execute_prepared(self.connection, INSERT_STATE, state_row)
            await execute_prepared(
                self.connection,
                SAVE_RUN,
                {f"run_{name}": value for name, value in columns.items()} | {"run_key": run.id},
            )
        else:
            assert self.driver is not None, "the PostgreSQL unit of work provides its asyncpg connection"
            await self.driver.execute(
                _WRITE_TRANSITION, *sql.write_transition_args(state_row, columns, RUN_WRITE_COLUMNS, run.id)
            )

    async def save_policy(self, flow_run_id: str, policy: dict[str, Any], now: datetime) -> None:
        await self.connection.execute(
            update(flow_run).where(flow_run.c.id == flow_run_id).values(empirical_policy=policy, updated=now)
        )

    async def list_page(
        self, filters: ListFilters, sort: FlowRunSort, page: PageRequest, *, secret: str
    ) -> tuple[list[FlowRun], str]:
        sort_key = flow_run_sort_key(sort)
        where, in_order = _in_start_time_order(filters, sort, sort_key.expression)
        query = (
            select(*_LISTED_COLUMNS)
            .select_from(_RUN_WITH_STATE_JOIN)
            .where(flow_run_where(self.dialect, where), *in_order)
        )
        query_fingerprint = fingerprint("flow_runs", filters)
        fetch = None
        if self.driver is not None:
            driver = self.driver
            dialect = self.connection.dialect

            async def fetch(statement: Select, values: dict[str, Any]) -> list[asyncpg.Record]:
                """PostgreSQL: the page's rows read by the asyncpg connection itself, as
                the records it returns (every listed column is a type asyncpg decodes as
                the domain holds it: text, numbers, datetimes), without SQLAlchemy's
                result processing. The statement is compiled once per query: its
                filters (by their fingerprint, which page tokens already rely on to
                tell queries apart), its sort and which page values it binds; only a
                query whose filters are short (CACHED_FILTER_CHARS) is kept."""
                key = (dialect, query_fingerprint, sort, frozenset(values))
                if len(query_fingerprint) <= CACHED_FILTER_CHARS:
                    sql_text, args = _LIST_STATEMENTS.driver_statement(key, statement, dialect, values)
                else:
                    sql_text, args = Compiled(statement, dialect).bound(values)
                return await driver.fetch(sql_text, *args)

        rows, token = await fetch_page(
            self.connection,
            query,
            sort_key,
            page,
            secret=secret,
            fingerprint=query_fingerprint,
            decode=_decode_page,
            fetch=fetch,
        )
        return [flow_run_from_row(row) for row in rows], token

    async def count(self, filters: ListFilters) -> int:
        query = select(func.count()).select_from(flow_run).where(flow_run_where(self.dialect, filters))
        return (await self.connection.execute(query)).scalar_one()

    async def update(self, flow_run_id: str, values: dict[str, Any], now: datetime) -> FlowRun | None:
        """Applies `values` (column -> value) and bumps `updated`."""
        statement = update(flow_run).where(flow_run.c.id == flow_run_id).values(updated=now, **values)
        result = await self.connection.execute(statement.returning(flow_run.c.id))
        if result.first() is None:
            return None
        run = await self.get(flow_run_id)
        if run is not None:
            await self._events().append(EventKind.UPDATED, run, now)
        return run

    async def delete(self, flow_run_id: str) -> bool:
        """Deletes the run; its states and task runs go by ON DELETE CASCADE. Subflow runs
        of its task runs lose their parent pointer (there is no FK to do it for us).
        The run is locked first and its DELETED event (the run as it was last) follows
        the delete, so it comes after every change committed before."""
        if await self.get_for_orchestration(flow_run_id) is None:
            return False
        last = await self.get(flow_run_id)
        orphaned = select(task_run.c.id).where(task_run.c.flow_run_id == flow_run_id)
        await self.connection.execute(
            update(flow_run).where(flow_run.c.parent_task_run_id.in_(orphaned)).values(parent_task_run_id=None)
        )
        result = await self.connection.execute(
            delete(flow_run).where(flow_run.c.id == flow_run_id).returning(flow_run.c.id)
        )
        if result.first() is None or last is None:
            return False
        await self._events().append(EventKind.DELETED, last, clock.now())
        return True

    async def of_flows(self, flow_ids: list[str]) -> list[FlowRun]:
        """Every run of these flows, with its current state (their DELETED events when
        the flows go)."""
        rows = await self.connection.execute(_run_with_state().where(flow_run.c.flow_id.in_(flow_ids)))
        return [flow_run_from_row(row) for row in rows]

    def _events(self) -> FlowRunEventRepository:
        return FlowRunEventRepository(self.connection, self.dialect, self.driver)
