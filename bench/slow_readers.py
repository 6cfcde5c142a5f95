"""Memory a flowrun server holds for readers that stop reading.

A raw HTTP/2 client (hand-built frames: no gRPC client, whose transport always reads)
sends ListFlowRuns for a page of runs with large parameters on K connections, acks the
server's SETTINGS, and then never reads again. Each response waits in the server. The
script reports the server process's RSS before and with the K stalled readers, per
reader, and checks the server still answers a normal call.

The server runs in a subprocess on a throwaway SQLite database; `--option NAME=VALUE`
adds gRPC server options on top of server_options() (to compare candidates), and
`--max-message-bytes` sets FLOWRUN_MAX_MESSAGE_BYTES.

    .venv/bin/python bench/slow_readers.py --readers 20
    .venv/bin/python bench/slow_readers.py --readers 20 --option grpc.max_concurrent_streams=4

Bounded: K connections, one call each, to 127.0.0.1 only; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from flowrun.v1 import filters_pb2  # noqa: E402
from flowrun.v1 import flow_run_service_pb2 as runs_pb  # noqa: E402

_SERVE = """
import asyncio, json, sys
import flowrun.server.app as app_module
from flowrun.server.config import Settings
extra = [tuple(pair) for pair in json.loads(sys.argv[1])]
base = app_module.server_options
app_module.server_options = lambda settings, **kw: base(settings, **kw) + extra
async def main():
    app = await app_module.build_app(Settings())
    await app.start()
    print(app.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# -- a minimal HTTP/2 client: enough frames to send one gRPC request ----------------------


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:
    # HPACK literal header field without indexing, new name, no Huffman (lengths < 127).
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def stalled_call(port: int, path: str, message: bytes, streams: int = 1) -> socket.socket:
    """Send `streams` gRPC calls on one connection, ack the server's SETTINGS, and return
    the socket unread."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader's small buffer
    headers = b"".join(
        _literal(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    body = b"\x00" + struct.pack(">I", len(message)) + message
    sock.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + _frame(0x4, 0, 0, b"")  # SETTINGS: defaults (65,535-byte stream window)
        + b"".join(
            _frame(0x1, 0x4, stream, headers)  # HEADERS, END_HEADERS
            + _frame(0x0, 0x1, stream, body)  # DATA, END_STREAM
            for stream in range(1, 2 * streams, 2)
        )
    )
    # Read until the server's SETTINGS arrives, ack it, then stop reading for good.
    sock.settimeout(5)
    buffer = b""
    while True:
        buffer += sock.recv(4096)
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            kind, flags = buffer[3], buffer[4]
            buffer = buffer[9 + length :]
            if kind == 0x4 and not flags & 0x1:
                sock.sendall(_frame(0x4, 0x1, 0, b""))
                return sock


async def seed(port: int, runs: int, parameter_bytes: int) -> str:
    from flowrun.client import FlowrunClient

    async with FlowrunClient(f"127.0.0.1:{port}") as client:
        flow, _ = await client.create_flow(f"slow-readers-{os.getpid()}")
        blob = "x" * parameter_bytes
        for index in range(runs):
            await client.create_flow_run(flow.id, parameters={"blob": blob, "index": index})
        return flow.id


async def answers(port: int) -> bool:
    from flowrun.client import FlowrunClient

    async with FlowrunClient(f"127.0.0.1:{port}", timeout=10) as client:
        await client.create_flow("still-serving")
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--streams", type=int, default=1, help="calls per stalled connection")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--parameter-bytes", type=int, default=200_000)
    parser.add_argument("--max-message-bytes", type=int, default=None)
    parser.add_argument("--option", action="append", default=[], help="NAME=INT gRPC server option")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before reading RSS")
    args = parser.parse_args()
    extra = [(name, int(value)) for name, value in (option.split("=", 1) for option in args.option)]

    with tempfile.TemporaryDirectory() as scratch:
        # A fixed mmap threshold makes glibc hand large freed buffers back at once, so RSS
        # tracks what is still referenced, not the peak of building the responses.
        env = dict(
            os.environ,
            FLOWRUN_DATABASE_URL=f"sqlite+aiosqlite:///{scratch}/slow.db",
            FLOWRUN_PORT="0",
            MALLOC_MMAP_THRESHOLD_="65536",
        )
        if args.max_message_bytes:
            env["FLOWRUN_MAX_MESSAGE_BYTES"] = str(args.max_message_bytes)
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(extra)], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        sockets: list[socket.socket] = []
        try:
            assert server.stdout is not None  # stdout=PIPE
            port = int(server.stdout.readline())
            flow_id = asyncio.run(seed(port, args.runs, args.parameter_bytes))
            request = runs_pb.ListFlowRunsRequest(
                flow_filter=filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=[flow_id]))
            ).SerializeToString()
            path = "/flowrun.v1.FlowRunService/ListFlowRuns"
            # Warm up: one full read, so caches and pools exist before the baseline.
            sockets.append(stalled_call(port, path, request))
            sockets.pop().close()
            time.sleep(args.settle)
            before = rss_bytes(server.pid)
            for _ in range(args.readers):
                sockets.append(stalled_call(port, path, request, args.streams))
            time.sleep(args.settle)
            during = rss_bytes(server.pid)
            alive = asyncio.run(answers(port))
            for sock in sockets:
                sock.close()
            sockets.clear()
            time.sleep(args.settle)
            after = rss_bytes(server.pid)
        finally:
            for sock in sockets:
                sock.close()
            server.terminate()
            server.wait(10)
    mib = 1024 * 1024
    print(
        json.dumps(
            {
                "options": extra,
                "max_message_bytes": args.max_message_bytes,
                "readers": args.readers,
                "streams_per_reader": args.streams,
                "page_bytes_approx": min(args.runs, 200) * args.parameter_bytes,
                "rss_before_mib": round(before / mib, 1),
                "rss_with_stalled_mib": round(during / mib, 1),
                "per_stalled_reader_mib": round((during - before) / args.readers / mib, 2),
                "rss_after_close_mib": round(after / mib, 1),
                "still_serving": alive,
            }
        )
    )


if __name__ == "__main__":
    main()
