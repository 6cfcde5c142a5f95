"""What metrics cost: bench/lifecycle.py with metrics off and on, in alternating pairs.

Each pair runs the lifecycle benchmark twice on a fresh database, once without and once
with FLOWRUN_METRICS_PORT (and a scrape every --scrape-every seconds, as Prometheus
would); the order flips from pair to pair so that drifting load on a shared machine
hits both sides alike. Prints each pair and the mean and median of the on/off ratios of
lifecycles/s and of server CPU per transition.

    python bench/metrics_overhead.py --pairs 8 --clients 32 --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape_until(stop: threading.Event, port: int, every: float) -> None:
    while not stop.wait(every):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            pass  # not serving yet, or already stopped


def run_once(args: argparse.Namespace, metrics: bool, out: Path) -> dict:
    env = dict(os.environ)
    env.pop("FLOWRUN_METRICS_PORT", None)
    stop = threading.Event()
    scraper = None
    if metrics:
        port = free_port()
        env["FLOWRUN_METRICS_PORT"] = str(port)
        scraper = threading.Thread(target=scrape_until, args=(stop, port, args.scrape_every), daemon=True)
        scraper.start()
    command = [sys.executable, str(HERE / "lifecycle.py"), "--db", args.db, "--clients", str(args.clients)]
    command += ["--duration", str(args.duration), "--channels", str(args.channels), "--json-out", str(out)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    try:
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        stop.set()
        if scraper is not None:
            scraper.join()
    return json.loads(out.read_text())["results"][0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--db", default="postgres")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--workers", type=int, help="passed on to lifecycle.py (default: the server's)")
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument("--json-out", help="write every pair's results here")
    args = parser.parse_args(argv)

    throughput, cpu, pairs = [], [], []
    with tempfile.TemporaryDirectory(prefix="flowrun-metrics-bench-") as scratch:
        for index in range(args.pairs):
            order = (False, True) if index % 2 == 0 else (True, False)
            results = {on: run_once(args, on, Path(scratch) / f"{index}-{on}.json") for on in order}
            off, on = results[False], results[True]
            ratio = on["lifecycles_per_s"] / off["lifecycles_per_s"]
            cpu_ratio = on["server_cpu_s_per_1000_transitions"] / off["server_cpu_s_per_1000_transitions"]
            throughput.append(ratio)
            cpu.append(cpu_ratio)
            pairs.append({"off": off, "on": on})
            print(
                f"pair {index + 1}: {off['lifecycles_per_s']:.1f} -> {on['lifecycles_per_s']:.1f} lifecycles/s "
                f"(x{ratio:.3f}); server CPU per 1,000 transitions {off['server_cpu_s_per_1000_transitions']:.2f} -> "
                f"{on['server_cpu_s_per_1000_transitions']:.2f} s (x{cpu_ratio:.3f}); other load "
                f"{off['other_cpu_cores']:.2f}/{on['other_cpu_cores']:.2f} cores",
                flush=True,
            )
    print(
        f"lifecycles/s on/off: mean {statistics.mean(throughput):.3f}, median {statistics.median(throughput):.3f}; "
        f"server CPU per transition on/off: mean {statistics.mean(cpu):.3f}, median {statistics.median(cpu):.3f} "
        f"({args.pairs} pairs)"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"config": vars(args), "pairs": pairs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
