"""Watch delivery under load: lifecycle throughput without and with N concurrent
watchers, and the delivery latency of their events.

    .venv/bin/python bench/watch.py --db postgres --watchers 100 --clients 8 --duration 15

One server process (`--workers`, default 1) on a scratch database. Phase 1 runs the
lifecycle load of bench/lifecycle.py (create SCHEDULED -> PENDING -> RUNNING ->
COMPLETED) alone; phase 2 runs it again while `--watchers` WatchFlowRuns streams (in
`--watcher-procs` processes of their own, so their decoding does not slow the load
generator) receive every event of the benchmark's flow.

Latency is the time from the change to its arrival at a watcher: the event's `time`
(the server's clock when the change began, on this machine's clock) to the moment the
watcher's process decoded it. It is an upper bound of commit-to-client: it also holds
the changing transaction's own duration (a few milliseconds under load)."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import ScratchDatabase, ServerProcess, latency_summary, machine_info, migrate_database, read_proc
from lifecycle import Recorder, create_flow, lifecycle_client


async def _load(target: str, flow_id: str, clients: int, duration: float) -> dict:
    import grpc

    from flowrun.v1 import flow_run_service_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        start = time.perf_counter() + 0.5
        rec = Recorder(start, start + duration)
        await asyncio.gather(*(lifecycle_client(stub, flow_id, rec, None) for _ in range(clients)))
    return {"lifecycles": rec.lifecycles, "per_second": round(rec.lifecycles / duration, 1), "errors": dict(rec.errors)}


async def _watch(target: str, flow_id: str, count: int, batch: bool, ready, stop, out) -> None:
    import grpc

    from flowrun.v1 import filters_pb2, flow_run_service_pb2_grpc
    from flowrun.v1 import flow_run_service_pb2 as pb

    latencies: list[float] = []
    received = 0
    messages = 0  # those carrying events (a batch is one message)
    opened = 0

    async def one(stub) -> None:
        nonlocal received, messages, opened
        request = pb.WatchFlowRunsRequest(
            flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])), batch=batch
        )
        first = True
        async for message in stub.WatchFlowRuns(request):
            if first:
                opened += 1
                first = False
            kind = message.WhichOneof("message")
            events = [message.event] if kind == "event" else message.events.events if kind == "events" else []
            arrived = time.time()
            messages += bool(events)
            for event in events:
                latencies.append(arrived - (event.time.seconds + event.time.nanos / 1e9))
                received += 1

    async with grpc.aio.insecure_channel(target) as channel:
        stub = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        tasks = [asyncio.ensure_future(one(stub)) for _ in range(count)]
        while opened < count:  # every stream sent its first heartbeat: it is open
            await asyncio.sleep(0.05)
        cpu_start = time.process_time()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        cpu = time.process_time() - cpu_start  # this process's CPU while the load ran
        await asyncio.sleep(1.0)  # the last events in flight
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.put({"received": received, "messages": messages, "latencies": latencies, "cpu_s": cpu})


def _watcher_main(target: str, flow_id: str, count: int, batch: bool, ready, stop, out) -> None:
    asyncio.run(_watch(target, flow_id, count, batch, ready, stop, out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgres", help="sqlite, postgres, or a database URL")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watcher-procs", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", action="store_true", help="watchers ask for batched events (WatchFlowRuns batch)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)

    database = ScratchDatabase.create(args.db, prefix="watchbench")
    server = None
    try:
        asyncio.run(migrate_database(database.url))
        os.environ["FLOWRUN_WATCH_HEARTBEAT_SECONDS"] = "0.5"  # the server's streams say they are open quickly
        server = ServerProcess(database.url, workers=args.workers)
        target = server.start()
        flow_id = create_flow(target)
        ticks = os.sysconf("SC_CLK_TCK")

        def server_cpu() -> float:
            sample = read_proc(server.pgid)
            return sample.ticks / ticks if sample else float("nan")

        cpu_before = server_cpu()
        alone = asyncio.run(_load(target, flow_id, args.clients, args.duration))
        spent = server_cpu() - cpu_before
        alone["server_cpu_ms_per_lifecycle"] = round(1000 * spent / max(alone["lifecycles"], 1), 2)
        print(f"without watchers: {alone['per_second']} lifecycles/s", flush=True)

        context = multiprocessing.get_context("spawn")
        ready_events, stop, out = [], context.Event(), context.Queue()
        processes = []
        per, extra = divmod(args.watchers, args.watcher_procs)
        share = [per + (i < extra) for i in range(args.watcher_procs)]
        for count in share:
            ready = context.Event()
            ready_events.append(ready)
            process = context.Process(target=_watcher_main, args=(target, flow_id, count, args.batch, ready, stop, out))
            process.start()
            processes.append(process)
        for ready in ready_events:
            ready.wait(120)
        cpu_before = server_cpu()
        watched = asyncio.run(_load(target, flow_id, args.clients, args.duration))
        watched["server_cpu_ms_per_lifecycle"] = round(
            1000 * (server_cpu() - cpu_before) / max(watched["lifecycles"], 1), 2
        )
        stop.set()
        results = [out.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(30)
        latencies = [value for result in results for value in result["latencies"]]
        report = {
            "db": database.kind,
            "machine": machine_info(),
            "clients": args.clients,
            "watchers": args.watchers,
            "batch": args.batch,
            "duration_s": args.duration,
            "lifecycles_per_s_without_watchers": alone["per_second"],
            "lifecycles_per_s_with_watchers": watched["per_second"],
            "throughput_change_pct": round(100 * (watched["per_second"] / alone["per_second"] - 1), 1),
            # The server's own CPU per lifecycle (the whole run window, whatever else the
            # machine does): what the watchers cost the server, robust to a busy machine.
            "server_cpu_ms_per_lifecycle_without_watchers": alone["server_cpu_ms_per_lifecycle"],
            "server_cpu_ms_per_lifecycle_with_watchers": watched["server_cpu_ms_per_lifecycle"],
            "events_received": sum(result["received"] for result in results),
            # Messages carrying events, over all watchers (a batch is one): what the server
            # pays per message (a gRPC write) is the watchers' main cost.
            "event_messages_received": sum(result["messages"] for result in results),
            # The watcher processes' CPU while the load ran: on a small machine they compete
            # with the server and the load generator for the same cores.
            "watcher_cpu_s": round(sum(result["cpu_s"] for result in results), 2),
            "server_extra_cpu_us_per_event_message": round(
                1000
                * (watched["server_cpu_ms_per_lifecycle"] - alone["server_cpu_ms_per_lifecycle"])
                * watched["lifecycles"]
                / max(sum(result["messages"] for result in results), 1),
                4,
            ),
            "delivery_latency_ms": latency_summary(latencies),
            "errors": {"without": alone["errors"], "with": watched["errors"]},
        }
        print(json.dumps(report, indent=2))
        if args.json_out:
            args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if server is not None:
            server.stop()
        database.drop()


if __name__ == "__main__":
    main()
