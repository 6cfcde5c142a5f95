"""Task runs: idempotent creation, reads with the current state, filtered pages, the
locked read and write-back that orchestration uses, their state history, and the
dependency map of a flow run."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, null, select, update
from sqlalchemy.exc import IntegrityError

from flowrun.server import errors
from flowrun.server.db.dialect import is_foreign_key_violation
from flowrun.server.db.tables import ORCHESTRATED_RUN_COLUMNS, task_run, task_run_state
from flowrun.server.domain.filters import PageRequest, TaskRunFilter, fingerprint
from flowrun.server.domain.states import State, StateType
from flowrun.server.domain.task_runs import (
    TaskRun,
    TaskRunCreate,
    TaskRunPolicy,
    TaskRunSort,
)
from flowrun.server.repositories import batched_reads
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.filters import task_run_where
from flowrun.server.repositories.flow_run_states import STATE_PREFIX, state_from_row, state_values
from flowrun.server.repositories.paging import fetch_page, task_run_sort_key

_state_columns = [column.label(f"{STATE_PREFIX}{column.name}") for column in task_run_state.c]


def _run_with_state() -> Select:
    return select(task_run, *_state_columns).select_from(
        task_run.outerjoin(task_run_state, task_run_state.c.id == task_run.c.state_id)
    )


def task_run_from_row(row: Any) -> TaskRun:
    m = row._mapping
    has_state = m[f"{STATE_PREFIX}id"] is not None
    return TaskRun(
        id=m["id"],
        created=m["created"],
        updated=m["updated"],
        name=m["name"],
        flow_run_id=m["flow_run_id"],
        task_key=m["task_key"],
        dynamic_key=m["dynamic_key"],
        cache_key=m["cache_key"],
        cache_expiration=m["cache_expiration"],
        task_version=m["task_version"],
        flow_run_run_count=m["flow_run_run_count"],
        empirical_policy=TaskRunPolicy.from_json(m["empirical_policy"]),
        tags=list(m["tags"] or []),
        labels=m["labels"],
        task_inputs=m["task_inputs"] or {},
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
        state=state_from_row(row, STATE_PREFIX) if has_state else None,
    )


class TaskRunRepository(Repository):
    async def create(self, new: TaskRunCreate, now: datetime) -> tuple[TaskRun, bool]:
        """INSERT ... ON CONFLICT (flow_run_id, task_key, dynamic_key) DO NOTHING: a
        conflict returns the task run that holds the key, untouched, and False. Raises
        NotFound for an unknown flow run."""
        task_run_id = str(uuid.uuid4())
        name = new.name or new.task_key
        values = {
            "id": task_run_id,
            "created": now,
            "updated": now,
            "name": name,
            "flow_run_id": new.flow_run_id,
            "task_key": new.task_key,
            "dynamic_key": new.dynamic_key,
            "cache_key": new.cache_key,
            "cache_expiration": new.cache_expiration,
            "task_version": new.task_version,
            "flow_run_run_count": 0,
            "empirical_policy": new.empirical_policy.to_json(),
            "task_inputs": new.task_inputs,
            "tags": new.tags,
            "labels": new.labels,
            "run_count": 0,
            "total_run_time": 0.0,
        }
        insert = (
            self.dialect.insert(task_run)
            .values(values)
            .on_conflict_do_nothing(index_elements=["flow_run_id", "task_key", "dynamic_key"])
        )
        try:
            inserted = (await self.connection.execute(insert.returning(task_run.c.id))).first()
        except IntegrityError as exc:
            if is_foreign_key_violation(exc):
                raise errors.flow_run_not_found(new.flow_run_id) from exc
            raise
        if inserted is not None:
            return TaskRun(
                id=task_run_id,
                created=now,
                updated=now,
                name=name,
                flow_run_id=new.flow_run_id,
                task_key=new.task_key,
                dynamic_key=new.dynamic_key,
                cache_key=new.cache_key,
                cache_expiration=new.cache_expiration,
                task_version=new.task_version,
                empirical_policy=new.empirical_policy,
                tags=list(new.tags),
                labels=new.labels,
                task_inputs=new.task_inputs,
            ), True
        query = _run_with_state().where(
            task_run.c.flow_run_id == new.flow_run_id,
            task_run.c.task_key == new.task_key,
            task_run.c.dynamic_key == new.dynamic_key,
        )
        row = (await self.connection.execute(query)).first()
        if row is None:  # the task run holding the key was deleted after our insert met it (READ COMMITTED)
            raise errors.Conflict("The task run holding that key changed concurrently; retry")
        return task_run_from_row(row), False

    async def get(self, task_run_id: str) -> TaskRun | None:
        row = (await self.connection.execute(_run_with_state().where(task_run.c.id == task_run_id))).first()
        return task_run_from_row(row) if row else None

    async def get_for_orchestration(self, task_run_id: str) -> TaskRun | None:
        """The task run and its current state, with the task run's row locked (FOR
        UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction holds the lock)."""
        query = self.dialect.lock_for_update(_run_with_state().where(task_run.c.id == task_run_id), task_run)
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        run = task_run_from_row(row)
        if run.state_id is not None and (run.state is None or run.state.id != run.state_id):
            # PostgreSQL: a FOR UPDATE that waited for a concurrent transition returns
            # the re-checked row, but the joined state comes from the statement's
            # snapshot, which predates that transition's state. We hold the lock: a new
            # statement sees the committed state.
            return await self.get(task_run_id)
        return run

    async def save_transition(self, run: TaskRun, state: State, policy: dict[str, Any], now: datetime) -> None:
        """Appends `state` to the task run's history and writes the run's orchestrated
        columns (state pointer, denormalized state, timing bookkeeping, and `policy`)."""
        await self.connection.execute(task_run_state.insert().values(state_values(state, now, task_run_id=run.id)))
        values: dict[str, Any] = {name: getattr(run, name) for name in ORCHESTRATED_RUN_COLUMNS}
        values["state_type"] = run.state_type.value if run.state_type else None
        values["empirical_policy"] = policy
        values["updated"] = now
        await self.connection.execute(update(task_run).where(task_run.c.id == run.id).values(values))

    async def save_policy(self, task_run_id: str, policy: dict[str, Any], now: datetime) -> None:
        await self.connection.execute(
            update(task_run).where(task_run.c.id == task_run_id).values(empirical_policy=policy, updated=now)
        )

    async def list_page(
        self, task_run_filter: TaskRunFilter | None, sort: TaskRunSort, page: PageRequest, *, secret: str
    ) -> tuple[list[TaskRun], str]:
        query = _run_with_state().where(task_run_where(self.dialect, task_run_filter))
        rows, token = await fetch_page(
            self.connection,
            query,
            task_run_sort_key(sort),
            page,
            secret=secret,
            fingerprint=fingerprint("task_runs", task_run_filter),
        )
        return [task_run_from_row(row) for row in rows], token

    async def of_flow_run(self, flow_run_id: str, *, limit: int) -> AsyncGenerator[TaskRun, None]:
        """The flow run's first `limit` task runs with their current state, newest id first
        (the dependency map's order), one at a time as the map takes them: read a batch at
        a time (server/repositories/batched_reads.py), each run's task_inputs decoded only
        when it is its turn, so the caller holds about one batch of rows when it stops at
        the response limit. Without the columns the map does not show (tags, labels,
        policy). Close it when stopping early (contextlib.aclosing)."""
        query = (
            _dependency_query().where(task_run.c.flow_run_id == flow_run_id).order_by(task_run.c.id.desc()).limit(limit)
        )
        async with aclosing(batched_reads.rows_in_batches(self.connection, query)) as batches:
            async for rows in batches:
                for row in rows:
                    run = task_run_from_row(row)
                    run.task_inputs = json.loads(row.task_inputs_json) or {}
                    yield run


# A dependency map entry shows a task run's name, upstream ids, timing and state: the
# columns it does not show (each up to the write budget) are not read, and task_inputs is
# read as its JSON text, decoded one run at a time (not a batch, or PostgreSQL's cursor
# prefetch of rows, at once).
_UNSHOWN = ("tags", "labels", "empirical_policy", "task_inputs")


def _dependency_query() -> Select:
    shown = [column for column in task_run.c if column.name not in _UNSHOWN]
    return select(
        *shown,
        *(null().label(name) for name in _UNSHOWN),
        cast(task_run.c.task_inputs, Text).label("task_inputs_json"),
        *_state_columns,
    ).select_from(task_run.outerjoin(task_run_state, task_run_state.c.id == task_run.c.state_id))
