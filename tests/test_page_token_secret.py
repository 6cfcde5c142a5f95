"""The page-token signing key has no built-in default (server/shared_secrets.py).

FLOWRUN_PAGE_TOKEN_SECRET unset: every server on one database (replicas, workers) signs
with one random key kept in that database, a fresh database gets a key of its own, and a
token signed with the old public default ("flowrun-page-token") is refused. Set: that
secret signs, whatever the database holds. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from sqlalchemy import delete, func, select

from flowrun.server.app import App, build_app
from flowrun.server.db.engine import create_engine
from flowrun.server.db.migrate import migrate
from flowrun.server.db.tables import server_secret
from flowrun.server.db.unit_of_work import Database
from flowrun.server.shared_secrets import PAGE_TOKEN_SECRET, resolve_page_token_secret
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import flow_service_pb2_grpc
from tests.conftest import fresh_database, settings_for
from tests.helpers.rich_errors import expect_error
from tests.helpers.servers import running_servers

OLD_DEFAULT = "flowrun-page-token"
MAC_BYTES = 16


@pytest.fixture(autouse=True)
def no_configured_secret(monkeypatch) -> None:
    """The tests say which secret they configure; the developer's environment does not."""
    monkeypatch.delenv("FLOWRUN_PAGE_TOKEN_SECRET", raising=False)


@pytest.fixture
async def fresh_url(backend: str, tmp_path) -> AsyncIterator[str]:
    """A database of its own, on the same backend as `database_url`."""
    async with fresh_database(backend, tmp_path) as url:
        yield url


@asynccontextmanager
async def serving(url: str, **overrides) -> AsyncIterator[tuple[App, flow_service_pb2_grpc.FlowServiceStub]]:
    app = await build_app(settings_for(url, **overrides))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, flow_service_pb2_grpc.FlowServiceStub(channel)
    finally:
        await app.stop(grace=0)


async def first_page_token(flows: flow_service_pb2_grpc.FlowServiceStub) -> str:
    """The token to the second page of all flows, one flow a page (the database has two or
    more). No filter: the token's query is the same on every database, so only its
    signature can make another server refuse it."""
    for _ in range(2):
        await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"key-{uuid.uuid4().hex[:10]}"))
    token = (await flows.ListFlows(flows_pb.ListFlowsRequest(page_size=1))).next_page_token
    assert token
    return token


async def second_page(flows: flow_service_pb2_grpc.FlowServiceStub, token: str) -> flows_pb.ListFlowsResponse:
    return await flows.ListFlows(flows_pb.ListFlowsRequest(page_size=1, page_token=token))


async def assert_refused(flows: flow_service_pb2_grpc.FlowServiceStub, token: str) -> None:
    error = await expect_error(second_page(flows, token))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), error
    assert "not issued by this server" in error.message, error  # the signature, nothing else


