"""The `flowrun` and `flowrun-server` commands as processes: what only a real process shows
(a reader that closes the pipe early, gRPC core's own log lines on stderr, a taken port)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowrun.client import FlowrunClient, cli, cli_args

REPO = Path(__file__).resolve().parent.parent


def command_environment(**extra: str) -> dict[str, str]:
    # Neither the caller's FLOWRUN_* nor a GRPC_VERBOSITY chosen outside may leak in.
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLOWRUN_") and key not in ("GRPC_VERBOSITY", "GRPC_TRACE")
    }
    return {**environment, **extra}


def run_cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowrun.client.cli", *args],
        cwd=REPO,
        env=command_environment(**extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("", "no server address"),
        ("dns:///", "UNKNOWN"),  # gRPC core logs two error lines for this one unless silenced
        ("unix:", "UNAVAILABLE"),
    ],
)
def test_a_bad_target_is_one_line_without_grpc_core_logs(target, expected):
    result = run_cli("--target", target, "--no-retry", "--timeout", "5", "run", "ls")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    # An explicit GRPC_VERBOSITY is the user's to keep (core's lines then show, as asked).
    if target == "dns:///":
        loud = run_cli("--target", target, "--no-retry", "run", "ls", GRPC_VERBOSITY="ERROR")
        assert loud.returncode == 1 and loud.stderr.count("\n") > 1


@pytest.mark.slow
async def test_piping_into_head_ends_quietly(app, unique):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        flow, _ = await client.create_flow(f"pipe-{unique}")
        for _ in range(3):  # about 150 KB of JSON: more than a pipe holds
            await client.create_flow_run(flow.id, parameters={"blob": "x" * 50_000})
    command = [sys.executable, "-m", "flowrun.client.cli", "--target", f"127.0.0.1:{app.port}"]

    def like_head(output: str, read: int) -> tuple[int, bytes, str]:
        process = subprocess.Popen(
            [*command, "-o", output, "run", "ls", "--flow", f"pipe-{unique}", "--all"],
            cwd=REPO,
            env=command_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.read(read) if read else b""  # what `head -c N` reads before it exits
        process.stdout.close()
        stderr = process.stderr.read().decode()
        return process.wait(timeout=60), first, stderr

    # The reader is gone before the command writes (`| true`, or head done early): 141, silently.
    for output in ("json", "table"):
        code, _, stderr = await asyncio.to_thread(like_head, output, 0)
        assert (code, stderr) == (cli_args.EXIT_BROKEN_PIPE, ""), output
    # head -c 100: the kernel may take the whole write before head leaves (exit 0) or
    # refuse the rest of it (141); either way nothing on stderr, no traceback.
    code, first, stderr = await asyncio.to_thread(like_head, "json", 100)
    assert first.startswith(b"{") and code in (0, cli_args.EXIT_BROKEN_PIPE) and stderr == ""


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("output", ["table", "json"])
async def test_a_closed_stdout_exits_141_in_every_output(app, unique, monkeypatch, capsys, output):
    async with FlowrunClient(f"127.0.0.1:{app.port}") as client:
        await client.create_flow(f"closed-{unique}")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = await asyncio.to_thread(
        cli.main, ["--target", f"127.0.0.1:{app.port}", "-o", output, "flow", "ls", "--name", unique]
    )
    assert code == cli_args.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


@pytest.mark.multiprocess
def test_server_on_a_taken_port_says_so_in_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "flowrun.server", "--port", str(port)],
            cwd=REPO,
            env=command_environment(FLOWRUN_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == f"flowrun-server: error: cannot bind 127.0.0.1:{port}: Address already in use\n"
    assert not (tmp_path / "flowrun.db").exists()  # refused before migrating anything


class SilentServer:
    """A TCP port that accepts connections and never answers: a call to it hangs until
    its deadline, which leaves time to interrupt it."""

    def __enter__(self) -> str:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        return f"127.0.0.1:{self._socket.getsockname()[1]}"

    def __exit__(self, *exc_info: object) -> None:
        self._socket.close()


def interrupt_when_waiting(command: list[str], marker: str | None = None) -> subprocess.CompletedProcess[str]:
    """Start `command`, send it SIGINT once it is blocked in its call, and collect it."""
    process = subprocess.Popen(
        command, cwd=REPO, env=command_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if marker is not None:  # the script says when it is about to block
        assert process.stdout.readline().strip() == marker
    time.sleep(0.5)  # a real process in a real call: there is no clock to move
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 3, "the interrupt did not end the call at once"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_ctrl_c_ends_the_command_with_130_and_one_line():
    with SilentServer() as target:
        result = interrupt_when_waiting(
            [sys.executable, "-m", "flowrun.client.cli", "--target", target, "--timeout", "60", "run", "ls"]
        )
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "interrupted\n")


SYNC_SCRIPT = """
import sys
import time
from flowrun.client import SyncClient
client = SyncClient(sys.argv[1], timeout=60)
print("calling", flush=True)
try:
    client.count_flows()
except KeyboardInterrupt:
    client.close()  # the cancelled call has unwound: closing does not hang
    print("interrupted", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_cancels_a_sync_client_call():
    with SilentServer() as target:
        result = interrupt_when_waiting([sys.executable, "-c", SYNC_SCRIPT, target], marker="calling")
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "interrupted", "")
