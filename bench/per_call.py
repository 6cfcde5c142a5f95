"""What one call costs the server: flowrun against a bare grpc.aio server, in one run.

    .venv/bin/python bench/per_call.py                      # PostgreSQL, 2 rounds of 300 calls
    .venv/bin/python bench/per_call.py --tree ../flowrun-old  # and an older checkout: an A/B

Servers run side by side as subprocesses: flowrun itself (`python -m flowrun.server`,
one process, its whole interceptor chain, a scratch database), the flowrun of every
other checkout named with --tree (same database), and a bare grpc.aio server (uvloop,
no interceptors, no database) whose servicers answer every call with a response built
once in advance. The same client, in this process, sends each RPC at `--concurrency`
calls in flight: `--rounds` windows of `--calls` calls per server, each after `--warmup`
unmeasured calls, the servers taking turns window by window so that drifting load on a
shared machine hits them alike.

Server CPU comes from /proc: the scheduler's run time of every thread of the server's
process group (`/proc/PID/task/TID/schedstat`, nanoseconds), so a few hundred calls are
enough. The report gives microseconds of server CPU per call for each RPC on each server
and its ratio to the bare server's: what flowrun costs on top of the floor gRPC itself
sets. Idle CPU (flowrun's periodic sweeps) is measured over a quiet second and reported,
not subtracted.

The RPCs: Health.Check (open, no database), FlowService.GetFlow (a known id),
FlowRunService.CreateFlowRun (initial state SCHEDULED), GetFlowRun, and SetFlowRunState
(SCHEDULED -> PENDING, then PENDING -> RUNNING: each measured call is an ACCEPT)."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import benchlib

# --- the bare floor (a subprocess) -------------------------------------------------------

BARE_FLOW_ID = "7d0f5a57-8f6d-4a53-a2a1-6d2c5c8f7e10"


def _bare_responses() -> dict:
    """One pre-built response per measured RPC, shaped like flowrun's answers (a run with
    its state), so the floor serializes what flowrun serializes."""
    from datetime import UTC, datetime

    from flowrun.server.domain.states import State, StateType
    from flowrun.server.orchestration.context import SetStateStatus, TransitionResult
    from flowrun.server.services import to_proto
    from flowrun.v1 import flow_pb2, flow_run_pb2, flow_run_service_pb2, flow_service_pb2, state_pb2

    now = datetime.now(UTC)
    run_id, flow_id = "0b6f1c9e-4f1d-4c39-9a7e-9d3f2f0c1a11", BARE_FLOW_ID
    state = state_pb2.State(id=run_id, type=state_pb2.STATE_TYPE_PENDING, name="Pending")
    state.timestamp.FromDatetime(now)
    run = flow_run_pb2.FlowRun(id=run_id, flow_id=flow_id, name="bare-run", state=state, tags=["bench"])
    run.created.FromDatetime(now)
    result = TransitionResult(
        status=SetStateStatus.ACCEPT, state=State(type=StateType.PENDING, name="Pending", timestamp=now)
    )
    return {
        "GetFlow": flow_service_pb2.GetFlowResponse(flow=flow_pb2.Flow(id=flow_id, name="bench")),
        "CreateFlowRun": flow_run_service_pb2.CreateFlowRunResponse(flow_run=run, created=True),
        "GetFlowRun": flow_run_service_pb2.GetFlowRunResponse(flow_run=run),
        "SetFlowRunState": to_proto.set_state_response(result, flow_run_service_pb2.SetFlowRunStateResponse),
    }


async def _serve_bare(port_queue) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc

    responses = _bare_responses()
    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    class Health(health_pb2_grpc.HealthServicer):
        async def Check(self, request, context):
            return serving

    class Flows(flow_service_pb2_grpc.FlowServiceServicer):
        async def GetFlow(self, request, context):
            return responses["GetFlow"]

    class FlowRuns(flow_run_service_pb2_grpc.FlowRunServiceServicer):
        async def CreateFlowRun(self, request, context):
            return responses["CreateFlowRun"]

        async def GetFlowRun(self, request, context):
            return responses["GetFlowRun"]

        async def SetFlowRunState(self, request, context):
            return responses["SetFlowRunState"]

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    flow_service_pb2_grpc.add_FlowServiceServicer_to_server(Flows(), server)
    flow_run_service_pb2_grpc.add_FlowRunServiceServicer_to_server(FlowRuns(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_queue.put(port)
    await server.wait_for_termination()


def _run_bare(port_queue) -> None:
    os.setsid()  # its own process group, measured like flowrun's
    import uvloop

    uvloop.run(_serve_bare(port_queue))


# --- CPU of a process group, from /proc ----------------------------------------------------


def group_cpu_ns(pgid: int) -> int:
    """Run time so far of every live thread of every process in the group, nanoseconds."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        sample = benchlib.read_proc(int(entry))
        if sample is None or sample.pgrp != pgid:
            continue
        try:
            threads = os.listdir(f"/proc/{entry}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                total += int(Path(f"/proc/{entry}/task/{thread}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


# --- the client ------------------------------------------------------------------------------


class Target:
    """One server as the client sees it: stubs on one channel, and its process group."""

    def __init__(self, name: str, address: str, pgid: int) -> None:
        import grpc
        from grpc_health.v1 import health_pb2_grpc

        from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc

        self.name = name
        self.pgid = pgid
        self.channel = grpc.aio.insecure_channel(address)
        self.health: Any = health_pb2_grpc.HealthStub(self.channel)  # its stubs do not declare Check
        self.flows = flow_service_pb2_grpc.FlowServiceStub(self.channel)
        self.runs = flow_run_service_pb2_grpc.FlowRunServiceStub(self.channel)


async def run_calls(make_call: Callable[[], Awaitable[object]], count: int, concurrency: int) -> None:
    """`count` calls of make_call(), `concurrency` in flight."""
    remaining = count

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await make_call()

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def measured(target: Target, make_call, count: int, concurrency: int) -> dict:
    before_ns, started = group_cpu_ns(target.pgid), time.perf_counter()
    await run_calls(make_call, count, concurrency)
    elapsed, cpu_ns = time.perf_counter() - started, group_cpu_ns(target.pgid) - before_ns
    return {"calls": count, "seconds": elapsed, "cpu_ns": cpu_ns}


async def bench(args: argparse.Namespace, servers: dict[str, tuple[str, int]]) -> dict:
    """Measures every RPC on every server in `servers` (name -> (address, pgid); "bare"
    is the floor, the others flowrun servers), `args.rounds` windows each, the servers
    taking turns window by window."""
    from grpc_health.v1 import health_pb2

    from flowrun.v1 import flow_run_service_pb2 as frs
    from flowrun.v1 import flow_service_pb2 as fs
    from flowrun.v1 import state_pb2

    targets = [Target(name, *where) for name, where in servers.items()]  # channels on this loop
    for target in targets:
        await asyncio.wait_for(target.channel.channel_ready(), 30)
    flow_ids = {"bare": BARE_FLOW_ID}  # any id: the bare server answers every call alike
    for target in targets:
        if target.name != "bare":
            flow = await target.flows.CreateFlow(fs.CreateFlowRequest(name="per-call-bench"))
            flow_ids[target.name] = flow.flow.id
    run_ids: dict[str, list[str]] = {target.name: [] for target in targets}
    cursors: dict[tuple[str, str, int], int] = {}  # runs used so far by (server, rpc, step)
    check = health_pb2.HealthCheckRequest()
    accept = state_pb2.SET_STATE_STATUS_ACCEPT
    scheduled = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)

    def calls(target: Target, rpc: str, step: int):
        ids, flow_id = run_ids[target.name], flow_ids[target.name]
        get_flow = fs.GetFlowRequest(flow_id=flow_id)
        create = frs.CreateFlowRunRequest(flow_id=flow_id, tags=["bench"], state=scheduled)
        key = (target.name, rpc, step)

        def next_run() -> str:
            index = cursors.get(key, 0)
            cursors[key] = index + 1
            return ids[index]

        async def health_check() -> None:
            await target.health.Check(check)

        async def flow_get() -> None:
            await target.flows.GetFlow(get_flow)

        async def run_create() -> None:
            response = await target.runs.CreateFlowRun(create)
            ids.append(response.flow_run.id)

        async def run_get() -> None:
            await target.runs.GetFlowRun(frs.GetFlowRunRequest(flow_run_id=next_run()))

        async def set_state() -> None:
            state_type = (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING)[step]
            request = frs.SetFlowRunStateRequest(flow_run_id=next_run(), state=state_pb2.StateCreate(type=state_type))
            response = await target.runs.SetFlowRunState(request)
            if response.status != accept:
                raise RuntimeError(f"{target.name}: SetFlowRunState answered {response.status}, not ACCEPT")

        return {
            "Health.Check": health_check,
            "GetFlow": flow_get,
            "CreateFlowRun": run_create,
            "GetFlowRun": run_get,
            "SetFlowRunState": set_state,
        }[rpc]

    idle: dict[str, float] = {}
    for target in targets:
        before = group_cpu_ns(target.pgid)
        await asyncio.sleep(1.0)
        idle[target.name] = round((group_cpu_ns(target.pgid) - before) / 1000, 1)

    windows: dict[tuple[str, str], list[dict]] = {}
    # CreateFlowRun makes the runs that GetFlowRun reads and SetFlowRunState moves
    # SCHEDULED -> PENDING, then PENDING -> RUNNING (both steps pooled), one run per call.
    plan = [("Health.Check", 0), ("GetFlow", 0), ("CreateFlowRun", 0), ("GetFlowRun", 0)]
    plan += [("SetFlowRunState", 0), ("SetFlowRunState", 1)]
    turn = 0
    for rpc, step in plan:
        for _ in range(args.rounds):
            turn += 1
            for target in targets[turn % len(targets) :] + targets[: turn % len(targets)]:
                make_call = calls(target, rpc, step)
                await run_calls(make_call, args.warmup, args.concurrency)
                window = await measured(target, make_call, args.calls, args.concurrency)
                windows.setdefault((rpc, target.name), []).append(window)

    def pooled(rpc: str, name: str) -> dict:
        """Server CPU per call and calls per second over every window of rpc on a server."""
        parts = windows[(rpc, name)]
        count = sum(part["calls"] for part in parts)
        cpu_ns = sum(part["cpu_ns"] for part in parts)
        return {"us": cpu_ns / 1000 / count, "calls": count, "per_s": count / sum(part["seconds"] for part in parts)}

    report: dict[str, dict] = {}
    for rpc in dict.fromkeys(rpc for rpc, _ in plan):
        bare = pooled(rpc, "bare")
        report[rpc] = {"bare_us": round(bare["us"], 1)}
        for target in targets:
            if target.name != "bare":
                server = pooled(rpc, target.name)
                report[rpc][target.name] = {
                    "us": round(server["us"], 1),
                    "ratio": round(server["us"] / bare["us"], 2),
                    "calls": server["calls"],
                    "calls_per_s": round(server["per_s"]),
                }
    for target in targets:
        await target.channel.close()
    return {"rpcs": report, "idle_cpu_us_per_s": idle}


