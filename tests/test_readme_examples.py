"""The README's Python examples run as written: every ```python block of its "Python client
and command line" section (subsections included) is run as a script, in a process of its
own, against a live server named by FLOWRUN_TARGET (the clients' default); and every
`flowrun` command of its ```sh blocks parses.

A block that uses the TLS files (ca.pem, client.pem, client-key.pem) runs in a folder
holding them, against a server that requires client certificates; every other block
against a plaintext one. Both are SQLite servers of this module. FLOWRUN_README_FILE
points the test at another file (to check a draft before it goes into README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowrun.server.app import App, build_app
from tests.conftest import settings_for
from tests.helpers.certs import write_tls_files

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Python client and command line"
TLS_FILES = ("ca.pem", "client.pem", "client-key.pem")


def readme() -> Path:
    return Path(os.environ.get("FLOWRUN_README_FILE") or REPO / "README.md")


def section_blocks(text: str, language: str = "python") -> list[tuple[int, str]]:
    """(line number, code) of each ```LANGUAGE block between the section's heading and the
    next `## ` heading."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks = []
    pattern = rf"^```{language}[^\n]*\n(.*?)^```"
    for match in re.finditer(pattern, "\n".join(lines[start:end]) + "\n", re.S | re.M):
        line = start + "\n".join(lines[start:end])[: match.start()].count("\n") + 2
        blocks.append((line, match.group(1)))
    return blocks


BLOCKS = section_blocks(readme().read_text(encoding="utf-8"))


def test_the_section_has_python_examples():
    assert len(BLOCKS) >= 2, f"no ```python blocks under {SECTION!r} in {readme()}"
    assert any("SyncClient" in code for _, code in BLOCKS) and any("async with" in code for _, code in BLOCKS)


@contextlib.asynccontextmanager
async def serving(tmp: Path, **tls: Path) -> AsyncIterator[App]:
    app = await build_app(settings_for(f"sqlite+aiosqlite:///{tmp / 'flowrun.db'}", **tls))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


@pytest.fixture(scope="module")
async def servers(tmp_path_factory) -> AsyncIterator[dict[str, object]]:
    plain_dir = tmp_path_factory.mktemp("readme-plain")
    tls_dir = tmp_path_factory.mktemp("readme-mtls")
    files = write_tls_files(tls_dir / "certs")
    workdir = tls_dir / "work"
    workdir.mkdir()
    for name, source in zip(TLS_FILES, (files.ca, files.client_cert, files.client_key), strict=True):
        shutil.copy(source, workdir / name)
    mutual = {"tls_cert_file": files.server_cert, "tls_key_file": files.server_key, "tls_client_ca_file": files.ca}
    async with serving(plain_dir) as plain, serving(tls_dir, **mutual) as secured:
        yield {
            "plain": (f"127.0.0.1:{plain.port}", plain_dir),
            "tls": (f"localhost:{secured.port}", workdir),  # the test certificate names localhost
        }


SAMPLE_ID = "5f0c6a0e-3c1e-4f3e-9a53-2b8f6c1d9e47"


def command_lines(blocks: list[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    """The `flowrun ...` commands of shell blocks as argument lists: continuation lines
    joined, comments and leading VAR=value assignments dropped, $VARIABLES made ids."""
    commands = []
    for first, code in blocks:
        joined = code.replace("\\\n", " ")
        for offset, text in enumerate(joined.splitlines()):
            words = shlex.split(text, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words.pop(0)
            if words[:1] == ["flowrun"]:
                # Shell variables there stand for ids (a run's, a transition's).
                commands.append((first + offset, [SAMPLE_ID if word.startswith("$") else word for word in words[1:]]))
    return commands


COMMANDS = command_lines(section_blocks(readme().read_text(encoding="utf-8"), "sh"))


def test_the_command_lines_parse(monkeypatch):
    """Every `flowrun` command shown parses with today's options (nothing runs)."""
    from flowrun.client.cli_parser import build

    assert len(COMMANDS) >= 10, COMMANDS
    for line, arguments in COMMANDS:
        try:
            build().parse_args(arguments)
        except SystemExit as exit_:
            raise AssertionError(f"README line {line}: flowrun {shlex.join(arguments)}") from exit_


@pytest.mark.slow  # a Python process per block
@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README-line-{line}" for line, _ in BLOCKS])
async def test_example_runs_as_written(servers, line, code, tmp_path):
    target, cwd = servers["tls" if any(name in code for name in TLS_FILES) else "plain"]
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FLOWRUN_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=cwd,
        env={**environment, "FLOWRUN_TARGET": target},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, (
        f"README line {line}:\n{code}\n--- stdout\n{out.decode()}\n--- stderr\n{err.decode()}"
    )
    assert b"Traceback" not in err, err.decode()
