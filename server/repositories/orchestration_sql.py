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
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from flowrun.server.db.tables import flow_run_state

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


SAVE_POLICY_IF_UNCHANGED = "UPDATE flow_run SET empirical_policy = $1, updated = $2 WHERE id = $3 AND xmin = $4"


STATE_COLUMNS = tuple(column.name for column in flow_run_state.c)
_JSON_COLUMNS = frozenset({"state_details", "data", "empirical_policy"})


def write_transition_args(
    state_row: Mapping[str, Any], run_columns: Mapping[str, Any], run_column_order: tuple[str, ...], run_id: str
) -> list[Any]:
    """The arguments of write_transition_sql, JSON columns serialized (the connection's
    jsonb codec, set up by SQLAlchemy, takes text)."""
    args = [_param(name, state_row[name]) for name in STATE_COLUMNS]
    args += [_param(name, run_columns[name]) for name in run_column_order]
    args.append(run_id)
    return args


def _param(name: str, value: Any) -> Any:
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
