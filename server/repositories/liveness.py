"""Liveness: heartbeats, and the candidate reads and claims of the server's sweeps
(server/liveness/).

A sweep reads candidates without locking them, a batch at a time in key order (each read
is one index range scan), then acts on each in a transaction of its own: it *claims* the
run (the row lock, taken only if free: FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
IMMEDIATE transaction already holds the database lock) and re-checks under that lock
that the run is still in the state the read saw. A run that another process is changing
right now is skipped, never waited for, so a sweep holds the lock of one run at a time
and never makes SetFlowRunState wait longer than one transition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from flowrun.server.db.tables import flow_run, flow_run_state
from flowrun.server.domain.states import StateType
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.flow_run_states import STATE_PREFIX, state_from_row

_state_columns = [column.label(f"{STATE_PREFIX}{column.name}") for column in flow_run_state.c]


#: Where a sweep's read continues: the (key, run id) of the last run it read.
Position = tuple[Any, str]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A run a sweep may act on: its id, the state it was read in, the time the sweep
    keys it by (its heartbeat deadline, scheduled time or pause timeout) and its place
    in the sweep's order (`position`, for the next batch to continue after)."""

    run_id: str
    state_id: str
    when: datetime | None
    position: Position


@dataclass(frozen=True, slots=True)
class Silence:
    """What the zombie sweep tells the run it crashes, read under the run's lock."""

    last_heartbeat_time: datetime | None
    running_since: datetime | None
    heartbeat_timeout_seconds: int | None


@dataclass(frozen=True, slots=True)
class HeartbeatOutcome:
    """`recorded`: the run was RUNNING and its heartbeat stored. Otherwise `found` says
    whether the run exists and `state_type` what it is in instead."""

    found: bool
    recorded: bool
    state_type: StateType | None = None
    deadline: datetime | None = None
    heartbeat_timeout_seconds: int | None = None


def continuation(read: list[Candidate], limit: int) -> Position | None:
    """Where the next read continues: after the last run of a full read; None after a
    read that came back short (there is nothing more)."""
    return read[-1].position if len(read) >= limit else None


def _after(key: ColumnElement, position: Position | None) -> ColumnElement[bool] | None:
    """Keyset continuation: rows ordered by (key, id) after `position`."""
    if position is None:
        return None
    value, run_id = position
    # key >= value repeats what the OR implies, so the index range starts there.
    return and_(key >= value, or_(key > value, and_(key == value, flow_run.c.id > run_id)))


