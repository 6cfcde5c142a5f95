"""The SetState read and write for PostgreSQL as plain SQL for asyncpg, generated from
the table definitions so they cannot drift from the schema. asyncpg prepares each once
per connection; a call then costs a fraction of building and executing it through
SQLAlchemy. (SQLite keeps the SQLAlchemy statements: it is in-process and simple.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from asyncpg import Record
from sqlalchemy import JSON, ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from flowrun.server.db.tables import flow_run, flow_run_state

LOCK = " FOR UPDATE OF flow_run"


def write_transition_sql(run_columns: tuple[str, ...]) -> str:
    """INSERT the new state (in a CTE) and UPDATE the run's `run_columns`, one statement.
    Parameters: the state's columns in table order, then the run's columns, then its id."""
    state_columns = [column.name for column in flow_run_state.c]
    state_params = ", ".join(f"${index}" for index in range(1, len(state_columns) + 1))
    offset = len(state_columns)
    assignments = ", ".join(f"{name} = ${offset + index}" for index, name in enumerate(run_columns, start=1))
    return (
        f"WITH new_state AS (INSERT INTO flow_run_state ({', '.join(state_columns)}) VALUES ({state_params})) "
        f"UPDATE flow_run SET {assignments} WHERE id = ${offset + len(run_columns) + 1}"
    )


def write_transition_if_unchanged_sql(run_columns: tuple[str, ...], channel: str) -> str:
    """The whole of a state change as one statement, which is its own transaction (the
    two-round-trip SetState, server/orchestration/unlocked.py): UPDATE the run's
    `run_columns` only if its row version (xmin) is still the one the policy read, then,
    fed by the updated row (so only when it was updated), INSERT the new state and the
    watchers' event and NOTIFY them. The UPDATE takes the row lock before anything else
    and gives the transaction its id, so the event's xid is taken before its sequence
    value, as the outbox requires (server/repositories/flow_run_events.py). One row comes
    back when it was written, none when the run changed or is gone.
    Parameters: the state's columns in table order, the run's columns, the run's id, its
    row version, then the event's time, kind and payload."""
    state_columns = [column.name for column in flow_run_state.c]
    state_params = ", ".join(f"${index}" for index in range(1, len(state_columns) + 1))
    offset = len(state_columns)
    assignments = ", ".join(f"{name} = ${offset + index}" for index, name in enumerate(run_columns, start=1))
    run_id, version, occurred, kind, payload = (f"${offset + len(run_columns) + n}" for n in range(1, 6))
    return (
        f"WITH updated AS (UPDATE flow_run SET {assignments} WHERE id = {run_id} AND xmin = {version} RETURNING id), "
        f"new_state AS (INSERT INTO flow_run_state ({', '.join(state_columns)}) SELECT {state_params} FROM updated), "
        "appended AS (INSERT INTO flow_run_event (xid, occurred, kind, flow_run_id, payload) "
        f"SELECT pg_current_xact_id()::text::bigint, {occurred}, {kind}, updated.id, {payload} FROM updated "
        "RETURNING sequence) "
        f"SELECT pg_notify('{channel}', '') FROM appended"
    )


def create_run_sql(channel: str) -> str:
    """CreateFlowRun as one statement, which is its own transaction (for a run with no
    deployment, work pool or parent task run: FlowRunRepository.create_in_one_statement).
    It reads the flow's labels, INSERTs the run (its labels: the flow's, then the ones
    given: `||` keeps the later key, as a dict merge does) unless the idempotency key is
    taken or the run's id is (ON CONFLICT with no target: both unique constraints; the
    id is taken only when this statement is sent again after its answer was lost and the
    first one committed), and, fed by the inserted row (so only then), INSERTs its first
    state and the CREATED event (its payload's run labels replaced by the stored ones)
    and NOTIFYs. The INSERT gives the transaction its id before the event draws its
    sequence value.
    Returns one row: whether the flow exists, and the stored labels (NULL: nothing was
    inserted). Parameters: the run's columns in table order (`labels`: the ones given),
    the state's columns, then the event's time, kind and payload."""
    run_params = {name: f"${index}" for index, name in enumerate(RUN_COLUMNS, start=1)}
    run_params["labels"] = f"coalesce(parent.labels, '{{}}'::jsonb) || {run_params['labels']}::jsonb"
    offset = len(RUN_COLUMNS)
    state_params = ", ".join(f"${offset + index}" for index in range(1, len(STATE_COLUMNS) + 1))
    occurred, kind, payload = (f"${offset + len(STATE_COLUMNS) + n}" for n in range(1, 4))
    return (
        f"WITH parent AS (SELECT labels FROM flow WHERE id = {run_params['flow_id']}), "
        f"inserted AS (INSERT INTO flow_run ({', '.join(RUN_COLUMNS)}) "
        f"SELECT {', '.join(run_params.values())} FROM parent "
        "ON CONFLICT DO NOTHING RETURNING id, labels), "
        f"new_state AS (INSERT INTO flow_run_state ({', '.join(STATE_COLUMNS)}) SELECT {state_params} FROM inserted), "
        "appended AS (INSERT INTO flow_run_event (xid, occurred, kind, flow_run_id, payload) "
        f"SELECT pg_current_xact_id()::text::bigint, {occurred}, {kind}, inserted.id, "
        f"jsonb_set({payload}::jsonb, '{{run,labels}}', inserted.labels)::text FROM inserted RETURNING sequence), "
        f"notified AS (SELECT pg_notify('{channel}', '') FROM appended) "
        "SELECT (SELECT count(*) FROM parent) AS flow_found, (SELECT labels FROM inserted) AS labels, "
        "(SELECT count(*) FROM notified) AS notified"
    )


SAVE_POLICY_IF_UNCHANGED = "UPDATE flow_run SET empirical_policy = $1, updated = $2 WHERE id = $3 AND xmin = $4"


STATE_COLUMNS = tuple(column.name for column in flow_run_state.c)
RUN_COLUMNS = tuple(column.name for column in flow_run.c)
_JSON_COLUMNS = frozenset(
    column.name for table in (flow_run, flow_run_state) for column in table.c if isinstance(column.type, JSON)
)


def write_transition_args(
    state_row: Mapping[str, Any], run_columns: Mapping[str, Any], run_column_order: tuple[str, ...], run_id: str
) -> list[Any]:
    """The arguments of write_transition_sql, JSON columns serialized (the connection's
    jsonb codec, set up by SQLAlchemy, takes text)."""
    args = [json_param(name, state_row[name]) for name in STATE_COLUMNS]
    args += [json_param(name, run_columns[name]) for name in run_column_order]
    args.append(run_id)
    return args


def json_param(name: str, value: Any) -> Any:
    """A column's value as asyncpg takes it: JSON columns as text."""
    if name in _JSON_COLUMNS and value is not None:
        return json.dumps(value)
    return value


def postgresql_sql(statement: ClauseElement) -> str:
    """A SQLAlchemy statement as SQL for asyncpg ($1, $2, ... in bind order)."""
    return str(statement.compile(dialect=_ASYNCPG))


_ASYNCPG = asyncpg_dialect()


def as_mapping(record: Record) -> dict[str, Any]:
    """asyncpg returns uuid objects; the domain holds ids as text."""
    return {key: str(value) if isinstance(value, uuid.UUID) else value for key, value in record.items()}
