"""Shared plumbing for the benchmarks: the machine and commit a result was measured on,
CPU accounting from /proc, a flowrun server run as a subprocess, throwaway databases,
percentiles and tables. Nothing here measures anything by itself."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")

if str(REPO) not in sys.path:  # `python bench/x.py` from anywhere imports the server package
    sys.path.insert(0, str(REPO))


# --- where and on what ---------------------------------------------------------------


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def git_info() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    status = git("status", "--porcelain", "--untracked-files=no", "--", "server", "protos")
    return {"commit": git("rev-parse", "HEAD"), "server_tree_dirty": bool(status)}


# --- CPU accounting from /proc -----------------------------------------------------------


@dataclass
class ProcSample:
    comm: str
    pgrp: int
    ticks: int  # utime + stime of the process itself
    child_ticks: int  # cutime + cstime: children it has reaped
    title: str = ""  # PostgreSQL processes: "postgres: user database host(port) state"


def read_proc(pid: int) -> ProcSample | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime/stime/cutime/cstime are fields 14-17.
    sample = ProcSample(comm, int(rest[2]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
    if comm == "postgres":
        try:
            sample.title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            pass
    return sample


def all_procs() -> dict[int, ProcSample]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            sample = read_proc(int(entry))
            if sample is not None:
                out[int(entry)] = sample
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


@dataclass
class CpuSnapshot:
    at: float
    procs: dict[int, ProcSample]
    busy: int
    total: int

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy, total = machine_ticks()
        return cls(time.monotonic(), all_procs(), busy, total)


def cpu_delta(
    start: CpuSnapshot,
    end: CpuSnapshot,
    *,
    server_pgid: int | None,
    client_pids: set[int],
    database: str | None = None,
) -> dict:
    """CPU seconds spent between two snapshots, attributed to the server (its whole
    process group, including children it reaped), the load generator processes,
    PostgreSQL (every process named postgres, all databases; and the backends
    connected to `database` alone) and everything else. A process that both started
    and ended between the snapshots is seen by nobody and lands in `unattributed`
    (short-lived PostgreSQL backends, for example)."""

    def ticks_of(pids: set[int]) -> int:
        total = 0
        for pid in pids:
            after = end.procs.get(pid)
            if after is None:
                continue  # ended inside the window: its last ticks are lost
            before = start.procs.get(pid)
            now = after.ticks + after.child_ticks
            total += now - (before.ticks + before.child_ticks if before else 0)
        return total

    procs = set(start.procs) | set(end.procs)

    def matching(predicate) -> set[int]:
        return {pid for pid in procs if predicate(end.procs.get(pid) or start.procs[pid])}

    server = matching(lambda p: p.pgrp == server_pgid) if server_pgid else set()
    postgres = matching(lambda p: p.comm == "postgres")
    backends = matching(lambda p: p.comm == "postgres" and f" {database} " in p.title) if database else set()
    server_s = ticks_of(server) / CLK_TCK
    client_s = ticks_of(client_pids) / CLK_TCK
    postgres_s = ticks_of(postgres) / CLK_TCK
    busy_s = (end.busy - start.busy) / CLK_TCK
    total_s = (end.total - start.total) / CLK_TCK
    return {
        "server_cpu_seconds": round(server_s, 3) if server_pgid else None,
        "client_cpu_seconds": round(client_s, 3),
        "postgres_cpu_seconds": round(postgres_s, 3),
        "postgres_backends_cpu_seconds": round(ticks_of(backends) / CLK_TCK, 3) if database else None,
        "machine_busy_cpu_seconds": round(busy_s, 3),
        "machine_capacity_cpu_seconds": round(total_s, 3),
        "unattributed_cpu_seconds": round(busy_s - server_s - client_s - postgres_s, 3),
    }


# --- databases ------------------------------------------------------------------------


def _admin_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


async def _admin_execute(url: str, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


@dataclass
class ScratchDatabase:
    """A database that exists for one benchmark: bench_<random> on PostgreSQL (dropped
    afterwards), a file in a temporary directory on SQLite; or a given URL, untouched."""

    kind: str  # "sqlite" | "postgres" | "url"
    url: str
    owned: bool
    _tmpdir: str | None = None

    @classmethod
    def create(cls, db: str, prefix: str = "bench", pg_url: str = DEFAULT_PG_URL) -> ScratchDatabase:
        if db == "sqlite":
            tmpdir = tempfile.mkdtemp(prefix=f"flowrun-{prefix}-")
            return cls("sqlite", f"sqlite+aiosqlite:///{tmpdir}/flowrun.db", True, tmpdir)
        if db == "postgres":
            from sqlalchemy.engine import make_url

            name = f"{prefix}_{secrets.token_hex(4)}"
            asyncio.run(_admin_execute(pg_url, f'CREATE DATABASE "{name}"'))
            url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
            return cls("postgres", url, True)
        kind = "sqlite" if db.startswith("sqlite") else "postgres"
        return cls(kind, db, False)

    @property
    def name(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).database or ""

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    @property
    def label(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def libpq_args(self) -> list[str]:
        """psql/pgbench connection arguments for this database."""
        from sqlalchemy.engine import make_url

        u = make_url(self.url)
        args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
        assert u.database, "a scratch database URL names its database"
        return [*args, u.database]

    def libpq_env(self) -> dict:
        from sqlalchemy.engine import make_url

        env = dict(os.environ)
        password = make_url(self.url).password
        if password:
            env["PGPASSWORD"] = str(password)
        return env

    def drop(self) -> None:
        if not self.owned:
            return
        if self.kind == "sqlite" and self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        elif self.kind == "postgres":
            from sqlalchemy.engine import make_url

            name = make_url(self.url).database
            asyncio.run(_admin_execute(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def migrate_database(url: str) -> None:
    """Creates the schema the way the server does on start."""
    from flowrun.server.config import Settings
    from flowrun.server.db.engine import create_engine
    from flowrun.server.db.migrate import migrate
    from flowrun.server.db.unit_of_work import Database

    database = Database(create_engine(Settings(database_url=url)))
    try:
        await migrate(database)
    finally:
        await database.dispose()


# --- the server as a subprocess ----------------------------------------------------------


def server_supports_workers() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "flowrun.server", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    return "--workers" in result.stdout


class ServerProcess:
    """`python -m flowrun.server` on a free port in its own session, so that its process group
    (the server and any worker processes it starts) can be measured and stopped."""

    def __init__(self, database_url: str, workers: int | None = None) -> None:
        self.database_url = database_url
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.log = tempfile.NamedTemporaryFile(prefix="flowrun-bench-server-", suffix=".log", delete=False)

    def start(self, timeout: float = 120.0) -> str:
        command = [sys.executable, "-m", "flowrun.server", "--host", "127.0.0.1", "--port", "0"]
        command += ["--database-url", self.database_url]
        if self.workers:
            command += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"flowrun serving on (\S+)", line)
            if match:
                self.address = match.group(1)
                return self.address
        self.stop()
        raise RuntimeError(f"server did not start; see {self.log.name}:\n{Path(self.log.name).read_text()[-3000:]}")

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # start_new_session: the server leads its own group

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.pgid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


# --- numbers and tables ---------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(seconds: list[float]) -> dict:
    values = sorted(seconds)
    if not values:
        return {"count": 0}
    ms = lambda v: round(v * 1000, 3)  # noqa: E731
    return {
        "count": len(values),
        "p50": ms(percentile(values, 50)),
        "p95": ms(percentile(values, 95)),
        "p99": ms(percentile(values, 99)),
        "max": ms(values[-1]),
        "mean": ms(sum(values) / len(values)),
    }


def table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(items: list[str]) -> str:
        return "  ".join(s.rjust(w) if i else s.ljust(w) for i, (s, w) in enumerate(zip(items, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def parse_clients(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError("--clients takes positive integers, comma separated")
    return values