def start_flowrun(database_url: str, tree: Path) -> benchlib.ServerProcess:
    """`python -m flowrun.server` of the checkout at `tree` (one process): benchlib's
    ServerProcess, which runs the server of the checkout benchlib.REPO names."""
    server = benchlib.ServerProcess(database_url, workers=1)
    repo = benchlib.REPO
    benchlib.REPO = tree
    try:
        server.start()
    finally:
        benchlib.REPO = repo
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgres", help="postgres (default), sqlite or a database URL")
    parser.add_argument("--calls", type=int, default=300, help="measured calls per window")
    parser.add_argument("--rounds", type=int, default=2, help="windows per RPC and server, the servers taking turns")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calls before each window")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        type=Path,
        help="also measure the flowrun server of this checkout (repeatable): an A/B of two commits in one run",
    )
    parser.add_argument("--json-out", help="write the report here as JSON")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    bare_process = context.Process(target=_run_bare, args=(ports,), daemon=True)
    bare_process.start()
    database = benchlib.ScratchDatabase.create(args.db, prefix="percall")
    trees = {"flowrun": benchlib.REPO, **{f"flowrun@{tree}": tree.resolve() for tree in args.tree}}
    started: list[benchlib.ServerProcess] = []
    try:
        bare_port = ports.get(timeout=60)
        assert bare_process.pid is not None
        servers = {"bare": (f"127.0.0.1:{bare_port}", bare_process.pid)}
        for name, tree in trees.items():
            started.append(start_flowrun(database.url, tree))
            servers[name] = (started[-1].address, started[-1].pgid)
        try:
            import uvloop
        except ImportError:
            measured_report = asyncio.run(bench(args, servers))
        else:
            measured_report = uvloop.run(bench(args, servers))
    finally:
        for server in started:
            server.stop()
        bare_process.terminate()
        bare_process.join(10)
        database.drop()
    names = list(trees)
    headers = ["rpc", "bare us/call"] + [f"{name} us/call (ratio)" for name in names]
    rows = [
        [rpc, r["bare_us"], *(f"{r[name]['us']:,.1f} ({r[name]['ratio']}x)" for name in names)]
        for rpc, r in measured_report["rpcs"].items()
    ]
    print(benchlib.table(headers, rows))
    print(f"idle server CPU, us per second: {measured_report['idle_cpu_us_per_s']}")
    report = {
        "config": {**vars(args), "tree": [str(tree) for tree in args.tree]},
        "database": database.kind,
        "machine": benchlib.machine_info(),
        "git": benchlib.git_info(),
        **measured_report,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