class LivenessRepository(Repository):
    async def heartbeat(self, flow_run_id: str, now: datetime) -> HeartbeatOutcome:
        """Records a heartbeat of a RUNNING run: last_heartbeat_time = now and, when it
        has a timeout, heartbeat_deadline = now + timeout. The UPDATE's condition on the
        state decides (re-checked under the row lock), so a heartbeat never lands on a
        run that finished or was crashed meanwhile. `updated` is not bumped."""
        found = (
            await self.connection.execute(
                select(flow_run.c.heartbeat_timeout_seconds).where(flow_run.c.id == flow_run_id)
            )
        ).first()
        if found is None:
            return HeartbeatOutcome(found=False, recorded=False)
        timeout = found.heartbeat_timeout_seconds  # fixed at creation
        deadline = now + timedelta(seconds=timeout) if timeout else None
        statement = (
            update(flow_run)
            .where(flow_run.c.id == flow_run_id, flow_run.c.state_type == StateType.RUNNING.value)
            .values(last_heartbeat_time=now, heartbeat_deadline=deadline)
            .returning(flow_run.c.id)
        )
        if (await self.connection.execute(statement)).first() is not None:
            return HeartbeatOutcome(found=True, recorded=True, deadline=deadline, heartbeat_timeout_seconds=timeout)
        current = (
            await self.connection.execute(select(flow_run.c.state_type).where(flow_run.c.id == flow_run_id))
        ).first()
        if current is None:  # deleted in between
            return HeartbeatOutcome(found=False, recorded=False)
        state_type = StateType(current.state_type) if current.state_type else None
        return HeartbeatOutcome(found=True, recorded=False, state_type=state_type)

    async def silent_runs(self, now: datetime, after: Position | None, limit: int) -> list[Candidate]:
        """Runs whose heartbeat deadline passed before `now`, by deadline: one range
        scan of its index. Only RUNNING runs have a deadline (the bookkeeping clears it
        on leaving RUNNING); the claim checks the state again under the lock."""
        deadline = flow_run.c.heartbeat_deadline
        return await self._candidates(deadline, [deadline < now], after, limit)

    async def late_runs(self, cutoff: datetime, after: Position | None, limit: int) -> list[Candidate]:
        """Runs still in Scheduled "Scheduled" whose scheduled time is at or before
        `cutoff`, by scheduled time (the reference's late-runs query)."""
        scheduled = flow_run.c.next_scheduled_start_time
        conditions = [
            scheduled <= cutoff,
            flow_run.c.state_type == StateType.SCHEDULED.value,
            flow_run.c.state_name == "Scheduled",
        ]
        return await self._candidates(scheduled, conditions, after, limit)

    async def _candidates(
        self, key: Any, conditions: list[ColumnElement[bool]], after: Position | None, limit: int
    ) -> list[Candidate]:
        continuation = _after(key, after)
        if continuation is not None:
            conditions = [*conditions, continuation]
        query = (
            select(flow_run.c.id, flow_run.c.state_id, key.label("sweep_key"))
            .where(*conditions, flow_run.c.state_id.is_not(None))
            .order_by(key, flow_run.c.id)
            .limit(limit)
        )
        rows = (await self.connection.execute(query)).all()
        return [Candidate(row.id, row.state_id, row.sweep_key, (row.sweep_key, row.id)) for row in rows]

    async def paused_runs(self, after: Position | None, limit: int) -> list[Candidate]:
        """PAUSED runs by id, each with its pause's timeout (None: it never expires). The
        timeout lives in the current state's details, so the caller compares it; the
        state_type index bounds the read to the runs that are paused."""
        conditions: list[ColumnElement[bool]] = [flow_run.c.state_type == StateType.PAUSED.value]
        if after is not None:
            conditions.append(flow_run.c.id > after[1])
        query = (
            select(flow_run.c.id, flow_run.c.state_id, *_state_columns)
            .select_from(flow_run.join(flow_run_state, flow_run_state.c.id == flow_run.c.state_id))
            .where(*conditions)
            .order_by(flow_run.c.id)
            .limit(limit)
        )
        rows = (await self.connection.execute(query)).all()
        candidates = []
        for row in rows:
            timeout = state_from_row(row, STATE_PREFIX).state_details.pause_timeout
            candidates.append(Candidate(row.id, row.state_id, timeout, (None, row.id)))
        return candidates

    async def claim(self, flow_run_id: str, state_id: str) -> bool:
        """Locks the run if no one holds its lock and it is still in state `state_id`."""
        query = select(flow_run.c.id).where(flow_run.c.id == flow_run_id, flow_run.c.state_id == state_id)
        return (await self.connection.execute(self.dialect.lock_for_update_skip_locked(query))).first() is not None

    async def claim_silent(self, flow_run_id: str, state_id: str, now: datetime) -> Silence | None:
        """As claim, and only if its heartbeat deadline is still before `now` (no
        heartbeat landed since the sweep's read); what the crash message tells."""
        query = select(
            flow_run.c.last_heartbeat_time, flow_run.c.state_timestamp, flow_run.c.heartbeat_timeout_seconds
        ).where(
            flow_run.c.id == flow_run_id,
            flow_run.c.state_id == state_id,
            flow_run.c.state_type == StateType.RUNNING.value,
            flow_run.c.heartbeat_deadline < now,
        )
        row = (await self.connection.execute(self.dialect.lock_for_update_skip_locked(query))).first()
        if row is None:
            return None
        return Silence(row.last_heartbeat_time, row.state_timestamp, row.heartbeat_timeout_seconds)
