"""Several `python -m server` processes share one database while clients race random
proposals through all of them: the run lock lives in the database, so every guarantee
of test_concurrency.py must hold across processes too.

Each test owns its processes and its database: the processes are stopped (SIGTERM, then
SIGKILL) and the PostgreSQL database dropped in `finally`, whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

from tests.conftest import create_postgres_database, drop_postgres_database
from tests.servers import ServerProcess, wait_for_health
from tests.test_concurrency import random_race

RUNS = 20
CLIENTS = 32
CALLS = 600
RACE_TIME_LIMIT_SECONDS = 40
START_TIMEOUT_SECONDS = 30


async def race_through_servers(database_url: str, count: int, log_dir: Path) -> None:
    with contextlib.ExitStack() as running:
        servers = []
        for index in range(count):  # launch all first: they start (and migrate) concurrently
            server = ServerProcess(database_url, log_path=log_dir / f"server-{index}.log")
            running.callback(server.stop)
            servers.append(server)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for server in servers:
            await asyncio.to_thread(server.wait_until_serving, max(deadline - time.monotonic(), 0.1))
        remaining = max(deadline - time.monotonic(), 1.0)
        await asyncio.gather(*(wait_for_health(server.address, remaining) for server in servers))
        seed = random.randrange(1_000_000)
        await random_race(
            [server.address for server in servers],
            runs=RUNS,
            clients=CLIENTS,
            calls=CALLS,
            seed=seed,
            time_limit=RACE_TIME_LIMIT_SECONDS,
        )


async def test_three_servers_on_one_postgres_database(tmp_path):
    name, url = await create_postgres_database()
    try:
        await race_through_servers(url, 3, tmp_path)
    finally:
        await drop_postgres_database(name)


async def test_one_server_on_a_sqlite_file(tmp_path):
    await race_through_servers(f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}", 1, tmp_path)
