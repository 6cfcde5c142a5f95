"""A watch across a PostgreSQL restart (a private cluster: the shared one is never
stopped): the stream breaks with UNAVAILABLE, the Python client resumes from its last
cursor once the database is back, and every change made before and after arrives once,
in order, with no restart of the server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from flowrun.client import FlowrunClient
from flowrun.client.retry import RetryPolicy
from flowrun.server.app import build_app
from flowrun.v1 import flow_run_event_pb2
from tests.conftest import settings_for
from tests.helpers.servers import PrivatePostgres
from tests.helpers.watching import watch_flow_through_client

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]  # a PostgreSQL cluster of its own

K = flow_run_event_pb2.FlowRunEventKind
PATIENT = RetryPolicy(max_attempts=200, initial_backoff=0.05, max_backoff=0.5)


async def test_a_watch_resumes_across_a_postgresql_restart(private_postgres: PrivatePostgres):
    private_postgres.ensure_running()
    url = private_postgres.url(driver="postgresql+asyncpg")
    app = await build_app(settings_for(url, watch_heartbeat_seconds=0.2))
    await app.start()
    try:
        async with FlowrunClient(f"127.0.0.1:{app.port}", retry=PATIENT) as client:
            flow, _ = await client.create_flow(f"watch-restart-{uuid.uuid4().hex[:8]}")
            watching, received = await watch_flow_through_client(client, flow.id)
            before = (await client.create_flow_run(flow.id, idempotency_key="before"))[0].id
            await asyncio.to_thread(private_postgres.restart)
            after = (await client.create_flow_run(flow.id, idempotency_key="after"))[0].id  # retried until back
            async with asyncio.timeout(30):
                while len(received) < 2:
                    assert not watching.done(), watching
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            watching.cancel()
        assert [(e.kind, e.flow_run.id) for e in received] == [
            (K.FLOW_RUN_EVENT_KIND_CREATED, before),
            (K.FLOW_RUN_EVENT_KIND_CREATED, after),
        ]
    finally:
        await app.stop(grace=0)
