"""Load generator for flowrun: how many run lifecycles it moves, how fast each RPC
answers under load, and what that costs in server CPU.

Lifecycle mode (default): C concurrent clients, each looping
    CreateFlowRun (initial state SCHEDULED, scheduled now)
    -> SetFlowRunState PENDING -> RUNNING -> COMPLETED
through the real orchestration policy (3 orchestrated transitions per lifecycle, like
the reference benchmark); anything but ACCEPT counts as an error.

Read mode: seeds --read-rows runs straight into the tables, then C clients loop over
ListFlowRuns with representative filters (page_size 200) and CountFlowRuns.

Without --target the script starts `python -m flowrun.server` itself on a fresh database
(PostgreSQL: bench_<random>, dropped afterwards; SQLite: a temporary file), so that it
can read the server's CPU time from /proc. The clients run in separate processes
(--procs, default min(C, 2)), each an asyncio loop (uvloop when installed) over
--channels channels. Calls that end inside the measured window count; the warm-up
before it does not.

    python bench/lifecycle.py --db postgres --clients 1,8,32 --duration 20 --with-pgbench
    python bench/lifecycle.py --db postgres --mode read --read-rows 100000 --clients 1,8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib

RPC_TIMEOUT_S = 60.0
CHANNEL_OPTIONS = [
    # Each channel gets its own TCP connection; by default channels with the same
    # target and options share one subchannel (one connection) per process.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]

# --- the client side (runs in worker processes) ----------------------------------------


class Recorder:
    """Per-process results: latencies and errors of calls that ended in the window."""

    def __init__(self, window_start: float, window_end: float) -> None:
        self.window_start = window_start
        self.window_end = window_end
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.errors_outside: Counter[str] = Counter()
        self.rows: dict[str, list[int]] = defaultdict(list)
        self.lifecycles = 0
        self.transitions = 0

    def inside(self, ended: float) -> bool:
        return self.window_start <= ended <= self.window_end

    def call(self, rpc: str, started: float, ended: float, counts: bool) -> bool:
        if counts:
            self.latencies[rpc].append(ended - started)
        return counts

    def error(self, code: str, counts: bool) -> None:
        (self.errors if counts else self.errors_outside)[code] += 1

    def result(self) -> dict:
        return {
            "latencies": dict(self.latencies),
            "errors": dict(self.errors),
            "errors_outside_window": dict(self.errors_outside),
            "rows": dict(self.rows),
            "lifecycles": self.lifecycles,
            "transitions": self.transitions,
        }


async def lifecycle_client(stub, flow_id: str, rec: Recorder, budget: list[int] | None) -> None:
    """Loops over whole lifecycles until the window closes (duration mode) or the
    process's share of --count is used up (count mode)."""
    import grpc

    from flowrun.v1 import flow_run_service_pb2 as frs
    from flowrun.v1 import state_pb2

    accept = state_pb2.SET_STATE_STATUS_ACCEPT
    steps = (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED)
    create = frs.CreateFlowRunRequest(
        flow_id=flow_id, tags=["bench"], state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    )
    clock = time.perf_counter
    while True:
        now = clock()
        claimed = False  # count mode: this lifecycle is one of the measured N
        if budget is None:
            if now >= rec.window_end:
                return
        elif now >= rec.window_start:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            claimed = True

        def counts(ended: float) -> bool:
            return claimed if budget is not None else rec.inside(ended)  # noqa: B023 - called in this iteration only

        started = clock()
        try:
            response = await stub.CreateFlowRun(create, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            rec.error(exc.code().name, counts(clock()))
            continue
        ended = clock()
        rec.call("CreateFlowRun", started, ended, counts(ended))
        run_id = response.flow_run.id
        completed = True
        for state_type in steps:
            if budget is None and clock() >= rec.window_end:
                return
            request = frs.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type))
            started = clock()
            try:
                response = await stub.SetFlowRunState(request, timeout=RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                rec.error(exc.code().name, counts(clock()))
                completed = False
                break
            ended = clock()
            if response.status != accept:
                rec.error(state_pb2.SetStateStatus.Name(response.status), counts(ended))
                completed = False
                break
            if counts(ended):
                rec.call("SetFlowRunState", started, ended, True)
                rec.transitions += 1
        if completed and counts(ended):
            rec.lifecycles += 1


@dataclass(frozen=True)
class ReadQuery:
    """One benchmarked read: `rpc` with `request`; with `page` > 1 the request carries
    the page token of that page, found once per client process before the clock starts
    (keyset paging makes every later page cost what the first does, so page 5 stands
    for any of them)."""

    name: str
    rpc: str
    request: Any  # the rpc's request message
    page: int = 1


LATER_PAGE = 5


def read_queries(now: datetime) -> list[ReadQuery]:
    """What a UI and a scheduler ask of a busy server: the common FlowRunFilter filters
    (flow, deployment, state type, tags, expected and start time ranges), alone and in
    the usual pairs, each as ListFlowRuns (default sort ID_DESC, page_size 200; first and
    a later page) and as CountFlowRuns. Flow and deployment ids are the seeded ones."""
    import seeding
    from google.protobuf.timestamp_pb2 import Timestamp

    from flowrun.v1 import filters_pb2 as f
    from flowrun.v1 import flow_run_service_pb2 as frs
    from flowrun.v1 import state_pb2 as s

    def ts(value: datetime) -> Timestamp:
        out = Timestamp()
        out.FromDatetime(value)
        return out

    def states(*types: s.StateType) -> f.FlowRunStateFilter:
        return f.FlowRunStateFilter(type=f.StateTypeFilter(any=list(types)))

    def day() -> f.TimeFilter:
        return f.TimeFilter(after=ts(now - timedelta(days=3)), before=ts(now - timedelta(days=2)))

    flow = f.IdFilter(any=[seeding.flow_id(3)])
    deployment = f.IdFilter(any=[seeding.deployment_id(3 + 2 * seeding.DEFAULT_FLOWS)])
    tags = f.TagsFilter(all=["prod", "etl"])
    filters = {
        "all": f.FlowRunFilter(),
        "flow": f.FlowRunFilter(flow_id=flow),
        "deployment": f.FlowRunFilter(deployment_id=deployment),
        "state_failed_crashed": f.FlowRunFilter(state=states(s.STATE_TYPE_FAILED, s.STATE_TYPE_CRASHED)),
        "state_completed": f.FlowRunFilter(state=states(s.STATE_TYPE_COMPLETED)),
        "state_running": f.FlowRunFilter(state=states(s.STATE_TYPE_RUNNING)),
        "tags_all_prod_etl": f.FlowRunFilter(tags=tags),
        "expected_1day": f.FlowRunFilter(expected_start_time=day()),
        "start_1day": f.FlowRunFilter(start_time=day()),
        "flow_state_completed": f.FlowRunFilter(flow_id=flow, state=states(s.STATE_TYPE_COMPLETED)),
        "deployment_state_scheduled": f.FlowRunFilter(deployment_id=deployment, state=states(s.STATE_TYPE_SCHEDULED)),
        "tags_state_failed": f.FlowRunFilter(tags=tags, state=states(s.STATE_TYPE_FAILED)),
        "flow_expected_1day": f.FlowRunFilter(flow_id=flow, expected_start_time=day()),
    }
    later_pages = ("all", "flow", "state_failed_crashed", "flow_state_completed", "tags_all_prod_etl")
    queries = []
    for name, flow_run_filter in filters.items():
        listing = frs.ListFlowRunsRequest(flow_run_filter=flow_run_filter, page_size=200)
        queries.append(ReadQuery(f"list_{name}", "ListFlowRuns", listing))
        if name in later_pages:
            queries.append(ReadQuery(f"list_{name}_page{LATER_PAGE}", "ListFlowRuns", listing, LATER_PAGE))
        if name != "all":  # counting every run is not a filtered read
            request = frs.CountFlowRunsRequest(flow_run_filter=flow_run_filter)
            queries.append(ReadQuery(f"count_{name}", "CountFlowRuns", request))
    queries.append(
        ReadQuery(
            "list_start_1day_sort_start_desc",
            "ListFlowRuns",
            frs.ListFlowRunsRequest(
                flow_run_filter=filters["start_1day"], sort=f.FLOW_RUN_SORT_START_TIME_DESC, page_size=200
            ),
        )
    )
    return queries


async def resolve_pages(stub, queries: list[ReadQuery]) -> list[ReadQuery]:
    """Each later-page query with the page token of its page in place."""
    resolved = []
    for query in queries:
        request = query.request
        for _ in range(query.page - 1):
            response = await stub.ListFlowRuns(request, timeout=RPC_TIMEOUT_S)
            if not response.next_page_token:
                raise RuntimeError(f"{query.name}: fewer than {query.page} pages; seed more runs")
            request = type(request)()
            request.CopyFrom(query.request)
            request.page_token = response.next_page_token
        resolved.append(ReadQuery(query.name, query.rpc, request, query.page))
    return resolved


async def read_client(stub, queries: list[ReadQuery], offset: int, rec: Recorder) -> None:
    import grpc

    clock = time.perf_counter
    i = offset
    while clock() < rec.window_end:
        query = queries[i % len(queries)]
        i += 1
        started = clock()
        try:
            response = await getattr(stub, query.rpc)(query.request, timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            rec.error(exc.code().name, rec.inside(clock()))
            continue
        ended = clock()
        if rec.call(query.name, started, ended, rec.inside(ended)):
            rec.rows[query.name].append(len(response.flow_runs) if query.rpc == "ListFlowRuns" else response.count)


async def worker_async(config: dict, go, start_at, results) -> dict:
    import grpc

    from flowrun.v1 import flow_run_service_pb2_grpc

    channels = [grpc.aio.insecure_channel(config["target"], options=CHANNEL_OPTIONS) for _ in range(config["channels"])]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 30)
    stubs = [flow_run_service_pb2_grpc.FlowRunServiceStub(channel) for channel in channels]
    if config["mode"] == "read":
        queries = await resolve_pages(stubs[0], read_queries(datetime.fromisoformat(config["now"])))
    results.put(("ready", os.getpid()))
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    begin = start_at.value  # perf_counter is CLOCK_MONOTONIC: one clock for all processes
    window_start = begin + config["warmup"]
    window_end = window_start + config["duration"] if config["duration"] else float("inf")
    rec = Recorder(window_start, window_end)
    await asyncio.sleep(max(0.0, begin - time.perf_counter()))
    tasks = []
    if config["mode"] == "lifecycle":
        budget = [config["count"]] if config["count"] else None
        for n in range(config["clients"]):
            tasks.append(lifecycle_client(stubs[n % len(stubs)], config["flow_id"], rec, budget))
    else:
        for n in range(config["clients"]):
            tasks.append(read_client(stubs[n % len(stubs)], queries, config["offset"] + n, rec))
    await asyncio.gather(*tasks)
    finished = time.perf_counter()
    for channel in channels:
        await channel.close()
    out = rec.result()
    out["finished"] = finished
    out["pid"] = os.getpid()
    return out


def worker_main(config: dict, go, release, start_at, results) -> None:
    try:
        try:
            import uvloop
        except ImportError:
            out = asyncio.run(worker_async(config, go, start_at, results))
        else:
            out = uvloop.run(worker_async(config, go, start_at, results))
        results.put(("done", out))
    except BaseException as exc:  # report, never hang the parent
        results.put(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    # Stay alive until the parent has read our CPU time from /proc.
    release.wait(120)


# --- the parent: one measurement per client count ---------------------------------------


def measure(config: dict, clients: int, procs: int, server_pgid: int | None, database: str | None) -> dict:
    """Runs `clients` clients split over `procs` processes; returns merged raw results
    and CPU accounting for the measured window."""
    ctx = mp.get_context("spawn")
    go, release = ctx.Event(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    results = ctx.Queue()
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    count = config.get("count") or 0
    count_shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    workers = []
    offset = 0
    for i, share in enumerate(shares):
        worker_config = {**config, "clients": share, "count": count_shares[i] if count else 0, "offset": offset}
        offset += share
        process = ctx.Process(target=worker_main, args=(worker_config, go, release, start_at, results), daemon=True)
        process.start()
        workers.append(process)
    try:
        for _ in workers:
            kind, payload = results.get(timeout=120)
            if kind != "ready":
                raise RuntimeError(f"a client process failed to start: {payload}")
        begin = time.perf_counter() + 0.2
        start_at.value = begin
        go.set()
        window_start = begin + config["warmup"]
        time.sleep(max(0.0, window_start - time.perf_counter()))
        client_pids = {p.pid for p in workers if p.pid is not None} | {os.getpid()}  # all started: pids set
        cpu_start = benchlib.CpuSnapshot.take()
        outs = []
        if config["duration"]:
            time.sleep(max(0.0, window_start + config["duration"] - time.perf_counter()))
            cpu_end = benchlib.CpuSnapshot.take()
            for _ in workers:
                outs.append(_receive(results, timeout=RPC_TIMEOUT_S + 60))
            duration = config["duration"]
        else:
            for _ in workers:
                outs.append(_receive(results, timeout=None))
            cpu_end = benchlib.CpuSnapshot.take()
            duration = max(o["finished"] for o in outs) - window_start
        release.set()
    finally:
        release.set()
        for process in workers:
            process.join(30)
            if process.is_alive():
                process.terminate()
    cpu = benchlib.cpu_delta(
        cpu_start,
        cpu_end,
        server_pgid=server_pgid,
        client_pids=client_pids,
        database=database,
    )
    merged: dict = {
        "latencies": defaultdict(list),
        "errors": Counter(),
        "errors_outside_window": Counter(),
        "rows": defaultdict(list),
    }
    merged["lifecycles"] = merged["transitions"] = 0
    for out in outs:
        for key in ("latencies", "rows"):
            for name, values in out[key].items():
                merged[key][name].extend(values)
        merged["errors"].update(out["errors"])
        merged["errors_outside_window"].update(out["errors_outside_window"])
        merged["lifecycles"] += out["lifecycles"]
        merged["transitions"] += out["transitions"]
    merged["duration"] = duration
    merged["cpu"] = cpu
    merged["procs"] = procs
    return merged


def _receive(results, timeout):
    kind, payload = results.get(timeout=timeout)
    if kind != "done":
        raise RuntimeError(f"a client process failed: {payload}")
    return payload


def summarize_lifecycle(raw: dict, clients: int) -> dict:
    duration = raw["duration"]
    cpu = raw["cpu"]
    transitions = raw["transitions"]
    server_cpu = cpu["server_cpu_seconds"]
    return {
        "clients": clients,
        "client_processes": raw["procs"],
        "duration_s": round(duration, 3),
        "lifecycles": raw["lifecycles"],
        "transitions": transitions,
        "lifecycles_per_s": round(raw["lifecycles"] / duration, 2),
        "transitions_per_s": round(transitions / duration, 2),
        "latency_ms": {rpc: benchlib.latency_summary(v) for rpc, v in sorted(raw["latencies"].items())},
        "errors": dict(raw["errors"]),
        "errors_outside_window": dict(raw["errors_outside_window"]),
        "server_cpu_seconds": server_cpu,
        "server_cpu_s_per_1000_transitions": (
            round(server_cpu / transitions * 1000, 3) if server_cpu is not None and transitions else None
        ),
        "server_cpu_cores": round(server_cpu / duration, 3) if server_cpu is not None else None,
        "client_cpu_seconds": cpu["client_cpu_seconds"],
        "client_cpu_cores": round(cpu["client_cpu_seconds"] / duration, 3),
        "postgres_backends_cpu_seconds": cpu.get("postgres_backends_cpu_seconds"),
        "postgres_cpu_s_per_1000_transitions": (
            round(cpu["postgres_backends_cpu_seconds"] / transitions * 1000, 3)
            if cpu.get("postgres_backends_cpu_seconds") is not None and transitions
            else None
        ),
        "machine_busy_fraction": round(cpu["machine_busy_cpu_seconds"] / cpu["machine_capacity_cpu_seconds"], 3),
        "other_cpu_cores": _other_cores(cpu, duration),
        "cpu_window": cpu,
    }


def _other_cores(cpu: dict, duration: float) -> float:
    """CPU the benchmark did not use itself: other processes on the machine (and, on
    PostgreSQL, its background processes and backends of other databases). Anything
    well above zero means the figures were taken on a shared, contended machine."""
    ours = (cpu["server_cpu_seconds"] or 0) + cpu["client_cpu_seconds"] + (cpu["postgres_backends_cpu_seconds"] or 0)
    return round(max(0.0, cpu["machine_busy_cpu_seconds"] - ours) / duration, 2)


def summarize_read(raw: dict, clients: int) -> dict:
    duration = raw["duration"]
    cpu = raw["cpu"]
    queries = {}
    total = 0
    for name, values in sorted(raw["latencies"].items()):
        rows = raw["rows"].get(name, [])
        queries[name] = {
            **benchlib.latency_summary(values),
            "per_s": round(len(values) / duration, 2),
            "mean_rows_or_count": round(sum(rows) / len(rows), 1) if rows else None,
        }
        total += len(values)
    server_cpu = cpu["server_cpu_seconds"]
    return {
        "clients": clients,
        "client_processes": raw["procs"],
        "duration_s": round(duration, 3),
        "queries_per_s": round(total / duration, 2),
        "queries": queries,
        "errors": dict(raw["errors"]),
        "server_cpu_seconds": server_cpu,
        "server_cpu_s_per_1000_queries": round(server_cpu / total * 1000, 3)
        if server_cpu is not None and total
        else None,
        "client_cpu_seconds": cpu["client_cpu_seconds"],
        "machine_busy_fraction": round(cpu["machine_busy_cpu_seconds"] / cpu["machine_capacity_cpu_seconds"], 3),
        "other_cpu_cores": _other_cores(cpu, duration),
        "cpu_window": cpu,
    }


def print_lifecycle(report: dict) -> None:
    rows = []
    for r in report["results"]:
        create = r["latency_ms"].get("CreateFlowRun", {})
        setstate = r["latency_ms"].get("SetFlowRunState", {})
        rows.append(
            [
                r["clients"],
                r["lifecycles_per_s"],
                r["transitions_per_s"],
                setstate.get("p50", "-"),
                setstate.get("p95", "-"),
                setstate.get("p99", "-"),
                create.get("p50", "-"),
                create.get("p99", "-"),
                sum(r["errors"].values()),
                r["server_cpu_s_per_1000_transitions"] if r["server_cpu_s_per_1000_transitions"] is not None else "-",
                r["server_cpu_cores"] if r["server_cpu_cores"] is not None else "-",
                r["client_cpu_cores"],
                r["postgres_cpu_s_per_1000_transitions"]
                if r["postgres_cpu_s_per_1000_transitions"] is not None
                else "-",
                f"{r['machine_busy_fraction']:.0%}",
                r["other_cpu_cores"],
                r.get("pgbench_transitions_per_s", "-") or "-",
                f"{r['ratio_to_pgbench']:.1%}" if r.get("ratio_to_pgbench") else "-",
            ]
        )
    print(f"\nflowrun lifecycle benchmark: db={report['db']}  server={report['server']['address']}")
    print(
        benchlib.table(
            [
                "clients",
                "lifecycles/s",
                "transitions/s",
                "Set p50",
                "Set p95",
                "Set p99",
                "Create p50",
                "Create p99",
                "errors",
                "srv cpu s/1k tr",
                "srv cores",
                "client cores",
                "pg cpu s/1k tr",
                "machine",
                "other cores",
                "pgbench tr/s",
                "ratio",
            ],
            rows,
        )
    )
    print("(latencies in ms; srv/pg cpu s/1k tr = server / PostgreSQL-backend CPU seconds per 1,000")
    print(" SetState transitions, creates included; cores = CPU seconds per wall second; machine = all")
    print(" CPUs busy; other cores = CPU used by processes that are not this benchmark: contention)")
    for r in report["results"]:
        if r["errors"]:
            print(f"  errors at {r['clients']} clients: {r['errors']}")


def print_read(report: dict) -> None:
    runs = report["seed"]["runs"]
    print(f"\nflowrun read benchmark: db={report['db']}  rows={runs:,}" if runs else "\nflowrun read benchmark")
    sql = report.get("sql", {})
    for r in report["results"]:
        rows = [
            [
                name,
                q["per_s"],
                q["p50"],
                q["p95"],
                q["p99"],
                q["max"],
                q["mean_rows_or_count"],
                sql[name]["sql_ms"] if name in sql else "-",
                ("SEQ SCAN " if sql.get(name, {}).get("seq_scan_flow_run") else "")
                + ",".join(sql.get(name, {}).get("indexes", [])),
            ]
            for name, q in r["queries"].items()
        ]
        print(
            f"\n{r['clients']} clients: {r['queries_per_s']:,.1f} queries/s, server cpu "
            f"{r['server_cpu_s_per_1000_queries']} s/1k queries, errors {r['errors'] or 0}, "
            f"machine busy {r['machine_busy_fraction']:.0%}, other load {r['other_cpu_cores']} cores"
        )
        headers = ["query", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms", "rows/count", "sql ms", "plan reads"]
        print(benchlib.table(headers, rows))
    if sql:
        print("(sql ms: PostgreSQL's execution time of the read's statement, the median of a few")
        print(" EXPLAIN ANALYZE runs after the load; plan reads: the indexes in its plan)")


def create_flow(target: str) -> str:
    import grpc

    from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = flow_service_pb2_grpc.FlowServiceStub(channel)
        return stub.CreateFlow(flow_service_pb2.CreateFlowRequest(name="bench-lifecycle"), timeout=30).flow.id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--db", default="sqlite", help="sqlite | postgres | a SQLAlchemy URL used as is (default sqlite)"
    )
    parser.add_argument("--pg-url", default=benchlib.DEFAULT_PG_URL, help="PostgreSQL server for --db postgres")
    parser.add_argument("--target", help="HOST:PORT of a running server instead of starting one")
    parser.add_argument(
        "--server-pid", type=int, help="with --target: measure this process's process group as the server"
    )
    parser.add_argument("--mode", choices=("lifecycle", "read"), default="lifecycle")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, help="measured seconds per client count (default 20)")
    group.add_argument("--count", type=int, help="measured lifecycles per client count, instead of --duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each window (default 3)")
    parser.add_argument("--channels", type=int, default=1, help="gRPC channels (connections) per client process")
    parser.add_argument("--procs", type=int, help="client processes (default min(clients, 2))")
    parser.add_argument("--workers", type=int, help="passed to the server as --workers when it supports it")
    parser.add_argument("--read-rows", type=int, default=100_000, help="runs to seed in read mode (default 100000)")
    parser.add_argument("--no-seed", action="store_true", help="read mode: use the rows already there")
    parser.add_argument("--with-pgbench", action="store_true", help="also run the pgbench SetState ceiling")
    parser.add_argument("--pgbench-runs", type=int, default=100_000, help="runs seeded for pgbench (default 100000)")
    parser.add_argument("--json-out", help="JSON report path (default bench/results/<mode>-<db>-<time>.json)")
    args = parser.parse_args(argv)
    if args.duration is None and args.count is None:
        args.duration = 20.0
    if args.mode == "read" and args.count:
        parser.error("read mode runs for --duration")
    if args.target and args.mode == "read" and not args.no_seed and args.db in ("sqlite", "postgres"):
        parser.error("read mode against --target needs --db URL (to seed) or --no-seed")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    client_counts = benchlib.parse_clients(args.clients)
    report: dict = {
        "benchmark": args.mode,
        "machine": benchlib.machine_info(),
        "git": benchlib.git_info(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "clients": client_counts,
            "duration_s": args.duration,
            "count": args.count,
            "warmup_s": args.warmup,
            "channels_per_process": args.channels,
            "procs": args.procs,
            "uvloop": _has_uvloop(),
        },
    }
    db = (
        None
        if args.target and args.db in ("sqlite", "postgres")
        else benchlib.ScratchDatabase.create(args.db, "bench", args.pg_url)
    )
    server = None
    try:
        if args.target:
            target = args.target
            server_pgid = os.getpgid(args.server_pid) if args.server_pid else None
            report["server"] = {"address": target, "managed": False, "workers": None, "pgid": server_pgid}
        else:
            workers = args.workers
            if workers and not benchlib.server_supports_workers():
                print(f"note: the server has no --workers option; running one process (ignored --workers {workers})")
                workers = None
            assert db is not None, "without --target the database is a scratch one"
            server = benchlib.ServerProcess(db.url, workers)
            target = server.start()
            server_pgid = server.pgid
            report["server"] = {"address": target, "managed": True, "workers": workers, "log": server.log.name}
        report["db"] = db.kind if db else args.db
        report["database"] = db.label if db else None
        db_name = db.name if db is not None and db.is_postgres else None
        config = {"target": target, "mode": args.mode, "channels": args.channels, "warmup": args.warmup}
        config.update(duration=args.duration or 0, count=args.count or 0)
        if args.mode == "lifecycle":
            config["flow_id"] = create_flow(target)
        else:
            if not args.no_seed:
                import seeding

                started = time.monotonic()
                assert db is not None, "main's argument check: seeding needs a database URL"
                report["seed"] = asyncio.run(seeding.seed_runs(db.url, args.read_rows))
                report["seed"]["seconds"] = round(time.monotonic() - started, 1)
                print(f"seeded {args.read_rows:,} runs in {report['seed']['seconds']}s")
            elif db is not None:
                import seeding

                report["seed"] = asyncio.run(seeding.seeded(db.url))
            else:
                report["seed"] = {"runs": None, "now": datetime.now(UTC).isoformat()}
            config["now"] = report["seed"]["now"]
        results = []
        for clients in client_counts:
            procs = args.procs or min(clients, 2)
            raw = measure(config, clients, procs, server_pgid, db_name)
            summary = summarize_lifecycle(raw, clients) if args.mode == "lifecycle" else summarize_read(raw, clients)
            results.append(summary)
            _progress(summary, args.mode)
        report["results"] = results
        if args.mode == "read" and db is not None and db.is_postgres:
            import read_plans

            queries = read_queries(datetime.fromisoformat(config["now"]))
            report["sql"] = asyncio.run(read_plans.explain_reads(db.url, queries))
    finally:
        if server is not None:
            server.stop()
        if db is not None:
            db.drop()
    if args.with_pgbench:
        if args.mode != "lifecycle" or report["db"] != "postgres":
            print("note: --with-pgbench applies to lifecycle mode on PostgreSQL; skipped")
        else:
            import pgbench_ceiling

            ceiling = pgbench_ceiling.ceiling(
                client_counts,
                args.duration or 20.0,
                runs=args.pgbench_runs,
                warmup=args.warmup,
                pg_url=args.pg_url,
            )
            report["pgbench"] = ceiling
            pgbench_ceiling.print_table(ceiling)
            for result, pgb in zip(report["results"], ceiling["results"], strict=True):
                result["pgbench_transitions_per_s"] = pgb["transitions_per_s"]
                result["ratio_to_pgbench"] = (
                    round(result["transitions_per_s"] / pgb["transitions_per_s"], 4)
                    if pgb["transitions_per_s"]
                    else None
                )
    (print_lifecycle if args.mode == "lifecycle" else print_read)(report)
    out = Path(args.json_out) if args.json_out else _default_out(args.mode, report["db"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


def _progress(summary: dict, mode: str) -> None:
    if mode == "lifecycle":
        p99 = summary["latency_ms"].get("SetFlowRunState", {}).get("p99")
        print(
            f"  {summary['clients']:>3} clients: {summary['lifecycles_per_s']:,.1f} lifecycles/s, "
            f"{summary['transitions_per_s']:,.1f} transitions/s, SetState p99 {p99} ms, "
            f"errors {sum(summary['errors'].values())}",
            flush=True,
        )
    else:
        print(f"  {summary['clients']:>3} clients: {summary['queries_per_s']:,.1f} queries/s", flush=True)


def _default_out(mode: str, db: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return benchlib.BENCH / "results" / f"{mode}-{db}-{stamp}.json"


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
