"""The database's own ceiling for SetState: replays the SQL that flowrun issues for one
orchestrated transition through pgbench, so that flowrun's throughput can be stated as
a fraction of what PostgreSQL alone does on the same machine.

The script (bench/pgbench/set-state.sql) is not written by hand: it is captured from
the server's own code. A real transition (PENDING -> RUNNING on a seeded run) is run
through the path the orchestration interceptor takes on PostgreSQL
(server/orchestration/unlocked.py: the read of the run with its row version, the core
and global policies in memory, then the one conditional statement that writes the
state, the run and the watchers' event), every statement sent to asyncpg is recorded
with its bound parameters, and the run is put back. The parameters become pgbench
expressions: the run id a random seeded run, the new state id a random UUID,
timestamps now(), the row version the one the script's own read returned (pgbench's gset),
everything else the literal the server bound. So the replay is the same two
statements, each its own transaction, with the same round trips, minus everything
flowrun does in Python around them.

    python bench/pgbench_ceiling.py --clients 1,8,32 --duration 20 [--runs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import benchlib
import seeding

SCRIPT = benchlib.BENCH / "pgbench" / "set-state.sql"
RUN_EXPR = "md5(:run::text)::uuid"  # seeded run number -> its id (see seeding.run_id)
STATE_EXPR = "md5(:sid::text || ':' || :client_id::text)::uuid"
_PLACEHOLDER = re.compile(r"\$(\d+)")
VERSION_MARK = object()  # stands for the read's row version in a captured statement


async def capture_set_state(database_url: str, run_number: int) -> list[tuple[str, list]]:
    """Runs one PENDING -> RUNNING transition exactly as the interceptor does on
    PostgreSQL and returns the statements it sends (as (sql, bound values)), then puts
    the run back (forced). The read's row version is recorded as VERSION_MARK in place
    of the value, for the script to take from its own read."""
    import asyncpg

    from flowrun.server.config import Settings
    from flowrun.server.db.engine import create_engine
    from flowrun.server.db.unit_of_work import Database
    from flowrun.server.domain.states import State, StateType
    from flowrun.server.orchestration.policies import FLOW_RUNS
    from flowrun.server.orchestration.transitions import set_state
    from flowrun.server.orchestration.unlocked import set_state_unlocked

    settings = Settings(database_url=database_url)
    database = Database(create_engine(settings))
    captured: list[tuple[str, list]] = []
    versions: list[int] = []
    recording = False
    originals = {name: getattr(asyncpg.Connection, name) for name in ("fetchrow", "fetch", "execute")}

    def recorder(name):
        original = originals[name]

        async def record(self, query, *args, **kwargs):
            result = await original(self, query, *args, **kwargs)
            if recording:
                captured.append((query, list(args)))
                if name == "fetchrow" and result is not None and "row_version" in result:
                    versions.append(result["row_version"])
            return result

        return record

    def state(state_type: StateType) -> State:
        return State(type=state_type, name=state_type.default_name, timestamp=datetime.now(UTC))

    async def force(state_type: StateType) -> None:
        async with database.unit_of_work(write=True) as uow:
            await set_state(
                uow.repos, FLOW_RUNS, run_id, state(state_type), datetime.now(UTC), force=True, settings=settings
            )

    run_id = seeding.run_id(run_number)
    for name in originals:
        setattr(asyncpg.Connection, name, recorder(name))
    try:
        # PENDING first (not captured), so the replayed step is the PENDING -> RUNNING
        # transition under the core policy, which touches the most columns.
        await force(StateType.PENDING)
        recording = True
        running = state(StateType.RUNNING)
        result = await set_state_unlocked(
            database,
            FLOW_RUNS,
            run_id,
            running,
            lambda: state(StateType.RUNNING),
            running.timestamp,
            force=False,
            settings=settings,
        )
        recording = False
        if result is None:
            raise RuntimeError("the transition took the locking path: nothing to replay")
        await force(StateType.PENDING)
    finally:
        for name, original in originals.items():
            setattr(asyncpg.Connection, name, original)
        await database.dispose()
    (version,) = versions
    return [(sql, [VERSION_MARK if value == version else value for value in values]) for sql, values in captured]


def _literal(value) -> str:
    if isinstance(value, (dict, list)):  # JSON handed to the driver as Python objects
        value = json.dumps(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _expression(value, run_id: str, state_id: str) -> str:
    if value is VERSION_MARK:
        return "(:p_row_version)::xid"
    if isinstance(value, datetime):
        return "now()"
    text = str(value) if value is not None else ""
    if text == run_id:
        return RUN_EXPR
    if text == state_id:
        return STATE_EXPR
    if not isinstance(value, str):
        return _literal(value)
    # Text: the ids substituted at run time, and any colon that pgbench would read as the
    # start of a variable (`"key":null`, `12:30:00`) written as chr(58).
    substitutions = [(run_id, "@run@", f"{RUN_EXPR}::text"), (state_id, "@state@", f"{STATE_EXPR}::text")]
    if re.search(r":[A-Za-z0-9_]", value):
        substitutions.append((":", "@colon@", "chr(58)"))
    marked, expression = value, None
    for original, mark, replacement in substitutions:
        if original in marked:
            marked = marked.replace(original, mark)
            expression = f"replace({expression or '{literal}'}, '{mark}', {replacement})"
    if expression is None:
        return _literal(value)
    expression = expression.replace("{literal}", _literal(marked), 1)
    # replace() yields text; a JSON column needs it cast (the server binds jsonb).
    return f"({expression})::jsonb" if value.lstrip().startswith(("{", "[")) else expression


def render_script(captured: list[tuple[str, list]], run_number: int) -> str:
    run_id = seeding.run_id(run_number)
    write = next(c for c in captured if "INSERT INTO flow_run_state" in c[0])
    state_id = str(write[1][0])  # the new state's id is the write's first parameter
    lines = [
        "-- One flowrun SetFlowRunState (PENDING -> RUNNING), as the server sends it on",
        "-- PostgreSQL: two statements, each its own transaction (server/orchestration/unlocked.py).",
        "-- Generated by bench/pgbench_ceiling.py from the server's repositories and policy;",
        "-- regenerated on every run, do not edit. Needs -D runs=N (seeded runs 1..N).",
        "\\set run random(1, :runs)",
        "\\set sid random(1, 9223372036854775806)",
    ]
    for statement, values in captured:
        sql = _PLACEHOLDER.sub(lambda m: _expression(values[int(m.group(1)) - 1], run_id, state_id), statement)  # noqa: B023 - sub calls it now
        line = " ".join(sql.split())
        # The read's columns become variables (p_<column>): the write takes p_row_version.
        lines.append(line + ("\n\\gset p_" if "AS row_version" in line else ";"))
    return "\n".join(lines) + "\n"


def write_script(database_url: str, run_number: int = 1) -> str:
    captured = asyncio.run(capture_set_state(database_url, run_number))
    kinds = [" ".join(sql.split()[:3]).upper() for sql, _ in captured]
    if len(captured) != 2:
        raise RuntimeError(f"expected the read and the one conditional write of one SetState, captured: {kinds}")
    script = render_script(captured, run_number)
    SCRIPT.parent.mkdir(parents=True, exist_ok=True)
    SCRIPT.write_text(script)
    return script


_TPS = re.compile(r"tps = ([\d.]+) \(without initial connection time\)")
_LAT = re.compile(r"latency average = ([\d.]+) ms")
_DONE = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")


def run_pgbench(db: benchlib.ScratchDatabase, clients: int, duration: float, runs: int) -> dict:
    """One pgbench run; tps is transitions/s (one pgbench transaction = one SetState)."""
    command = ["pgbench", "-n", "-f", str(SCRIPT), "-D", f"runs={runs}", "-M", "prepared"]
    command += ["-c", str(clients), "-j", str(min(2, clients)), "-T", str(int(max(1, round(duration))))]
    command += ["-r", *db.libpq_args()]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=db.libpq_env())
    # CPU is sampled inside the run, once pgbench's connections exist (their backends
    # live only as long as pgbench), over all but the first and last second.
    window = max(0.5, duration - 2.0) if duration > 2.5 else duration / 2
    time.sleep(min(1.0, duration / 4))
    before = benchlib.CpuSnapshot.take()
    time.sleep(window)
    after = benchlib.CpuSnapshot.take()
    out, err = proc.communicate()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{err}\n{out}")

    def grab(pattern: re.Pattern, cast=float):
        match = pattern.search(out)
        return cast(match.group(1)) if match else None

    tps = grab(_TPS)
    cpu = benchlib.cpu_delta(before, after, server_pgid=None, client_pids={proc.pid}, database=db.name)
    window = after.at - before.at
    done = grab(_DONE, int)
    pgbench_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    result = {
        "clients": clients,
        "threads": min(2, clients),
        "duration_s": duration,
        "transitions_per_s": tps,
        "transactions": done,
        "failed_transactions": grab(_FAILED, int) or 0,
        "latency_avg_ms": grab(_LAT),
        "pgbench_cpu_seconds": round(pgbench_cpu, 3),
        "cpu_window_s": round(window, 3),
        "cpu_window": cpu,
        # Backends of this database only, per 1,000 transitions at the measured tps.
        "postgres_cpu_s_per_1000_transitions": (
            round(cpu["postgres_backends_cpu_seconds"] / (tps * window) * 1000, 3) if tps else None
        ),
        "machine_busy_fraction": round(cpu["machine_busy_cpu_seconds"] / cpu["machine_capacity_cpu_seconds"], 3),
        # CPU of everything but pgbench and this database's backends: contention.
        "other_cpu_cores": round(
            max(0.0, cpu["machine_busy_cpu_seconds"] - cpu["client_cpu_seconds"] - cpu["postgres_backends_cpu_seconds"])
            / window,
            2,
        ),
        "per_statement_latency_ms": _per_statement(out),
    }
    return result


def _per_statement(out: str) -> list[dict]:
    """pgbench -r: average latency of each statement of the script."""
    rows = []
    in_block = False
    for line in out.splitlines():
        if "statement latencies in milliseconds" in line:
            in_block = True
            continue
        if in_block:
            parts = line.strip().split(None, 2)
            if len(parts) >= 2 and re.fullmatch(r"[\d.]+", parts[0]):
                # PG15: "latency failures statement"
                if len(parts) == 3 and re.fullmatch(r"\d+", parts[1]):
                    rest = parts[2]
                else:
                    rest = " ".join(parts[1:])
                rows.append({"ms": float(parts[0]), "statement": rest[:60]})
    return rows


def ceiling(clients: list[int], duration: float, *, runs: int, warmup: float, pg_url: str, keep: bool = False) -> dict:
    """Seeds a fresh database with `runs` runs through the server's migrations, writes the
    script from the server's code, and runs pgbench once per client count."""
    db = benchlib.ScratchDatabase.create("postgres", "bench_pgb", pg_url)
    try:
        started = time.monotonic()
        asyncio.run(benchlib.migrate_database(db.url))
        seeded = asyncio.run(seeding.seed_runs(db.url, runs))
        seed_s = time.monotonic() - started
        write_script(db.url)
        if warmup > 0:
            run_pgbench(db, max(clients), warmup, runs)
        results = [run_pgbench(db, c, duration, runs) for c in clients]
    finally:
        if not keep:
            db.drop()
    return {
        "benchmark": "pgbench-set-state",
        "script": str(SCRIPT.relative_to(benchlib.REPO)),
        "database": db.label,
        "seeded_runs": seeded["runs"],
        "seeded_states": seeded["states"],
        "seed_seconds": round(seed_s, 1),
        "results": results,
    }


