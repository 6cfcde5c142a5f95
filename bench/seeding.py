"""Bulk-seeds flow runs with their state histories straight into the server's tables
(server.db.tables, through the server's own engine), for the read benchmark and the
pgbench ceiling. Far faster than the API and good enough: the rows look like the ones
the server writes (same JSON shapes, same bookkeeping columns).

Run ids are deterministic: run i (1-based) has id md5(str(i)) as a UUID, which
PostgreSQL computes as md5(i::text)::uuid, so a pgbench script can pick a random
seeded run without a lookup. Flow and deployment ids are deterministic too (flow_id,
deployment_id), so the read benchmark can filter on them without a lookup: run i belongs
to flow i % flows and, unless it is one of the fifth of runs started by hand, to one of
that flow's DEPLOYMENTS_PER_FLOW deployments."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import benchlib  # noqa: F401  (puts the repository on sys.path)
from sqlalchemy import func, select

from flowrun.server.config import Settings
from flowrun.server.db.engine import create_engine
from flowrun.server.db.tables import deployment, flow, flow_run, flow_run_state
from flowrun.server.domain.flow_runs import FlowRunPolicy
from flowrun.server.domain.names import random_run_name
from flowrun.server.domain.states import StateType

TAG_POOL = ("prod", "dev", "etl", "ml", "nightly", "hourly", "team-a", "team-b", "critical", "backfill")
WORK_QUEUES = ("default", "etl", "gpu")
# Where a run's history ends, and how often (a scheduler-heavy deployment: most runs
# finished, a fifth still scheduled, a few in flight).
FINAL_STATES = (
    (StateType.COMPLETED, 0.62),
    (StateType.FAILED, 0.08),
    (StateType.CANCELLED, 0.03),
    (StateType.CRASHED, 0.01),
    (StateType.RUNNING, 0.04),
    (StateType.PENDING, 0.02),
    (StateType.SCHEDULED, 0.20),
)
LIFECYCLE = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING)
_POLICY = FlowRunPolicy().to_json()
DEFAULT_FLOWS = 20
DEPLOYMENTS_PER_FLOW = 5
MANUAL_RUN_SHARE = 0.2  # runs with no deployment


def run_id(i: int) -> str:
    """The id of seeded run i; PostgreSQL: md5(i::text)::uuid."""
    return str(uuid.UUID(hashlib.md5(str(i).encode()).hexdigest()))


@functools.cache
def flow_id(n: int) -> str:
    """The id of seeded flow n (0-based)."""
    return str(uuid.UUID(hashlib.md5(f"flow-{n}".encode()).hexdigest()))


@functools.cache
def deployment_id(n: int) -> str:
    """The id of seeded deployment n (0-based); it belongs to flow n % flows."""
    return str(uuid.UUID(hashlib.md5(f"deployment-{n}".encode()).hexdigest()))


def _history(final: StateType) -> tuple[StateType, ...]:
    if final in LIFECYCLE:
        return LIFECYCLE[: LIFECYCLE.index(final) + 1]
    return (*LIFECYCLE, final)


def _rows_for(i: int, flows: int, now: datetime, rng: random.Random) -> tuple[dict, list[dict]]:
    rid = run_id(i)
    final = rng.choices([s for s, _ in FINAL_STATES], [w for _, w in FINAL_STATES])[0]
    created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
    if final == StateType.SCHEDULED:
        scheduled = now + timedelta(seconds=rng.uniform(0, 7 * 86400))
    else:
        scheduled = created + timedelta(seconds=rng.uniform(0, 60))
    times = {
        StateType.SCHEDULED: created,
        StateType.PENDING: scheduled + timedelta(seconds=rng.uniform(0.1, 2)),
    }
    times[StateType.RUNNING] = times[StateType.PENDING] + timedelta(seconds=rng.uniform(0.5, 5))
    end = times[StateType.RUNNING] + timedelta(seconds=rng.expovariate(1 / 120))
    if final == StateType.RUNNING:  # still running: started a little while ago
        times[StateType.RUNNING] = now - timedelta(seconds=rng.uniform(1, 600))
    states = []
    # StateDetails(flow_run_id=..., scheduled_time=...).to_json(), spelled out for speed.
    early_details = {"flow_run_id": rid, "scheduled_time": scheduled.isoformat()}
    late_details = {"flow_run_id": rid}
    for state_type in _history(final):
        timestamp = times.get(state_type, end)
        details = early_details if state_type in (StateType.SCHEDULED, StateType.PENDING) else late_details
        states.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "created": timestamp,
                "flow_run_id": rid,
                "type": state_type.value,
                "timestamp": timestamp,
                "name": state_type.default_name,
                "message": None,
                "state_details": details,
                "data": None,
            }
        )
    current = states[-1]
    ran = final not in (StateType.SCHEDULED, StateType.PENDING)
    start_time = times[StateType.RUNNING] if ran else None
    end_time = end if StateType(final).is_terminal else None
    flow_n = i % flows
    manual = rng.random() < MANUAL_RUN_SHARE
    deployment_n = None if manual else flow_n + flows * rng.randrange(DEPLOYMENTS_PER_FLOW)
    run = {
        "id": rid,
        "created": created,
        "updated": current["timestamp"],
        "name": random_run_name(),
        "state_type": final.value,
        "state_name": final.default_name,
        "state_timestamp": current["timestamp"],
        "state_id": current["id"],
        "run_count": 1 if ran else 0,
        "expected_start_time": scheduled,
        "next_scheduled_start_time": scheduled if final == StateType.SCHEDULED else None,
        "start_time": start_time,
        "end_time": end_time,
        "total_run_time": (end_time - start_time).total_seconds() if end_time and start_time else 0.0,
        "flow_id": flow_id(flow_n),
        "deployment_id": None if deployment_n is None else deployment_id(deployment_n),
        "work_queue_name": rng.choice(WORK_QUEUES),
        "flow_version": f"1.{i % 7}",
        "parameters": {"batch": i % 100, "region": rng.choice(("eu", "us", "ap"))},
        "context": {},
        "empirical_policy": _POLICY,
        "tags": rng.sample(TAG_POOL, rng.choice((0, 1, 2, 2, 3))),
        "labels": {"prefect.flow.id": flow_id(flow_n)},
        "job_variables": {},
        "auto_scheduled": False,
    }
    return run, states


async def _insert(connection, table, rows: list[dict]) -> None:
    """executemany through the table; on PostgreSQL a binary COPY on the same connection
    (asyncpg), several times faster for 100,000 rows."""
    if connection.dialect.name != "postgresql":
        await connection.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    # JSON values as text; None too, as the server's JSON type writes it: JSON null.
    json_columns = {c.name for c in table.c if "JSON" in repr(c.type)}
    records = [tuple(json.dumps(row[c]) if c in json_columns else row[c] for c in columns) for row in rows]
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(table.name, records=records, columns=columns)


async def seed_runs(
    database_url: str, count: int, *, flows: int = DEFAULT_FLOWS, batch: int = 5_000, seed: int = 7
) -> dict:
    """Inserts `flows` flows with DEPLOYMENTS_PER_FLOW deployments each and runs 1..count
    (ids from run_id), each with a 1-4 state history ending in its current state. Expects
    a migrated, empty schema. Runs VACUUM ANALYZE on PostgreSQL so that the planner sees
    the real table."""
    rng = random.Random(seed)
    random.seed(seed)  # random_run_name
    now = datetime.now(UTC)
    engine = create_engine(Settings(database_url=database_url))
    states_written = 0
    try:
        async with engine.begin() as connection:
            await connection.execute(
                flow.insert(),
                [
                    {
                        "id": flow_id(n),
                        "created": now,
                        "updated": now,
                        "name": f"bench-flow-{n}",
                        "tags": [],
                        "labels": {},
                    }
                    for n in range(flows)
                ],
            )
            await connection.execute(
                deployment.insert(),
                [
                    {
                        "id": deployment_id(n),
                        "created": now,
                        "updated": now,
                        "name": f"bench-deployment-{n}",
                        "flow_id": flow_id(n % flows),
                        "tags": [],
                        "labels": {},
                        "parameters": {},
                        "job_variables": {},
                    }
                    for n in range(flows * DEPLOYMENTS_PER_FLOW)
                ],
            )
        for first in range(1, count + 1, batch):
            runs, states = [], []
            for i in range(first, min(first + batch, count + 1)):
                run, history = _rows_for(i, flows, now, rng)
                runs.append(run)
                states.extend(history)
            async with engine.begin() as connection:
                await _insert(connection, flow_run, runs)
                await _insert(connection, flow_run_state, states)
            states_written += len(states)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.exec_driver_sql("VACUUM ANALYZE")
        else:
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()
    return {
        "runs": count,
        "states": states_written,
        "flows": flows,
        "deployments": flows * DEPLOYMENTS_PER_FLOW,
        "now": now.isoformat(),
    }


async def seeded(database_url: str) -> dict:
    """What an earlier seed_runs left in the database: its run count and its `now` (when
    the seeded flows were created), so that a benchmark can reuse the rows (--no-seed)."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        async with engine.connect() as connection:
            runs = (await connection.execute(select(func.count()).select_from(flow_run))).scalar_one()
            seeded_flows = select(func.max(flow.c.created)).where(flow.c.name.like("bench-flow-%"))
            now = (await connection.execute(seeded_flows)).scalar_one()
    finally:
        await engine.dispose()
    if now is None:
        raise RuntimeError(f"no seeded runs in {database_url}")
    return {"runs": runs, "now": now.isoformat(), "reused": True}


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Seed flow runs into a migrated flowrun database.")
    parser.add_argument("database_url")
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    started = time.monotonic()
    summary = asyncio.run(seed_runs(args.database_url, args.runs))
    print(summary, f"{time.monotonic() - started:.1f}s")
