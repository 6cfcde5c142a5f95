"""The processes of a `python -m flowrun.server --workers N` supervisor, read from /proc: which
children listen on its port, how many connections each holds, and whether a pid is
still alive. Which worker answers a call is not visible in the API, and should not be."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tests.helpers.servers import ServerProcess

TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # Field 4 of stat is the parent pid; the command name (field 2) may hold spaces.
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def tcp_sockets_on_port(port: int) -> dict[int, str]:
    """inode -> TCP state of every socket whose local port is `port` (IPv4 and IPv6)."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    sockets[int(fields[9])] = fields[3]
    return sockets


def socket_states(pid: int, port: int) -> list[str]:
    """The TCP states of the sockets on `port` that process `pid` holds open."""
    on_port = tcp_sockets_on_port(port)
    states = []
    with contextlib.suppress(FileNotFoundError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inode = int(target[len("socket:[") : -1])
                    if inode in on_port:
                        states.append(on_port[inode])
    return states


def worker_pids(server: ServerProcess) -> list[int]:
    """The announced process's children that listen on its port."""
    assert server.port is not None
    return sorted(pid for pid in children(server.process.pid) if TCP_LISTEN in socket_states(pid, server.port))


def connections_per_worker(server: ServerProcess) -> dict[int, int]:
    assert server.port is not None
    return {pid: socket_states(pid, server.port).count(TCP_ESTABLISHED) for pid in worker_pids(server)}


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
