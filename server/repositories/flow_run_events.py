"""The outbox of flow-run changes: events appended in the changing transaction, read
back in order by watchers (server/watch/), pruned by retention.

Reading without skipping on PostgreSQL. Transactions commit in any order, so the
events visible to a reader are not a prefix of the sequence: a transaction still in
progress may hold a smaller sequence value than one already visible. A reader's
position is therefore not a number but a snapshot's frontier (`after`, `xmax`,
`pending`): every event with sequence <= after was delivered, except those written by
a transaction the snapshot saw as in progress, which PostgreSQL reports in two parts:
the ids in `pending` (the snapshot's xip list) and every id >= `xmax`. The second part
matters: a snapshot's xmax is the last *completed* transaction id + 1, so a transaction
that took its id after the last one to finish is running but in no list (the bug that
read only xip skipped such events under load).

Why that is enough: each event row stores its writer's transaction id (`xid`), and the
writer has its xid before it draws a sequence value (the insert takes the xid first,
and every event follows the change it describes). Take a read at snapshot S that saw
sequence M. Any event with sequence g <= M that S did not see drew g before M did,
so before S was taken: its transaction was running at S, so S counts it as in
progress (in xip(S), or at or above xmax(S)). So "everything S saw with sequence <= M,
and S's in-progress set" names exactly what has been delivered; the next read fetches
the events after M plus those of the in-progress transactions, in one statement (one
snapshot). Delivery is immediate on commit, with no waiting for older transactions.

Per-run order holds: two changes of one run are serialized by the run's row lock, so
the later one draws its sequence after the earlier one committed; any snapshot that
sees the later one sees the earlier one too, and a batch is sent in sequence order.

Every read is bounded by its limit, also the events of the in-progress transactions
that committed since (one transaction may hold 100,000: a flow's delete). Those are read
by sequence, at most `limit`; when more are waiting the reader is part way through
them, which a position of the three numbers cannot say: the position keeps its
(after, xmax, pending) and adds a `Replay` (through, and the frontier of the snapshot S
of the read that found them). It delivers, besides the events of its base, those with
sequence <= through written by a transaction in the base's in-progress set that S saw
complete. Those transactions are committed (or rolled back, writing nothing), so their
events never change: the next reads page through them by sequence, holding S's
frontier fixed (a transaction that commits meanwhile is not in the set, so none of its
events can fall below `through` unread). When a page comes back short, every event of
those transactions up to `after` has been delivered, and the position becomes
(after, S's xmax, S's pending): S's in-progress set is the part of the base's still
running (S came later; a transaction complete at the base's snapshot is complete at S,
so S's set lies inside the base's), which is what remains undelivered up to `after`.
Only then are events past `after` read again. An event delivered while paging carries
the base as its cursor (a resume from it sends the rest of those transactions' events
again: at least once, never skipped), and `resumable` drops the replay from any position
that leaves the process as a cursor.

SQLite serializes writers (BEGIN IMMEDIATE), so commit order is sequence order and
`pending` is always empty."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, Engine, and_, delete, event, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowrun.server.db.tables import flow_run_event, flow_run_event_horizon
from flowrun.server.domain.events import EventKind, FlowRunEvent, decode_payload, encode_payload
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.repositories.base import Repository
from flowrun.server.repositories.driver_sql import execute_prepared

#: The PostgreSQL channel that wakes watchers; a NOTIFY is sent with every event batch.
CHANNEL = "flowrun_flow_run_events"
# connection.info key: this transaction wrote events (SQLite's in-process wake-up).
_WROTE_EVENTS = "flowrun_wrote_events"

_APPEND_PG = f"""
WITH writer AS MATERIALIZED (SELECT pg_current_xact_id()::text::bigint AS xid),
appended AS (
    INSERT INTO flow_run_event (xid, occurred, kind, flow_run_id, payload)
    SELECT writer.xid, $1, $2, $3, $4 FROM writer
    RETURNING sequence
)
SELECT pg_notify('{CHANNEL}', '') FROM appended
"""

# Many events of one kind in one statement (a flow's delete: one per run), in the given
# order, with one NOTIFY; the writer's xid is taken first, as in _APPEND_PG.
_APPEND_MANY_PG = f"""
WITH writer AS MATERIALIZED (SELECT pg_current_xact_id()::text::bigint AS xid),
appended AS (
    INSERT INTO flow_run_event (xid, occurred, kind, flow_run_id, payload)
    SELECT writer.xid, $1, $2, event.flow_run_id, event.payload
    FROM writer, unnest($3::uuid[], $4::text[]) WITH ORDINALITY AS event(flow_run_id, payload, n)
    ORDER BY event.n
    RETURNING sequence
)
SELECT pg_notify('{CHANNEL}', '') FROM (SELECT count(*) FROM appended) AS written
"""

# SQLite's append, built once (execute_prepared: on the sqlite3 connection in the writer thread).
_APPEND_SQLITE = flow_run_event.insert()

_COLUMNS = "e.sequence, e.xid, e.occurred, e.kind, e.payload"
# The statement's snapshot's in-progress set: the xip list and xmax (see the module docstring).
_SNAPSHOT_PG = """
SELECT (SELECT coalesce(array_agg(x::text::bigint), '{}') FROM pg_snapshot_xip(s) AS x) AS xip,
       pg_snapshot_xmax(s)::text::bigint AS xmax
