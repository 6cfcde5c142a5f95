"""Real `python -m flowrun.server` processes for tests that need more than one server: each
binds a free loopback port (FLOWRUN_PORT=0) and announces it on stdout. Callers stop
every handle in a `finally`, even when the test fails."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
SERVING_LINE = re.compile(r"flowrun serving on (?P<host>\S+):(?P<port>\d+)")
HOST = "127.0.0.1"


class ServerProcess:
    """One server process. `port` is known once `wait_until_serving()` returned."""

    def __init__(
        self,
        database_url: str,
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        command: list[str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.database_url = database_url
        self.port: int | None = None
        self.log_path = log_path
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        env = {
            **os.environ,
            "FLOWRUN_DATABASE_URL": database_url,
            "FLOWRUN_HOST": HOST,
            "FLOWRUN_PORT": "0",
            "FLOWRUN_SHUTDOWN_GRACE_SECONDS": "1",
            "FLOWRUN_LOG_LEVEL": "WARNING",
            "FLOWRUN_WORKERS": "1",  # one process per handle unless the test asks (args: --workers N)
            "FLOWRUN_SERVICES": "none",  # no liveness sweeps racing the test unless it asks
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "flowrun.server"]), *(args or [])],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        # Drain stdout for the life of the process, so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._pump, name=f"server-{self.process.pid}-stdout", daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)
        self.process.stdout.close()

    @property
    def address(self) -> str:
        assert self.port is not None, "the server has not announced its port yet"
        return f"{HOST}:{self.port}"

    def wait_until_serving(self, timeout: float = 30.0) -> int:
        """Blocks until the process prints its "serving" line; returns the port."""
        deadline = time.monotonic() + timeout
        while self.port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"server pid {self.process.pid} did not announce its port within {timeout} s{self.log_tail()}"
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"server pid {self.process.pid} exited with {self.process.wait()} before serving{self.log_tail()}"
                )
            match = SERVING_LINE.search(line)
            if match:
                self.port = int(match["port"])
        return self.port

    def log_tail(self, size: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n--- server log (tail) ---\n" + self.log_path.read_bytes()[-size:].decode(errors="replace")

    def internal_errors(self) -> list[str]:
        """One line per INTERNAL the server logged: its error id and the exception that
        caused it (the last line of the traceback), for a failing test to show."""
        if self.log_path is None or not self.log_path.exists():
            return []
        found, current = [], None
        for line in self.log_path.read_text(errors="replace").splitlines():
            if " internal error " in line:
                current = line.split(" internal error ", 1)[1]
            elif (
                current is not None and line and not line.startswith((" ", "Traceback", "The above", "During handling"))
            ):
                found.append(f"{current}: {line}")
                current = None
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`. Idempotent."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
        finally:
            if self._log is not subprocess.DEVNULL:
                self._log.close()


def start_server(database_url: str, *, log_path: Path | None = None, timeout: float = 30.0) -> ServerProcess:
    """Starts a server and returns once it announced its port (stopping it on failure)."""
    server = ServerProcess(database_url, log_path=log_path)
    try:
        server.wait_until_serving(timeout)
    except BaseException:
        server.stop()
        raise
    return server


async def wait_for_health(address: str, timeout: float = 30.0) -> None:
    """Polls grpc.health.v1 until the server reports SERVING for the whole server ("")."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                last = exc.code()
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{address} is not SERVING after {timeout} s (last answer: {last})")


@contextlib.asynccontextmanager
async def running_servers(
    database_url: str, count: int, log_dir: Path, start_timeout: float = 30.0, env: dict[str, str] | None = None
):
    """Starts `count` servers on one database (concurrently, so they also migrate
    concurrently), waits until all are SERVING, yields their addresses and stops them all
    on exit, whatever happened."""
    with contextlib.ExitStack() as running:
        servers = []
        for index in range(count):
            server = ServerProcess(database_url, log_path=log_dir / f"server-{index}.log", env=env)
            running.callback(server.stop)
            servers.append(server)
        deadline = time.monotonic() + start_timeout
        for server in servers:
            await asyncio.to_thread(server.wait_until_serving, max(deadline - time.monotonic(), 0.1))
        remaining = max(deadline - time.monotonic(), 1.0)
        await asyncio.gather(*(wait_for_health(server.address, remaining) for server in servers))
        yield [server.address for server in servers]


# --- a PostgreSQL of one's own ----------------------------------------------------------


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl live: `pg_config --bindir` (Debian keeps them off PATH)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        bindir = Path(
            subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        )
        if (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("the fault tests need PostgreSQL's initdb and pg_ctl (pg_config --bindir, or on PATH)")
    return Path(initdb).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb into a temporary directory, a free loopback
    port, TCP only, trust auth, fsync off) that fault tests stop and restart at will
    without disturbing the shared server the rest of the suite and its session-wide
    connection pools use. initdb refuses to run as root, so as root every PostgreSQL
    command runs as the `postgres` user. `destroy()` (also registered with atexit) stops
    it and deletes its files, whatever state it is in."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="flowrun-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgresql.log"
        self.port = free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        atexit.register(self.destroy)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as_postgres, str(self.bindir / tool), *args], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories='' -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", *args)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """mode "fast" ends every session (clients see admin shutdown); "immediate" is a crash."""
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def ensure_running(self) -> None:
        if not self.is_running():
            self.start()

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://postgres@{HOST}:{self.port}/{database}"

    def destroy(self) -> None:
        if self.data.exists() and self.is_running():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
