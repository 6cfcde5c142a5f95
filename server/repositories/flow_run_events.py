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

SQLite serializes writers (BEGIN IMMEDIATE), so commit order is sequence order and
`pending` is always empty."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, event, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowrun.server.db.tables import flow_run_event, flow_run_event_horizon
from flowrun.server.domain.events import EventKind, FlowRunEvent, decode_payload, encode_payload
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.repositories.base import Repository

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

_COLUMNS = "e.sequence, e.xid, e.occurred, e.kind, e.payload"
# The statement's snapshot's in-progress set: the xip list and xmax (see the module docstring).
_SNAPSHOT_PG = """
SELECT (SELECT coalesce(array_agg(x::text::bigint), '{}') FROM pg_snapshot_xip(s) AS x) AS xip,
       pg_snapshot_xmax(s)::text::bigint AS xmax
FROM pg_current_snapshot() AS s
"""
# One statement, one snapshot: the snapshot's in-progress set, the events of the
# transactions that were in progress at the last read ($2: xip, $3: xmax) and have
# committed since, and the events after `after` (one row with NULLs when there are none).
_READ_PG = f"""
WITH snap AS MATERIALIZED ({_SNAPSHOT_PG}),
batch AS (
    (SELECT {_COLUMNS} FROM flow_run_event e
     WHERE (e.xid = ANY($2::bigint[]) OR e.xid >= $3) AND e.sequence <= $1)
    UNION ALL
    (SELECT {_COLUMNS} FROM flow_run_event e WHERE e.sequence > $1 ORDER BY e.sequence LIMIT $4)
)
SELECT snap.xip, snap.xmax, batch.* FROM snap LEFT JOIN batch ON true ORDER BY batch.sequence
"""
_HEAD_PG = f"""
SELECT (SELECT coalesce(max(sequence), 0) FROM flow_run_event) AS head, snap.xip, snap.xmax
FROM ({_SNAPSHOT_PG}) AS snap
"""


@dataclass(frozen=True)
class Position:
    """Where a reader stands (see the module docstring): every event up to `after` was
    delivered except those of the transactions in `pending` or at or above `xmax`
    (PostgreSQL; on SQLite events carry no xid and both are unused)."""

    after: int = 0
    xmax: int = 0
    pending: tuple[int, ...] = ()


@dataclass
class Batch:
    events: list[tuple[FlowRunEvent, Position]] = field(default_factory=list)  # each with the position after it
    end: Position = field(default_factory=Position)  # the position after the whole batch
    full: bool = False  # the limit cut it: more events are waiting


def includes(position: Position, sequence: int, xid: int | None) -> bool:
    """Whether a reader at `position` has been sent the event (sequence, xid)."""
    if sequence > position.after:
        return False
    return xid is None or (xid < position.xmax and xid not in position.pending)


def _delivered(position: Position) -> ColumnElement[bool]:
    """`includes` in SQL: the events a reader at `position` has been sent."""
    c = flow_run_event.c
    held_back = c.xid >= position.xmax
    if position.pending:
        held_back = or_(held_back, c.xid.in_(position.pending))
    return and_(c.sequence <= position.after, or_(c.xid.is_(None), not_(held_back)))


def listen_for_commits(engine: AsyncEngine, callback: Callable[[], None]) -> Callable[[], None]:
    """SQLite: calls `callback` after each commit of a transaction that appended events
    (the in-process wake-up). Returns the function that stops it."""

    def on_commit(connection: Any) -> None:
        if connection.info.pop(_WROTE_EVENTS, False):
            callback()

    def on_rollback(connection: Any) -> None:
        connection.info.pop(_WROTE_EVENTS, None)

    event.listen(engine.sync_engine, "commit", on_commit)
    event.listen(engine.sync_engine, "rollback", on_rollback)

    def stop() -> None:
        event.remove(engine.sync_engine, "commit", on_commit)
        event.remove(engine.sync_engine, "rollback", on_rollback)

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
        if self.driver is not None:
            await self.driver.execute(_APPEND_PG, now, kind.value, run.id, payload)
            return
        await self.connection.execute(
            flow_run_event.insert().values(occurred=now, kind=kind.value, flow_run_id=run.id, payload=payload)
        )
        _mark_written(self.connection)

    async def append_many(self, kind: EventKind, runs: list[FlowRun], now: datetime) -> None:
        for run in runs:
            await self.append(kind, run, now)

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
        """The next events after `position`, in sequence order, at most `limit` of
        them past `position.after` (plus any of the pending transactions)."""
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
        records = await self.driver.fetch(_READ_PG, position.after, list(position.pending), position.xmax, limit)
        xip, xmax = tuple(records[0]["xip"]), records[0]["xmax"]
        batch = Batch()
        newer = highest = 0
        for record in records:
            sequence = record["sequence"]
            if sequence is None:  # the empty batch's one row
                continue
            event_ = decode_payload(sequence, record["kind"], record["occurred"], record["payload"], record["xid"])
            if sequence <= position.after:
                # A pending transaction's event, committed since. Its cursor is the batch's
                # start: another pending transaction may still hold a smaller sequence, so
                # no position between these events can name what was sent (a resume from
                # here sends them again: at least once across a resume, never skipped).
                after = position
            else:
                newer += 1
                after = Position(after=sequence, xmax=xmax, pending=xip)
            highest = max(highest, sequence)
            batch.events.append((event_, after))
        batch.full = newer >= limit
        if batch.full:
            batch.end = batch.events[-1][1]
        else:  # everything this snapshot saw was delivered
            batch.end = Position(after=max(position.after, highest), xmax=xmax, pending=xip)
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

    async def prune(self, before: datetime) -> int:
        """Deletes the events that occurred before `before` (a prefix of the sequence:
        up to the last such event), records how far, and returns how many went."""
        last = (
            await self.connection.execute(
                select(func.max(flow_run_event.c.sequence)).where(flow_run_event.c.occurred < before)
            )
        ).scalar()
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


def _mark_written(connection: AsyncConnection) -> None:
    connection.sync_connection.info[_WROTE_EVENTS] = True  # type: ignore[union-attr]
