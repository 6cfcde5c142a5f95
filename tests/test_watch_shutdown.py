"""A stopping server ends every watch stream with UNAVAILABLE (reason SHUTTING_DOWN) and a
cursor that resumes without losing an event, within its shutdown grace, even when the
process is too busy to get to the streams quickly: no stream is left for gRPC to cancel
(CANCELLED, which clients in other languages take as final). On both databases.

The busy process is simulated without timing anything: every event message's encoding
holds the event loop for SEND_SECONDS (CPU work the loop cannot interleave), so a stream
still catching up needs longer than the whole grace to send one read of events. Without
the fix that stream only looks at the server stopping between reads, and nothing waits
for the streams before gRPC's grace starts: gRPC cancels it at the end of its grace,
without details and so without a cursor (grpcio 1.85 reports that cancellation as
UNAVAILABLE "Cancelling all calls"; a CI run saw CANCELLED)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from flowrun.server.app import App, build_app
from flowrun.server.services.watch import Watcher
from flowrun.server.watch.hub import EventHub
from flowrun.v1 import filters_pb2, flow_run_service_pb2_grpc, flow_service_pb2_grpc
from flowrun.v1 import flow_run_service_pb2 as pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import decode
from tests.helpers.watching import STREAM_TIMEOUT, K, Watch, make_flow, make_run, propose, start_watch

EVENTS = 320  # behind the catching-up stream's cursor
BATCH = 300  # watch_batch_size: its first read alone takes BATCH * SEND_SECONDS to send
SEND_SECONDS = 0.05  # each event message's encoding holds the event loop this long
GRACE = 2.0  # the shutdown grace: far shorter than one read's sends (BATCH * SEND_SECONDS = 15 s)


async def serve(database_url: str) -> App:
    settings = settings_for(
        database_url, watch_heartbeat_seconds=0.2, watch_batch_size=BATCH, shutdown_grace_seconds=GRACE
    )
    app = await build_app(settings)
    await app.start()
    return app


@contextlib.asynccontextmanager
async def stubs(app: App) -> AsyncIterator[tuple[flow_service_pb2_grpc.FlowServiceStub, object]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield flow_service_pb2_grpc.FlowServiceStub(channel), flow_run_service_pb2_grpc.FlowRunServiceStub(channel)


def watch_run(runs, run_id: str, cursor: str = "") -> Watch:
    return Watch(runs.WatchFlowRun(pb.WatchFlowRunRequest(flow_run_id=run_id, keep_going=True, cursor=cursor)))


def hub_of(app: App) -> EventHub:
    assert app.hub is not None
    return app.hub


def ended_shutting_down(watch: Watch) -> str:
    """The cursor the stream ended with; it must have ended UNAVAILABLE / SHUTTING_DOWN."""
    assert watch.error is not None, f"the stream did not fail: {len(watch.messages)} messages"
    code, details = watch.error.code(), watch.error.details()
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
    # gRPC's own cancellation at the end of its grace carries no details (and no cursor).
    assert "grpc-status-details-bin" in dict(watch.error.trailing_metadata() or ()), (code, details)
    info = decode(watch.error)
    assert info.reason == "SHUTTING_DOWN", info
    return info.metadata.get("cursor", "")


def changes(events) -> list[tuple[int, str]]:
    """(kind, run id) of each event, first occurrences only (a resume may repeat a few)."""
    seen: list[tuple[int, str]] = []
    for event in events:
        key = (event.kind, event.flow_run.id)
        if key not in seen:
            seen.append(key)
    return seen


def slow_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = Watcher.encoded

    def slowly(self, event, position):
        time.sleep(SEND_SECONDS)  # CPU the event loop cannot get back: a starved process
        return encoded(self, event, position)

    monkeypatch.setattr(Watcher, "encoded", slowly)


async def test_stop_ends_every_stream_with_unavailable_and_a_cursor_that_resumes_on_a_busy_process(
    database_url, unique, monkeypatch
):
    app = await serve(database_url)
    try:
        async with stubs(app) as (flows, runs):
            flow_id = await make_flow(flows, unique)
            only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
            watched = await make_run(runs, flow_id)
            opening = start_watch(runs, flow_run_filter=only_flow)
            await opening.first_progress()
            behind = opening.messages[0].progress.cursor  # before the EVENTS below
            opening.cancel()
            created = [(await make_run(runs, flow_id)).id for _ in range(EVENTS)]

            slow_encoding(monkeypatch)
            catching_up = start_watch(runs, flow_run_filter=only_flow, cursor=behind)
            live = start_watch(runs, flow_run_filter=only_flow)
            batched = start_watch(runs, flow_run_filter=only_flow, batch=True)
            one_run = watch_run(runs, watched.id)
            for watch in (live, batched, one_run):
                await watch.first_progress()  # open: a heartbeat (or the run's snapshot)
            await catching_up.until(lambda w: len(w.events) >= 3)  # in the middle of its first read's sends

            streams_at_grpc_stop: list[int] = []
            grpc_stop = app.server.stop

            async def recording_stop(grace):
                streams_at_grpc_stop.append(hub_of(app).calls)
                await grpc_stop(grace)

            monkeypatch.setattr(app.server, "stop", recording_stop)
            await app.stop()
            watches = (catching_up, live, batched, one_run)
            await asyncio.wait_for(asyncio.gather(*(watch.task for watch in watches)), STREAM_TIMEOUT)
            cursors = [ended_shutting_down(watch) for watch in watches]
            assert all(cursors), cursors
            # gRPC stopped taking calls at once (new calls are refused, not taken and then
            # cut without grace), while the streams were still ending.
            assert streams_at_grpc_stop and streams_at_grpc_stop[0] > 0
            assert len(catching_up.events) < EVENTS  # it was still catching up
    finally:
        await app.stop(grace=0)
    monkeypatch.undo()

    # Each cursor resumes on the next server with nothing lost: what the streams were sent
    # before plus what they are sent now is every change, in order.
    app = await serve(database_url)
    try:
        async with stubs(app) as (_flows, runs):
            later = (await make_run(runs, flow_id)).id
            await propose(runs, watched.id, "STATE_TYPE_RUNNING")
            news = [(K.FLOW_RUN_EVENT_KIND_CREATED, later), (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, watched.id)]
            resumed = [
                start_watch(runs, flow_run_filter=only_flow, cursor=cursors[0]),
                start_watch(runs, flow_run_filter=only_flow, cursor=cursors[1]),
                start_watch(runs, flow_run_filter=only_flow, batch=True, cursor=cursors[2]),
                watch_run(runs, watched.id, cursor=cursors[3]),
            ]
            all_created = [(K.FLOW_RUN_EVENT_KIND_CREATED, run_id) for run_id in created]
            await resumed[0].until(lambda w: len(changes(catching_up.events + w.events)) >= EVENTS + 2)
            await resumed[1].until(lambda w: len(changes(w.events)) >= 2)
            await resumed[2].until(lambda w: len(changes(w.batched)) >= 2)
            await resumed[3].until(lambda w: len(changes(w.events)) >= 1)
            await asyncio.sleep(0.3)  # anything more would come now
            for watch in resumed:
                watch.cancel()
    finally:
        await app.stop(grace=0)
    assert changes(catching_up.events + resumed[0].events) == all_created + news
    assert changes(live.events + resumed[1].events) == news
    assert changes(batched.batched + resumed[2].batched) == news
    assert changes(one_run.events + resumed[3].events) == news[1:]


async def test_a_stream_opened_while_the_server_stops_ends_at_once(database_url, unique):
    """Opened once the streams were told to end (the server still takes calls): each ends
    with SHUTTING_DOWN before sending anything; resumable from its cursor, or, when it
    asked for a snapshot it did not get, without one (it opens again, snapshot included)."""
    app = await serve(database_url)
    try:
        async with stubs(app) as (flows, runs):
            flow_id = await make_flow(flows, unique)
            run = await make_run(runs, flow_id)
            live = start_watch(runs)
            await live.first_progress()
            cursor = live.messages[0].progress.cursor
            await hub_of(app).close()  # what App.stop does first
            from_now = start_watch(runs)
            from_cursor = start_watch(runs, cursor=cursor)
            snapshot = start_watch(runs, start=pb.WATCH_START_SNAPSHOT)
            one_run = watch_run(runs, run.id)
            one_run_from_cursor = watch_run(runs, run.id, cursor=cursor)
            watches = (live, from_now, from_cursor, snapshot, one_run, one_run_from_cursor)
            await asyncio.wait_for(asyncio.gather(*(watch.task for watch in watches)), STREAM_TIMEOUT)
            cursors = [ended_shutting_down(watch) for watch in watches]
            assert all(cursors[:3]) and cursors[3:5] == ["", ""] and cursors[5], cursors
            assert all(not watch.messages for watch in watches[1:])
            assert hub_of(app).calls == 0
    finally:
        await app.stop(grace=0)
