"""Test fixtures: a real in-process grpc.aio server on a free port, once per storage
backend, called through the generated stubs the way users call it.

Every test that asks for a stub runs twice: on SQLite and on PostgreSQL. PostgreSQL is
not optional: if it cannot be reached the PostgreSQL half errors (never skips). Point
FLOWRUN_TEST_POSTGRES_URL at a server where the default does not fit."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy.engine import make_url

from flowrun.server import clock
from flowrun.server.app import App, build_app
from flowrun.server.config import Settings
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc
from tests.helpers.pgbouncer import PgBouncer
from tests.helpers.servers import PrivatePostgres

POSTGRES_ADMIN_URL = os.environ.get("FLOWRUN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgres")


async def create_postgres_database() -> tuple[str, str]:
    """A fresh database for this test session: (asyncpg admin URL, SQLAlchemy URL)."""
    name = f"flowrun_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for the test suite and is not reachable at {POSTGRES_ADMIN_URL}: {exc!r}. "
            "Start it (scripts/test does) or set FLOWRUN_TEST_POSTGRES_URL."
        ) from exc
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def drop_postgres_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


#: Database URLs that reach PostgreSQL through pgbouncer: their servers run with db_pgbouncer.
THROUGH_PGBOUNCER: set[str] = set()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs `database_url` runs on each of BACKENDS; a test marked
    `pgbouncer` also runs on PostgreSQL behind pgbouncer in transaction pooling mode
    (tests/helpers/pgbouncer.py: a process of its own, hence multiprocess)."""
    if "database_url" not in metafunc.fixturenames:
        return
    backends: list[object] = list(BACKENDS)
    if metafunc.definition.get_closest_marker("pgbouncer"):
        backends.append(pytest.param("pgbouncer", marks=pytest.mark.multiprocess))
    metafunc.parametrize("database_url", backends, indirect=True, scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `pytest -n 2 --dist loadgroup` (scripts/test): every multiprocess test in
    one group, so the tests that start server processes or clusters run one at a time
    beside the rest instead of two of them fighting over the two cores, and every other
    test with its module, so a module's fixtures (seeded databases) are built once.
    tryfirst: xdist reads the groups in its own hook of this name, which would otherwise
    run first and see none."""
    for item in items:
        group = "multiprocess" if item.get_closest_marker("multiprocess") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """Stops the run when the groups did not take effect (xdist marks a grouped test's id
    with `@group`): without them two workers run multiprocess tests at once and a session
    fixture such as `npm ci` twice, which fails in ways that look like flaky tests. Both a
    hook order and pytest 9.2 (pytest-xdist#1386) have silently dropped them before."""
    if node.config.getoption("dist") == "loadgroup":
        # xdist's own rule: a group suffix is an "@" after any parameter id's "]".
        ungrouped = [nodeid for nodeid in ids if nodeid.rfind("@") <= nodeid.rfind("]")]
        if ungrouped:
            example = ungrouped[0]
            pytest.exit(f"pytest-xdist groups did not take effect: {len(ungrouped)} tests have none, e.g. {example}", 3)


@pytest.fixture(scope="session")
async def database_url(request, tmp_path_factory) -> AsyncIterator[str]:
    if request.param == "pgbouncer":
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
        async with fresh_database("postgres", tmp_path_factory.mktemp("sqlite")) as direct:
            url = bouncer.url(str(make_url(direct).database))
            THROUGH_PGBOUNCER.add(url)
            yield url
        return
    async with fresh_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        yield url


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """pgbouncer in front of the test PostgreSQL, stopped at the end whatever happened."""
    upstream = make_url(POSTGRES_ADMIN_URL)
    bouncer = PgBouncer(upstream.host or "127.0.0.1", upstream.port or 5432, upstream.username or "postgres")
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()


@contextlib.asynccontextmanager
async def fresh_database(backend: str, directory: Path) -> AsyncIterator[str]:
    """A database of its own on `backend`: an SQLite file in `directory`, or a PostgreSQL
    database created now and dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'flowrun.db'}"
        return
    name, url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(name)


def settings_for(database_url: str, **overrides) -> Settings:
    """Test servers run no liveness sweeps unless a test asks (services=...): a sweep
    marking runs Late or crashing them would race the tests' own proposals."""
    values = {
        "host": "127.0.0.1",
        "port": 0,
        "shutdown_grace_seconds": 1,
        "services": "none",
        "db_pgbouncer": database_url in THROUGH_PGBOUNCER,
        **overrides,
    }
    return Settings(database_url=database_url, **values)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throw-away PostgreSQL cluster of the module's own (tests/helpers/servers.py), for tests
    that stop or restart the database: the shared server's connections are never hit."""
    postgres = PrivatePostgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.destroy()


@pytest.fixture
async def private_database(private_postgres: PrivatePostgres) -> AsyncIterator[str]:
    """A fresh database on the module's private cluster (started if a test left it
    stopped): its SQLAlchemy URL."""
    private_postgres.ensure_running()
    name = f"flowrun_private_{os.getpid()}"
    admin = await asyncpg.connect(private_postgres.url(), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield private_postgres.url(name, driver="postgresql+asyncpg")


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[App]:
    app = await build_app(settings_for(database_url))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


@pytest.fixture(scope="session")
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield channel


@pytest.fixture(scope="session")
def flows(channel) -> flow_service_pb2_grpc.FlowServiceStub:
    return flow_service_pb2_grpc.FlowServiceStub(channel)


@pytest.fixture(scope="session")
def runs(channel) -> flow_run_service_pb2_grpc.FlowRunServiceStub:
    return flow_run_service_pb2_grpc.FlowRunServiceStub(channel)


@pytest.fixture
def unique() -> str:
    """A short random suffix: tests share one database per backend, so names differ."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def move_clock(monkeypatch) -> Callable[[timedelta], None]:
    """Moves the server's clock (server/clock.py) forward, for tests that would otherwise
    sleep until a lease expires or a scheduled time comes. Only servers in this process
    see it (processes have clocks of their own); the test's end puts it back."""
    real_now = clock.now
    offset = timedelta()

    def move(by: timedelta) -> None:
        nonlocal offset
        offset += by

    monkeypatch.setattr(clock, "now", lambda: real_now() + offset)
    return move


@pytest.fixture
async def served(database_url):
    """Servers of the test's own: `await served(**settings)` starts one (watch heartbeats
    every 0.2 s unless the test says otherwise) and gives (app, flows stub, runs stub);
    all are stopped at the test's end."""

    apps = []

    async def serve(**overrides):
        app = await build_app(settings_for(database_url, **{"watch_heartbeat_seconds": 0.2, **overrides}))
        await app.start()
        apps.append(app)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=[("grpc.http2.bdp_probe", 0)])
        apps.append(channel)
        return (
            app,
            flow_service_pb2_grpc.FlowServiceStub(channel),
            flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
        )

    yield serve
    for item in reversed(apps):
        if isinstance(item, grpc.aio.Channel):
            await item.close()
        else:
            await item.stop(grace=0)