FROM pg_current_snapshot() AS s
"""
# One statement, one snapshot: the snapshot's in-progress set, the first $4 events of the
# transactions that were in progress at the last read ($2: xip, $3: xmax) and have
# committed since, and as many events after `after` as the limit leaves room for (none
# when those fill it); one row with NULLs when there are no events.
_READ_PG = f"""
WITH snap AS MATERIALIZED ({_SNAPSHOT_PG}),
committed_since AS MATERIALIZED (
    SELECT {_COLUMNS} FROM flow_run_event e
    WHERE (e.xid = ANY($2::bigint[]) OR e.xid >= $3) AND e.sequence <= $1
    ORDER BY e.sequence LIMIT $4
),
batch AS (
    (SELECT * FROM committed_since)
    UNION ALL
    (SELECT {_COLUMNS} FROM flow_run_event e WHERE e.sequence > $1
     ORDER BY e.sequence LIMIT $4 - (SELECT count(*) FROM committed_since))
)
SELECT snap.xip, snap.xmax, batch.* FROM snap LEFT JOIN batch ON true ORDER BY batch.sequence
"""
# Paging through a Replay: the next events, by sequence up to `after` ($1), of the
# transactions in progress at the base ($2: xip, $3: xmax) that the replay's snapshot
# saw complete (not in $5: xip, nor >= $6: xmax), past `through` ($4); at most $7.
_REPLAY_PG = f"""
SELECT {_COLUMNS} FROM flow_run_event e
WHERE (e.xid = ANY($2::bigint[]) OR e.xid >= $3) AND NOT (e.xid = ANY($5::bigint[]) OR e.xid >= $6)
  AND e.sequence > $4 AND e.sequence <= $1
