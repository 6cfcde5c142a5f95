"""python -m tests.fuzz [--count N] [--backend sqlite|postgres ...] [--seed S]

Fuzzes every RPC of every flowrun service on each backend, prints a status-code
histogram per backend and what went wrong, and exits 1 if anything did (INTERNAL,
UNKNOWN, a hang, a crash, a traceback in the server log, ...: see harness.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.fuzz.harness import fuzz_backend

BACKENDS = ("sqlite", "postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[1])
    parser.add_argument("--count", type=int, default=10_000, help="fuzz requests per backend (default 10000)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="repeatable; default: both")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    args = parser.parse_args(argv)
    failed = False
    for backend in args.backend or BACKENDS:
        report = asyncio.run(fuzz_backend(backend, args.count, args.seed))
        print(report.render(), flush=True)
        failed |= not report.ok
    print("fuzz: FAILED" if failed else "fuzz: no INTERNAL, UNKNOWN, hang, crash or server traceback")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
