"""Several `python -m flowrun.server` processes share one database while clients race random
proposals through all of them: the run lock lives in the database, so every guarantee
of test_concurrency.py must hold across processes too.

Each test owns its processes and its database: the processes are stopped (SIGTERM, then
SIGKILL) and the PostgreSQL database dropped in `finally`, whatever happens."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import create_postgres_database, drop_postgres_database
from tests.helpers.races import random_race
from tests.helpers.servers import running_servers

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # server processes, seconds each

RUNS = 20
CLIENTS = 32
CALLS = 600
RACE_TIME_LIMIT_SECONDS = 40
START_TIMEOUT_SECONDS = 30


async def race_through_servers(database_url: str, count: int, log_dir: Path) -> None:
    async with running_servers(database_url, count, log_dir, START_TIMEOUT_SECONDS) as addresses:
        await random_race(
            addresses,
            runs=RUNS,
            clients=CLIENTS,
            calls=CALLS,
            seed=random.randrange(1_000_000),
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