def print_table(report: dict) -> None:
    rows = [
        [
            r["clients"],
            r["transitions_per_s"],
            r["latency_avg_ms"],
            r["failed_transactions"],
            r["postgres_cpu_s_per_1000_transitions"],
            f"{r['machine_busy_fraction']:.0%}",
            r["other_cpu_cores"],
        ]
        for r in report["results"]
    ]
    print("pgbench replay of one SetState (" + report["script"] + ")")
    print(
        benchlib.table(
            ["clients", "transitions/s", "lat avg ms", "failed", "pg cpu s/1k tr", "machine", "other cores"], rows
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    parser.add_argument("--duration", type=float, default=20, help="seconds per client count (default 20)")
    parser.add_argument("--runs", type=int, default=100_000, help="seeded runs to pick from (default 100000)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded pgbench first (default 3)")
    parser.add_argument("--pg-url", default=benchlib.DEFAULT_PG_URL, help="server to create the scratch database on")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json-out", help="write the report here")
    args = parser.parse_args(argv)
    report = {
        "machine": benchlib.machine_info(),
        "git": benchlib.git_info(),
        **ceiling(
            benchlib.parse_clients(args.clients),
            args.duration,
            runs=args.runs,
            warmup=args.warmup,
            pg_url=args.pg_url,
            keep=args.keep,
        ),
    }
    print_table(report)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
