"""pgbouncer (Debian's package) in transaction pooling mode in front of a PostgreSQL, for
tests that prove the server works behind it. Its own configuration in a temporary
directory, a free loopback port, trust authentication (the user still has to be in the
auth file). Fewer server connections than the server's pool has clients, and servers
handed out round robin, so consecutive transactions of one client connection really do
land on different PostgreSQL connections. pgbouncer refuses to run as root, so as root
it drops to the `postgres` user (its -u option). `stop()` (also registered with atexit)
ends it whatever happened and deletes its files."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.servers import HOST, free_port

# PostgreSQL connections per (database, user) pair; the test servers' pools have 30.
SERVER_CONNECTIONS = 4


def pgbouncer_binary() -> str:
    """The pgbouncer executable. Missing is an error, never a skip: scripts/test installs
    the Debian package when it is absent."""
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        raise RuntimeError(
            "the pgbouncer tests need pgbouncer (Debian: apt-get install -y pgbouncer; scripts/test installs it)"
        )
    return found


class PgBouncer:
    def __init__(self, upstream_host: str, upstream_port: int, user: str = "postgres") -> None:
        self.binary = pgbouncer_binary()
        self.root = Path(tempfile.mkdtemp(prefix="flowrun-pgbouncer-"))
        self.port = free_port()
        self.user = user
        self.log = self.root / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None
        (self.root / "users.txt").write_text(f'"{user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={upstream_host} port={upstream_port}",
                    "[pgbouncer]",
                    f"listen_addr = {HOST}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.root / 'users.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {SERVER_CONNECTIONS}",
                    "max_client_conn = 1000",
                    "server_round_robin = 1",
                    f"logfile = {self.log}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        self._as_postgres = ["-u", "postgres"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            for path in self.root.iterdir():
                shutil.chown(path, "postgres")
        atexit.register(self.stop)

    def start(self, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, *self._as_postgres, str(self.root / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(
                    f"pgbouncer exited with {self.process.returncode}: {stderr[-2000:]}{self.log_tail()}"
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"pgbouncer did not listen on {HOST}:{self.port} within {timeout} s{self.log_tail()}"
                )
            time.sleep(0.05)

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}@{HOST}:{self.port}/{database}"

    def log_tail(self, size: int = 3000) -> str:
        if not self.log.exists():
            return ""
        return "\n--- pgbouncer log (tail) ---\n" + self.log.read_bytes()[-size:].decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM (pgbouncer's immediate shutdown), SIGKILL if it lingers; then its files go.
        Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)
