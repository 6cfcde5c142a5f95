"""What tracing costs: lifecycles/s and server CPU with OpenTelemetry tracing on vs off,
in alternating pairs on the same machine in the same session (the machine is shared and
noisy, so each "on" run is compared with the "off" run beside it, and the order within a
pair alternates).

"On" exports every span (the default sampler, parentbased_always_on: the worst case;
--sample-ratio R samples R of the traces instead, as production would) over OTLP/gRPC
to a minimal collector this script runs on loopback, which only counts what it
receives; "off" sets no OTEL_* variable at all. Each run is one `bench/lifecycle.py`
invocation (its own server and scratch database).

    python bench/tracing_overhead.py --pairs 4 --clients 32 --duration 15
    python bench/tracing_overhead.py --pairs 4 --clients 32 --duration 15 --sample-ratio 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

HERE = Path(__file__).resolve().parent


class CountingCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps nothing but a count of spans."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request, context):
        received = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.spans += received
        return trace_service_pb2.ExportTraceServiceResponse()


def run_once(args: argparse.Namespace, tracing: bool, endpoint: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    if tracing:
        env |= {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
        if args.sample_ratio is not None:
            env |= {
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.sample_ratio),
            }
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            str(HERE / "lifecycle.py"),
            "--db",
            "postgres",
            "--clients",
            str(args.clients),
            "--duration",
            str(args.duration),
            "--channels",
            str(args.channels),
            "--json-out",
            out.name,
        ]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        result = json.loads(Path(out.name).read_text())["results"][0]
    return {
        "tracing": tracing,
        "lifecycles_per_s": result["lifecycles_per_s"],
        "server_cpu_s_per_1000_transitions": result["server_cpu_s_per_1000_transitions"],
        "set_state_p50_ms": result["latency_ms"]["SetFlowRunState"]["p50"],
        "errors": result["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--sample-ratio", type=float, help="trace this fraction of calls (default: all)")
    parser.add_argument("--json-out", help="where to write the runs and the summary")
    args = parser.parse_args()

    collector = CountingCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    runs, ratios, cpu_ratios = [], [], []
    try:
        for pair in range(args.pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)
            results = {}
            for tracing in order:
                before = collector.spans
                outcome = run_once(args, tracing, endpoint)
                outcome["spans_exported"] = collector.spans - before
                results[tracing] = outcome
                runs.append(outcome)
                print(json.dumps(outcome), flush=True)
            ratio = results[True]["lifecycles_per_s"] / results[False]["lifecycles_per_s"]
            per_transition = "server_cpu_s_per_1000_transitions"
            cpu = results[True][per_transition] / results[False][per_transition]
            ratios.append(ratio)
            cpu_ratios.append(cpu)
            print(f"pair {pair + 1}: throughput on/off {ratio:.3f}, server CPU per transition on/off {cpu:.3f}")
    finally:
        server.stop(0)
    summary = {
        "clients": args.clients,
        "duration_s": args.duration,
        "pairs": args.pairs,
        "sample_ratio": args.sample_ratio,
        "throughput_ratio_mean": round(statistics.mean(ratios), 3),
        "throughput_ratio_median": round(statistics.median(ratios), 3),
        "cpu_per_transition_ratio_mean": round(statistics.mean(cpu_ratios), 3),
        "cpu_per_transition_ratio_median": round(statistics.median(cpu_ratios), 3),
    }
    print(json.dumps(summary, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
