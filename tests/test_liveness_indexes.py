"""The liveness sweeps read through indexes (PostgreSQL's EXPLAIN): on a table of many
finished runs and a few that a sweep may want, each candidate read is an index scan, so a
sweep costs what it finds, not the size of the history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from flowrun.server import clock
from flowrun.server.app import build_app
from tests.conftest import fresh_database, settings_for

pytestmark = pytest.mark.slow  # a database of its own, filled with thousands of runs: about a second

FINISHED, RUNNING, SCHEDULED, PAUSED = 5_000, 20, 20, 10

# Runs of one flow, inserted in bulk: mostly COMPLETED history, then the live ones.
POPULATE = """
INSERT INTO flow (id, created, updated, name, tags) VALUES ($1, now(), now(), 'indexes', '[]');
INSERT INTO flow_run (id, created, updated, name, flow_id, state_type, state_name, run_count,
    total_run_time, parameters, context, empirical_policy, tags, auto_scheduled, state_id,
    heartbeat_deadline, next_scheduled_start_time)
SELECT gen_random_uuid(), now(), now(), 'r' || n, $1, kind, initcap(kind), 1, 0, '{}', '{}', '{}', '[]', false,
    gen_random_uuid(),
    CASE WHEN kind = 'RUNNING' THEN now() + interval '1 hour' END,
    CASE WHEN kind = 'SCHEDULED' THEN now() + interval '1 hour' END
FROM (
    SELECT n, CASE WHEN n <= $2::int THEN 'COMPLETED' WHEN n <= $2::int + $3::int THEN 'RUNNING'
                   WHEN n <= $2::int + $3::int + $4::int THEN 'SCHEDULED' ELSE 'PAUSED' END AS kind
    FROM generate_series(1, $2::int + $3::int + $4::int + $5::int) AS n
) AS runs;
"""


@pytest.fixture(scope="module")
async def populated(tmp_path_factory):
    async with fresh_database("postgres", tmp_path_factory.mktemp("indexes")) as url:
        app = await build_app(settings_for(url))
        try:
            async with app.database.unit_of_work(write=True) as uow:
                assert uow.driver is not None
                statements = [part for part in POPULATE.split(";") if part.strip()]
                flow_id = "00000000-0000-4000-8000-000000000001"
                args = (flow_id, FINISHED, RUNNING, SCHEDULED, PAUSED)
                await uow.driver.execute(statements[0], flow_id)
                await uow.driver.execute(statements[1], *args)
                await uow.driver.execute("ANALYZE flow_run")
            yield app
        finally:
            await app.database.dispose()


async def plan_of(app, read) -> str:
    """EXPLAIN of the one statement `read(repos)` sends."""
    sent = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(app.database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with app.database.unit_of_work(write=False) as uow:
            await read(uow.repos)
            statement, parameters = sent[-1]
            rows = (await uow.connection.exec_driver_sql("EXPLAIN " + statement, parameters)).all()
    finally:
        event.remove(app.database.engine.sync_engine, "before_cursor_execute", capture)
    return "\n".join(row[0] for row in rows)


async def test_the_zombie_sweep_reads_the_heartbeat_deadline_index(populated):
    now = clock.now() + timedelta(minutes=30)
    for after in (None, (now - timedelta(minutes=1), "00000000-0000-0000-0000-000000000000")):
        plan = await plan_of(populated, lambda repos, after=after: repos.liveness.silent_runs(now, after, 200))
        assert "ix_flow_run__heartbeat_deadline" in plan, plan
        assert "Seq Scan on flow_run" not in plan, plan


async def test_the_late_runs_sweep_reads_an_index(populated):
    cutoff = clock.now()
    plan = await plan_of(populated, lambda repos: repos.liveness.late_runs(cutoff, None, 200))
    assert "Index" in plan and "Seq Scan on flow_run" not in plan, plan


async def test_the_pause_sweep_reads_the_state_type_index(populated):
    plan = await plan_of(populated, lambda repos: repos.liveness.paused_runs(None, 200))
    assert "ix_flow_run__state_type" in plan and "Seq Scan on flow_run " not in plan, plan