def resign(token: str, secret: str) -> str:
    """`token`'s payload signed with `secret`, as whoever knows the secret could."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body = raw[:-MAC_BYTES]
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


async def stored_keys(url: str) -> list[str]:
    database = Database(create_engine(settings_for(url)))
    try:
        async with database.unit_of_work(write=False) as uow:
            rows = await uow.connection.execute(
                select(server_secret.c.value).where(server_secret.c.name == PAGE_TOKEN_SECRET)
            )
            return list(rows.scalars())
    finally:
        await database.dispose()


async def test_servers_on_one_database_accept_each_others_tokens(database_url):
    async with serving(database_url) as (one, flows_one), serving(database_url) as (two, flows_two):
        key = one.settings.page_token_secret
        assert key and key != OLD_DEFAULT and key == two.settings.page_token_secret
        assert await stored_keys(database_url) == [key]
        assert len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) >= 32
        for issuer, reader in ((flows_one, flows_two), (flows_two, flows_one)):
            token = await first_page_token(issuer)
            assert len((await second_page(reader, token)).flows) == 1


async def test_a_fresh_database_gets_a_key_of_its_own(database_url, fresh_url):
    async with serving(database_url) as (one, flows_one), serving(fresh_url) as (other, flows_other):
        assert one.settings.page_token_secret != other.settings.page_token_secret
        await first_page_token(flows_other)  # two flows there too: only the key differs
        await assert_refused(flows_other, await first_page_token(flows_one))
        await assert_refused(flows_one, await first_page_token(flows_other))


async def test_a_token_signed_with_the_old_built_in_default_is_refused(database_url):
    async with serving(database_url) as (app, flows):
        token = await first_page_token(flows)
        # Re-signing with the server's own key changes nothing: the forgery below is faithful.
        assert len((await second_page(flows, resign(token, app.settings.page_token_secret))).flows) == 1
        await assert_refused(flows, resign(token, OLD_DEFAULT))


async def test_a_configured_secret_signs_whatever_the_database_holds(database_url, fresh_url):
    configured = f"configured-{uuid.uuid4().hex}"
    async with (
        serving(database_url, page_token_secret=configured) as (app, flows),
        serving(fresh_url, page_token_secret=configured) as (_, flows_elsewhere),
        serving(database_url) as (unconfigured, flows_unconfigured),
    ):
        assert app.settings.page_token_secret == configured
        # The same secret on another database: its tokens are good there.
        token = await first_page_token(flows)
        await first_page_token(flows_elsewhere)
        assert len((await second_page(flows_elsewhere, token)).flows) == 1
        # Anyone holding the secret signs tokens the server accepts; the database's key does not.
        other = await first_page_token(flows_unconfigured)
        assert len((await second_page(flows, resign(other, configured))).flows) == 1
        await assert_refused(flows, other)
        await assert_refused(flows_unconfigured, token)
        assert unconfigured.settings.page_token_secret != configured
    assert await stored_keys(fresh_url) == []  # a configured secret is never written


@pytest.mark.slow  # eight engines on a fresh database
async def test_concurrent_first_starts_agree_on_one_key(fresh_url):
    """Eight processes' worth of engines resolve the key of a fresh database at once: the
    first insert wins and every one of them reads it (INSERT ... ON CONFLICT DO NOTHING)."""
    settings = settings_for(fresh_url)
    databases = [Database(create_engine(settings)) for _ in range(8)]
    try:
        await migrate(databases[0])
        resolved = await asyncio.gather(*(resolve_page_token_secret(db, settings) for db in databases))
        keys = {each.page_token_secret for each in resolved}
        assert len(keys) == 1 and None not in keys
        async with databases[0].unit_of_work(write=False) as uow:
            assert (await uow.connection.execute(select(func.count()).select_from(server_secret))).scalar_one() == 1
    finally:
        await asyncio.gather(*(db.dispose() for db in databases))


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_server_processes_started_together_share_the_key(fresh_url, tmp_path):
    """Two `python -m flowrun.server` processes on a fresh database, migrating and creating the key
    at the same time. An empty FLOWRUN_PAGE_TOKEN_SECRET counts as unset."""
    env = {"FLOWRUN_PAGE_TOKEN_SECRET": ""}
    async with running_servers(fresh_url, 2, tmp_path, env=env) as addresses:
        async with grpc.aio.insecure_channel(addresses[0]) as first, grpc.aio.insecure_channel(addresses[1]) as second:
            stubs = [flow_service_pb2_grpc.FlowServiceStub(first), flow_service_pb2_grpc.FlowServiceStub(second)]
            for issuer, reader in ((stubs[0], stubs[1]), (stubs[1], stubs[0])):
                token = await first_page_token(issuer)
                assert len((await second_page(reader, token)).flows) == 1
                await assert_refused(reader, resign(token, OLD_DEFAULT))
    assert len(await stored_keys(fresh_url)) == 1


@pytest.mark.slow  # three starts on a fresh database
async def test_deleting_the_stored_key_replaces_it_at_the_next_start(fresh_url):
    """The README's rotation: DELETE the row, restart; old tokens are refused."""
    async with serving(fresh_url) as (before, flows):
        token = await first_page_token(flows)
    async with before.database.engine.connect() as connection:  # disposed engines reconnect
        await connection.execute(delete(server_secret).where(server_secret.c.name == PAGE_TOKEN_SECRET))
        await connection.commit()
    async with serving(fresh_url) as (after, flows):
        assert after.settings.page_token_secret != before.settings.page_token_secret
        assert await stored_keys(fresh_url) == [after.settings.page_token_secret]
        await assert_refused(flows, token)
