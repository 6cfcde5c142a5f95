"""SQLite's hot write statements on the sqlite3 connection itself (server/db/sqlite_writer.py,
server/repositories/driver_sql.py): in the writer thread, CreateFlowRun's and SetState's
statements are compiled once and run without SQLAlchemy's execution, their values bound
through the same bind processors. Rows written that way are stored exactly as SQLAlchemy
stores them (compared column by column, as SQLite holds them) and read back identically
through the normal read path; a driver error arrives as SQLAlchemy's exception."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from flowrun.server import clock
from flowrun.server.domain.flow_runs import FlowRunCreate, FlowRunPolicy
from flowrun.server.domain.flows import FlowCreate
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.repositories.driver_sql import execute_prepared
from flowrun.server.repositories.flow_run_states import state_values
from flowrun.server.repositories.flow_runs import INSERT_STATE
from tests.helpers.watching import make_flow, make_run, propose


@pytest.fixture(autouse=True)
def sqlite_only(backend):
    if backend != "sqlite":
        pytest.skip("the raw statements are the SQLite writer thread's")


def _statements_sqlalchemy_executes(engine) -> tuple[list[str], object]:
    sent: list[str] = []

    def spy(connection, statement, multiparams, params, execution_options) -> None:
        sent.append(str(statement).split()[0].upper())

    event.listen(engine, "before_execute", spy)
    return sent, spy


async def _lifecycle(flows, runs, unique) -> None:
    run = await make_run(runs, await make_flow(flows, unique))
    await propose(runs, run.id, "STATE_TYPE_PENDING")
    await propose(runs, run.id, "STATE_TYPE_RUNNING")


async def test_create_and_set_state_bypass_sqlalchemy_execution_in_the_writer_thread(app, flows, runs, unique):
    writer = app.database.sqlite_writer
    sent, spy = _statements_sqlalchemy_executes(writer.engine)
    try:
        await _lifecycle(flows, runs, unique)
    finally:
        event.remove(writer.engine, "before_execute", spy)
    # None goes through SQLAlchemy's execution (BEGIN IMMEDIATE is sent by the begin event).
    assert sent == [], sent


async def test_with_a_cursor_listener_every_statement_goes_through_sqlalchemy(app, flows, runs, unique):
    """Tracing's SQL spans come from SQLAlchemy's cursor events: they must see all."""
    writer = app.database.sqlite_writer
    seen: list[str] = []

    def listener(connection, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(writer.engine, "before_cursor_execute", listener)
    try:
        await _lifecycle(flows, runs, unique)
    finally:
        event.remove(writer.engine, "before_cursor_execute", listener)
    assert {"SELECT", "INSERT", "UPDATE"} <= set(seen), seen


def _new_run(flow_id: str, name: str, now) -> FlowRunCreate:
    return FlowRunCreate(
        flow_id=flow_id,
        name=name,
        flow_version="1.0-ü",
        parameters={"x": 1, "nested": {"list": [1, 2.5, None, "é"], "t": True}, "none": None},
        context={"k": "v"},
        empirical_policy=FlowRunPolicy(retries=2, retry_delay=3),
        tags=["a", "ß"],
        labels={"team": "core", "n": 3},
        idempotency_key=None,
        heartbeat_timeout_seconds=45,
        state=State(
            type=StateType.SCHEDULED,
            name="Scheduled",
            timestamp=now + timedelta(microseconds=123_457),
            message="scheduled ✓",
            state_details=StateDetails(),
        ),
    )


def _work(new: FlowRunCreate, now, settings):
    """CreateFlowRun's unit of work and two transitions, as the servicer and the
    interceptor run them."""

    async def work(repos):
        run, created = await repos.flow_runs.create(new, now, default_heartbeat_timeout_seconds=30)
        assert created
        initial = State(
            type=new.state.type,
            name=new.state.name,
            timestamp=new.state.timestamp,
            message=new.state.message,
            state_details=new.state.state_details,
        )
        await set_state(repos, FLOW_RUNS, run.id, initial, now, force=True, settings=settings, created=run)
        for offset, state_type in ((1, StateType.PENDING), (2, StateType.RUNNING)):
            moment = now + timedelta(seconds=offset, microseconds=offset)
            proposed = State(type=state_type, name=state_type.default_name, timestamp=moment)
            result = await set_state(repos, FLOW_RUNS, run.id, proposed, moment, force=False, settings=settings)
            assert result.status.value == "ACCEPT", result
        return run.id

    return work


def _stored(path: str, run_id: str, other_id: str) -> dict[str, list[tuple]]:
    """The run's rows as SQLite stores them: each value with its storage class, ids (the
    run's and its states') replaced by placeholders so two runs can be compared."""
    with sqlite3.connect(path) as db:
        state_ids = [row[0] for row in db.execute("SELECT id FROM flow_run_state WHERE flow_run_id = ?", [run_id])]

        def masked(value):
            if isinstance(value, str):
                for number, state_id in enumerate(state_ids):
                    value = value.replace(state_id, f"<state {number}>")
                value = value.replace(run_id, "<run>").replace(other_id, "<run>")
            return value

        def rows(table: str, where: str, order: str) -> list[tuple]:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            selected = ", ".join(f"typeof({name}), {name}" for name in columns)
            query = f"SELECT {selected} FROM {table} WHERE {where} = ? ORDER BY {order}"
            return [tuple(masked(value) for value in row) for row in db.execute(query, [run_id])]

        return {
            "flow_run": rows("flow_run", "id", "id"),
            "flow_run_state": rows("flow_run_state", "flow_run_id", "timestamp"),
            "flow_run_event": [row[2:] for row in rows("flow_run_event", "flow_run_id", "sequence")],  # not sequence
        }


async def test_rows_written_raw_are_stored_and_read_as_sqlalchemy_writes_them(app, unique):
    database = app.database
    now = clock.now()
    async with database.unit_of_work(write=True) as uow:
        flow, _ = await uow.repos.flows.get_or_create(FlowCreate(name=f"raw-{unique}", labels={"f": 1}), now)
    name = f"run-{unique}"

    raw_id = await database.write(_work(_new_run(flow.id, name, now), now, app.settings))  # the writer thread
    async with database.unit_of_work(write=True) as uow:  # aiosqlite: SQLAlchemy's execution
        via_sqlalchemy = await _work(_new_run(flow.id, name, now), now, app.settings)(uow.repos)

    path = database.engine.url.database
    raw_rows, reference_rows = _stored(path, raw_id, via_sqlalchemy), _stored(path, via_sqlalchemy, raw_id)
    assert len(raw_rows["flow_run_state"]) == 3 and len(raw_rows["flow_run_event"]) == 3
    assert raw_rows == reference_rows

    async with database.unit_of_work(write=False) as uow:
        raw, reference = await uow.repos.flow_runs.get(raw_id), await uow.repos.flow_runs.get(via_sqlalchemy)
    assert raw is not None and reference is not None
    assert raw.id != reference.id and raw.state_id != reference.state_id
    assert raw.state is not None and reference.state is not None
    details = replace(reference.state.state_details, flow_run_id=raw.id)
    same_ids = replace(reference.state, id=raw.state.id, state_details=details)
    assert raw == replace(reference, id=raw.id, state_id=raw.state_id, state=same_ids)


async def test_a_driver_error_arrives_as_sqlalchemys_exception_and_rolls_back(app):
    orphan = State(type=StateType.PENDING, name="Pending", timestamp=clock.now())
    missing_run = str(uuid.uuid4())

    async def orphan_state(repos):
        values = state_values(orphan, clock.now(), flow_run_id=missing_run)
        await execute_prepared(repos.flow_runs.connection, INSERT_STATE, values)

    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        await app.database.write(orphan_state)
    path = app.database.engine.url.database
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM flow_run_state WHERE id = ?", [orphan.id]).fetchone() == (0,)
