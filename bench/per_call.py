"""What one call costs the server: flowrun against a bare grpc.aio server, in one run.

    .venv/bin/python bench/per_call.py --db sqlite --calls 2000 --concurrency 4

Two servers run side by side as subprocesses: flowrun itself (`python -m flowrun.server`,
one process, its whole interceptor chain, a scratch database) and a bare grpc.aio server
(uvloop, no interceptors, no database) whose servicers answer every call with a response
built once in advance. The same client, in this process, sends `--calls` calls of each RPC
at `--concurrency` calls in flight to one server, then the other (alternating, so that
drifting load on a shared machine hits both alike), after `--warmup` unmeasured calls.

Server CPU comes from /proc: the scheduler's run time of every thread of the server's
process group (`/proc/PID/task/TID/schedstat`, nanoseconds), so a few thousand calls are
enough. The report gives microseconds of server CPU per call for each RPC on both servers
and their ratio: what flowrun costs on top of the floor that gRPC itself sets. flowrun's
idle CPU (its periodic sweeps) is measured over a quiet second and reported, not
subtracted.

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

import benchlib

# --- the bare floor (a subprocess) -------------------------------------------------------


def _bare_responses() -> dict:
    """One pre-built response per measured RPC, shaped like flowrun's answers (a run with
    its state), so the floor serializes what flowrun serializes."""
    from datetime import UTC, datetime

    from flowrun.server.domain.states import State, StateType
    from flowrun.server.orchestration.context import SetStateStatus, TransitionResult
    from flowrun.server.services import to_proto
    from flowrun.v1 import flow_pb2, flow_run_pb2, flow_run_service_pb2, flow_service_pb2, state_pb2

    now = datetime.now(UTC)
    run_id, flow_id = "0b6f1c9e-4f1d-4c39-9a7e-9d3f2f0c1a11", "7d0f5a57-8f6d-4a53-a2a1-6d2c5c8f7e10"
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
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.flows = flow_service_pb2_grpc.FlowServiceStub(self.channel)
        self.runs = flow_run_service_pb2_grpc.FlowRunServiceStub(self.channel)


async def run_calls(make_call: Callable[[int], Awaitable[object]], first: int, count: int, concurrency: int) -> None:
    """Calls make_call(i) for i in [first, first + count), `concurrency` in flight."""
    next_index = first
    end = first + count

    async def lane() -> None:
        nonlocal next_index
        while next_index < end:
            index = next_index
            next_index += 1
            await make_call(index)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def measured(target: Target, make_call, first: int, count: int, concurrency: int) -> dict:
    before_ns, started = group_cpu_ns(target.pgid), time.perf_counter()
    await run_calls(make_call, first, count, concurrency)
    elapsed, cpu_ns = time.perf_counter() - started, group_cpu_ns(target.pgid) - before_ns
    return {"calls": count, "seconds": elapsed, "cpu_ns": cpu_ns}


async def bench(args: argparse.Namespace, servers: dict[str, tuple[str, int]]) -> dict:
    from grpc_health.v1 import health_pb2

    from flowrun.v1 import flow_run_service_pb2 as frs
    from flowrun.v1 import flow_service_pb2 as fs
    from flowrun.v1 import state_pb2

    flowrun, bare = (Target(name, *servers[name]) for name in ("flowrun", "bare"))  # channels on this loop
    for target in (flowrun, bare):
        await asyncio.wait_for(target.channel.channel_ready(), 30)
    flow = await flowrun.flows.CreateFlow(fs.CreateFlowRequest(name="per-call-bench"))
    flow_id = flow.flow.id
    run_ids: dict[str, list[str]] = {flowrun.name: [], bare.name: []}
    check = health_pb2.HealthCheckRequest()
    get_flow = fs.GetFlowRequest(flow_id=flow_id)
    create = frs.CreateFlowRunRequest(
        flow_id=flow_id, tags=["bench"], state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    )
    accept = state_pb2.SET_STATE_STATUS_ACCEPT

    def calls(target: Target, rpc: str, step: int = 0):
        ids = run_ids[target.name]

        async def health_check(_: int) -> None:
            await target.health.Check(check)

        async def flow_get(_: int) -> None:
            await target.flows.GetFlow(get_flow)

        async def run_create(_: int) -> None:
            response = await target.runs.CreateFlowRun(create)
            ids.append(response.flow_run.id)

        async def run_get(index: int) -> None:
            await target.runs.GetFlowRun(frs.GetFlowRunRequest(flow_run_id=ids[index]))

        async def set_state(index: int) -> None:
            state_type = (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING)[step]
            request = frs.SetFlowRunStateRequest(flow_run_id=ids[index], state=state_pb2.StateCreate(type=state_type))
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

    idle_before = group_cpu_ns(flowrun.pgid)
    await asyncio.sleep(1.0)
    idle_us_per_s = round((group_cpu_ns(flowrun.pgid) - idle_before) / 1000, 1)

    windows: dict[tuple[str, str], list[dict]] = {}
    plan = [("Health.Check", 0), ("GetFlow", 0), ("CreateFlowRun", 0), ("GetFlowRun", 0), ("SetFlowRunState", 0)]
    plan.append(("SetFlowRunState", 1))  # PENDING -> RUNNING on the same runs; both windows pooled
    for index, (rpc, step) in enumerate(plan):
        order = (flowrun, bare) if index % 2 == 0 else (bare, flowrun)
        for target in order:
            make_call = calls(target, rpc, step)
            await run_calls(make_call, 0, args.warmup, args.concurrency)
            window = await measured(target, make_call, args.warmup, args.calls, args.concurrency)
            windows.setdefault((rpc, target.name), []).append(window)

    def pooled(rpc: str, target: Target) -> tuple[float, float]:
        """(server CPU us per call, calls per second) over every window of rpc on target."""
        parts = windows[(rpc, target.name)]
        count = sum(part["calls"] for part in parts)
        cpu_ns = sum(part["cpu_ns"] for part in parts)
        return cpu_ns / 1000 / count, count / sum(part["seconds"] for part in parts)

    report = {}
    for rpc in dict.fromkeys(rpc for rpc, _ in plan):
        flowrun_us, flowrun_rate = pooled(rpc, flowrun)
        bare_us, _ = pooled(rpc, bare)
        report[rpc] = {
            "flowrun_us": round(flowrun_us, 1),
            "bare_us": round(bare_us, 1),
            "ratio": round(flowrun_us / bare_us, 2),
            "calls": sum(part["calls"] for part in windows[(rpc, flowrun.name)]),
            "flowrun_calls_per_s": round(flowrun_rate),
        }
    for target in (flowrun, bare):
        await target.channel.close()
    return {"rpcs": report, "flowrun_idle_cpu_us_per_s": idle_us_per_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or a database URL (default sqlite)")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per RPC and server")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls before each window")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight")
    parser.add_argument("--json-out", help="write the report here as JSON")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    bare_process = context.Process(target=_run_bare, args=(ports,), daemon=True)
    bare_process.start()
    database = benchlib.ScratchDatabase.create(args.db, prefix="percall")
    flowrun_server = benchlib.ServerProcess(database.url, workers=1)
    try:
        bare_port = ports.get(timeout=60)
        address = flowrun_server.start()
        assert bare_process.pid is not None
        servers = {"flowrun": (address, flowrun_server.pgid), "bare": (f"127.0.0.1:{bare_port}", bare_process.pid)}
        try:
            import uvloop
        except ImportError:
            measured_report = asyncio.run(bench(args, servers))
        else:
            measured_report = uvloop.run(bench(args, servers))
    finally:
        flowrun_server.stop()
        bare_process.terminate()
        bare_process.join(10)
        database.drop()
    rows = [
        [rpc, r["flowrun_us"], r["bare_us"], f"{r['ratio']}x", r["flowrun_calls_per_s"]]
        for rpc, r in measured_report["rpcs"].items()
    ]
    print(
        benchlib.table(
            ["rpc", "flowrun us/call", "bare us/call", "ratio", "flowrun calls/s"],
            rows,
        )
    )
    print(f"flowrun idle: {measured_report['flowrun_idle_cpu_us_per_s']} us of CPU per second")
    report = {
        "config": vars(args),
        "database": database.kind,
        "machine": benchlib.machine_info(),
        "git": benchlib.git_info(),
        **measured_report,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