ORDER BY e.sequence LIMIT $7
"""
_HEAD_PG = f"""
SELECT (SELECT coalesce(max(sequence), 0) FROM flow_run_event) AS head, snap.xip, snap.xmax
FROM ({_SNAPSHOT_PG}) AS snap
"""


@dataclass(frozen=True)
class Replay:
    """Part way through the events of the transactions that a position's snapshot saw in
    progress and a later snapshot (xmax, pending) saw complete: those with sequence <=
    `through` were delivered (see the module docstring)."""

    through: int
    xmax: int
    pending: tuple[int, ...]


@dataclass(frozen=True)
class Position:
    """Where a reader stands (see the module docstring): every event up to `after` was
    delivered except those of the transactions in `pending` or at or above `xmax`
    (PostgreSQL; on SQLite events carry no xid and both are unused); with a `replay`,
    also the events it names. Positions with a replay stay in the process: cursors are
    made of `resumable` ones."""

    after: int = 0
    xmax: int = 0
    pending: tuple[int, ...] = ()
    replay: Replay | None = None

    @property
    def resumable(self) -> Position:
        """A position a cursor can hold: without the replay, so naming at most what was
        delivered (a resume may send the replayed events again, never skips one)."""
        return self if self.replay is None else Position(self.after, self.xmax, self.pending)


@dataclass
class Batch:
    events: list[tuple[FlowRunEvent, Position]] = field(default_factory=list)  # each with the position after it
    end: Position = field(default_factory=Position)  # the position after the whole batch
    full: bool = False  # the limit cut it: more events are waiting


def includes(position: Position, sequence: int, xid: int | None) -> bool:
    """Whether a reader at `position` has been sent the event (sequence, xid)."""
    if sequence > position.after:
        return False
    if xid is None or not _running(xid, position.xmax, position.pending):
        return True
    replay = position.replay
    return replay is not None and sequence <= replay.through and not _running(xid, replay.xmax, replay.pending)


def _running(xid: int, xmax: int, pending: tuple[int, ...]) -> bool:
    """Whether a snapshot with this frontier saw transaction `xid` in progress."""
    return xid >= xmax or xid in pending


def _delivered(position: Position) -> ColumnElement[bool]:
    """`includes` in SQL: the events a reader at `position` has been sent."""
    c = flow_run_event.c
    delivered = or_(c.xid.is_(None), not_(_running_sql(position.xmax, position.pending)))
    replay = position.replay
    if replay is not None:
        replayed = and_(c.sequence <= replay.through, not_(_running_sql(replay.xmax, replay.pending)))
        delivered = or_(delivered, replayed)
    return and_(c.sequence <= position.after, delivered)


def _running_sql(xmax: int, pending: tuple[int, ...]) -> ColumnElement[bool]:
    c = flow_run_event.c
    return or_(c.xid >= xmax, c.xid.in_(pending)) if pending else c.xid >= xmax


def listen_for_commits(engine: Engine, callback: Callable[[], None]) -> Callable[[], None]:
    """SQLite: calls `callback` after each commit of a transaction of `engine` (an async
    engine's sync_engine, or the SQLite writer thread's engine) that appended events
    (the in-process wake-up), in the committing thread. Returns the function that stops it."""

    def on_commit(connection: Any) -> None:
        if connection.info.pop(_WROTE_EVENTS, False):
            callback()

    def on_rollback(connection: Any) -> None:
        connection.info.pop(_WROTE_EVENTS, None)

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "rollback", on_rollback)

    def stop() -> None:
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "rollback", on_rollback)

    return stop


class FlowRunEventRepository(Repository):
    async def append(
        self,
        kind: EventKind,
        run: FlowRun,
        now: datetime,
        *,
        state: State | None = None,
        previous: StateType | None = None,
    ) -> None:
        """Appends one event in the caller's transaction; watchers are woken when it
        commits (NOTIFY on PostgreSQL, the commit hook on SQLite)."""
        payload = encode_payload(run, state, previous)
        driver = await self._writer()
        if driver is not None:
            await driver.execute(_APPEND_PG, now, kind.value, run.id, payload)
            return
        await execute_prepared(
            self.connection,
            _APPEND_SQLITE,
            {"occurred": now, "kind": kind.value, "flow_run_id": run.id, "payload": payload},
        )
        _mark_written(self.connection)

    async def append_many(self, kind: EventKind, runs: list[FlowRun], now: datetime) -> None:
        """Appends one event per run, in that order, in the caller's transaction: one
        statement however many runs (a flow's delete may have 100,000)."""
        if not runs:
            return
        payloads = [encode_payload(run, None, None) for run in runs]
        driver = await self._writer()
        if driver is not None:
            await driver.execute(_APPEND_MANY_PG, now, kind.value, [run.id for run in runs], payloads)
            return
        rows = [
            {"occurred": now, "kind": kind.value, "flow_run_id": run.id, "payload": payload}
            for run, payload in zip(runs, payloads, strict=True)
        ]
        await self.connection.execute(flow_run_event.insert(), rows)
        _mark_written(self.connection)

    async def _writer(self) -> asyncpg.Connection | None:
        """PostgreSQL: the asyncpg connection, also for a repository made without it. An
        event must store its writer's xid (without one a reader may skip it: see the
        module docstring) and NOTIFY, which only the statements sent through it do."""
        if self.driver is None and not self.dialect.is_sqlite:
            self.driver = (await self.connection.get_raw_connection()).driver_connection
        return self.driver

    async def head(self) -> Position:
        """The position of a reader that has seen everything committed so far: where
        a watch "from now" starts."""
        if self.driver is not None:
            row = await self.driver.fetchrow(_HEAD_PG)
            assert row is not None
            return Position(after=row["head"], xmax=row["xmax"], pending=tuple(row["xip"]))
        head = (await self.connection.execute(select(func.max(flow_run_event.c.sequence)))).scalar()
        return Position(after=head or 0)

    async def read(self, position: Position, limit: int) -> Batch:
        """The next events after `position`, in sequence order, at most `limit` (those
        of transactions `position` saw in progress first: see the module docstring)."""
        if self.driver is not None:
            return await self._read_pg(position, limit)
        query = (
            select(
                flow_run_event.c.sequence, flow_run_event.c.occurred, flow_run_event.c.kind, flow_run_event.c.payload
            )
            .where(flow_run_event.c.sequence > position.after)
            .order_by(flow_run_event.c.sequence)
            .limit(limit)
        )
        rows = (await self.connection.execute(query)).all()
        batch = Batch(full=len(rows) >= limit)
        for sequence, occurred, kind, payload in rows:
            batch.events.append((decode_payload(sequence, kind, occurred, payload), Position(after=sequence)))
        batch.end = batch.events[-1][1] if batch.events else position
        return batch

    async def _read_pg(self, position: Position, limit: int) -> Batch:
        assert self.driver is not None
        if position.replay is not None:
            return await self._replay_pg(position, position.replay, limit)
        records = await self.driver.fetch(_READ_PG, position.after, list(position.pending), position.xmax, limit)
        xip, xmax = tuple(records[0]["xip"]), records[0]["xmax"]
        batch = Batch(full=sum(record["sequence"] is not None for record in records) >= limit)
        committed_since = highest = 0
        for record in records:
            sequence = record["sequence"]
            if sequence is None:  # the empty batch's one row
                continue
            if sequence <= position.after:
                # A pending transaction's event, committed since. Its cursor is the batch's
                # start: another pending transaction may still hold a smaller sequence, so
                # no position between these events can name what was sent (a resume from
                # here sends them again: at least once across a resume, never skipped).
                committed_since += 1
                after = position
            else:
                after = Position(after=sequence, xmax=xmax, pending=xip)
            highest = max(highest, sequence)
            batch.events.append((_event(record), after))
        if committed_since >= limit:  # more of them may be waiting: page through them
            batch.end = replace(position, replay=Replay(through=highest, xmax=xmax, pending=xip))
        elif batch.full:  # every such event was read, and the newer ones up to the last
            batch.end = batch.events[-1][1]
        else:  # everything this snapshot saw was delivered
            batch.end = Position(after=max(position.after, highest), xmax=xmax, pending=xip)
        return batch

    async def _replay_pg(self, position: Position, replay: Replay, limit: int) -> Batch:
        assert self.driver is not None
        records = await self.driver.fetch(
            _REPLAY_PG,
            position.after,
            list(position.pending),
            position.xmax,
            replay.through,
            list(replay.pending),
            replay.xmax,
            limit,
        )
        base = position.resumable
        # Full either way: after the last page, what the replay's snapshot left running and
        # the events past `after` are read next, at once.
        batch = Batch(events=[(_event(record), base) for record in records], full=True)
        if len(records) >= limit:
            batch.end = replace(position, replay=replace(replay, through=records[-1]["sequence"]))
        else:
            batch.end = Position(after=position.after, xmax=replay.xmax, pending=replay.pending)
        return batch

    async def read_between(self, start: Position, end: Position, after: int, limit: int) -> list[FlowRunEvent]:
        """The events `end` has delivered and `start` has not (a stream that read up to
        `start` joins the shared reader at `end`: server/watch/tail.py), with sequence
        above `after`, in sequence order, at most `limit`. Every such event is
        committed (see the module docstring), so the set never changes and pages by
        sequence."""
        columns = (
            flow_run_event.c.sequence,
            flow_run_event.c.xid,
            flow_run_event.c.occurred,
            flow_run_event.c.kind,
            flow_run_event.c.payload,
        )
        c = flow_run_event.c
        query = (
            select(*columns)
            .where(not_(_delivered(start)), _delivered(end), c.sequence > after)
            .order_by(c.sequence)
            .limit(limit)
        )
        rows = (await self.connection.execute(query)).all()
        return [decode_payload(seq, kind, occurred, payload, xid) for seq, xid, occurred, kind, payload in rows]

    async def writer_of(self, sequence: int) -> int | None:
        """The id of the transaction that wrote event `sequence` (None: no such event,
        or SQLite)."""
        query = select(flow_run_event.c.xid).where(flow_run_event.c.sequence == sequence)
        return (await self.connection.execute(query)).scalar()

    async def pruned_through(self) -> int:
        """The highest sequence retention has deleted (0: none)."""
        query = select(flow_run_event_horizon.c.pruned_through).where(flow_run_event_horizon.c.id == 1)
        return (await self.connection.execute(query)).scalar() or 0

    async def last_expired(self, before: datetime) -> int | None:
        """The highest sequence of an event that occurred before `before` (None: none):
        retention deletes the prefix up to it."""
        query = select(func.max(flow_run_event.c.sequence)).where(flow_run_event.c.occurred < before)
        return (await self.connection.execute(query)).scalar()

    async def prune(self, through: int, limit: int) -> int:
        """Deletes the first `limit` events with sequence <= `through` and moves the
        horizon (pruned_through, never backwards) to the last of them, in the caller's
        transaction: a reader sees both or neither. Returns how many went."""
        first = (
            select(flow_run_event.c.sequence)
            .where(flow_run_event.c.sequence <= through)
            .order_by(flow_run_event.c.sequence)
            .limit(limit)
            .subquery()
        )
        last = (await self.connection.execute(select(func.max(first.c.sequence)))).scalar()
        if last is None:
            return 0
        result = await self.connection.execute(delete(flow_run_event).where(flow_run_event.c.sequence <= last))
        updated = await self.connection.execute(
            flow_run_event_horizon.update()
            .where(flow_run_event_horizon.c.id == 1, flow_run_event_horizon.c.pruned_through < last)
            .values(pruned_through=last)
        )
        if updated.rowcount == 0:
            insert = self.dialect.insert(flow_run_event_horizon).values(id=1, pruned_through=last)
            await self.connection.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
        return result.rowcount or 0


def _event(record: Any) -> FlowRunEvent:
    return decode_payload(record["sequence"], record["kind"], record["occurred"], record["payload"], record["xid"])


def _mark_written(connection: AsyncConnection) -> None:
    connection.sync_connection.info[_WROTE_EVENTS] = True  # type: ignore[union-attr]
