"""WatchFlowRuns / WatchFlowRun through the real server on both databases: every kind
of change arrives once, in each run's order; filters are exact; cursors resume without
gaps and are validated; retention, slow consumers, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2

from flowrun.server.app import build_app
from flowrun.v1 import filters_pb2, flow_run_pb2, flow_run_service_pb2, flow_service_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as pb
from tests.conftest import settings_for
from tests.helpers.rich_errors import decode
from tests.helpers.watching import STREAM_TIMEOUT, K, make_flow, make_run, of_run, propose, start_watch


@pytest.fixture
async def watch_app(database_url) -> AsyncIterator:
    """A server of the test's own with short heartbeats, so a fresh stream says quickly
    that it is open."""
    app = await build_app(settings_for(database_url, watch_heartbeat_seconds=0.2, watch_poll_seconds=0.2))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


@pytest.fixture
async def wstubs(watch_app):
    from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{watch_app.port}") as channel:
        yield flow_service_pb2_grpc.FlowServiceStub(channel), flow_run_service_pb2_grpc.FlowRunServiceStub(channel)


async def test_every_kind_of_change_arrives_once_in_order(wstubs, unique):
    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    watch = start_watch(runs, flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])))
    await watch.first_progress()
    run = await make_run(runs, flow_id, tags=["a"])
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    await propose(runs, run.id, "STATE_TYPE_COMPLETED")
    await propose(runs, run.id, "STATE_TYPE_SCHEDULED", force=True)
    mask = field_mask_pb2.FieldMask(paths=["name"])
    await runs.UpdateFlowRun(
        flow_run_service_pb2.UpdateFlowRunRequest(
            flow_run=flow_run_pb2.FlowRun(id=run.id, name="renamed"), update_mask=mask
        )
    )
    await runs.DeleteFlowRun(flow_run_service_pb2.DeleteFlowRunRequest(flow_run_id=run.id))
    await watch.until(lambda w: len(w.events) >= 6)
    await asyncio.sleep(0.3)  # nothing more arrives (a duplicate would)
    watch.cancel()
    S = state_pb2.StateType
    assert of_run(watch, run.id) == [
        (K.FLOW_RUN_EVENT_KIND_CREATED, S.STATE_TYPE_PENDING),
        (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, S.STATE_TYPE_RUNNING),
        (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, S.STATE_TYPE_COMPLETED),
        (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, S.STATE_TYPE_SCHEDULED),
        (K.FLOW_RUN_EVENT_KIND_UPDATED, 0),
        (K.FLOW_RUN_EVENT_KIND_DELETED, 0),
    ]
    changed = [e for e in watch.events if e.kind == K.FLOW_RUN_EVENT_KIND_STATE_CHANGED]
    assert [e.previous_state_type for e in changed] == [
        S.STATE_TYPE_PENDING,
        S.STATE_TYPE_RUNNING,
        S.STATE_TYPE_COMPLETED,
    ]
    assert not watch.events[0].HasField("previous_state_type")
    assert watch.events[4].flow_run.name == "renamed"
    assert watch.events[2].flow_run.state_type == S.STATE_TYPE_COMPLETED  # the run as right after the change
    assert len({e.cursor for e in watch.events}) == 6


async def test_resume_from_each_cursor_gives_exactly_the_rest(wstubs, unique):
    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    ids = [(await make_run(runs, flow_id)).id for _ in range(4)]
    await watch.until(lambda w: len(w.events) >= 4)
    watch.cancel()
    for index, event in enumerate(watch.events):
        resumed = start_watch(runs, flow_run_filter=only_flow, cursor=event.cursor)
        rest = ids[index + 1 :]
        if rest:
            wanted = len(rest)
            await resumed.until(lambda w, wanted=wanted: len(w.events) >= wanted)
        else:
            await resumed.until(lambda w: any(m.WhichOneof("message") == "progress" for m in w.messages))
        resumed.cancel()
        assert [e.flow_run.id for e in resumed.events] == rest


async def test_filters_are_exact(wstubs, unique):
    flows, runs = wstubs
    flow_a, flow_b = await make_flow(flows, unique, "a"), await make_flow(flows, unique, "b")
    S = state_pb2.StateType
    by_tag = start_watch(
        runs,
        flow_run_filter=filters_pb2.FlowRunFilter(
            flow_id=filters_pb2.IdFilter(any=[flow_a, flow_b]), tags=filters_pb2.TagsFilter(all=["x"])
        ),
    )
    running = start_watch(
        runs,
        flow_run_filter=filters_pb2.FlowRunFilter(
            flow_id=filters_pb2.IdFilter(any=[flow_a]),
            state=filters_pb2.FlowRunStateFilter(type=filters_pb2.StateTypeFilter(any=[S.STATE_TYPE_RUNNING])),
        ),
    )
    await by_tag.first_progress()
    await running.first_progress()
    tagged = await make_run(runs, flow_b, tags=["x", "y"])
    plain = await make_run(runs, flow_a, tags=["y"])
    await propose(runs, plain.id, "STATE_TYPE_RUNNING")
    await propose(runs, tagged.id, "STATE_TYPE_RUNNING")
    await propose(runs, plain.id, "STATE_TYPE_COMPLETED")
    await by_tag.until(lambda w: len(w.events) >= 2)
    await running.until(lambda w: len(w.events) >= 1)
    await asyncio.sleep(0.3)
    by_tag.cancel()
    running.cancel()
    assert [(e.flow_run.id, e.kind) for e in by_tag.events] == [
        (tagged.id, K.FLOW_RUN_EVENT_KIND_CREATED),
        (tagged.id, K.FLOW_RUN_EVENT_KIND_STATE_CHANGED),
    ]
    assert [(e.flow_run.id, e.state.type) for e in running.events] == [(plain.id, S.STATE_TYPE_RUNNING)]


@pytest.mark.parametrize(
    "request_fields, field",
    [
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "AAAA"}, "cursor"),
        (
            {"flow_run_filter": filters_pb2.FlowRunFilter(name=filters_pb2.StringFilter(like="x"))},
            "flow_run_filter.name",
        ),
        (
            {"flow_run_filter": filters_pb2.FlowRunFilter(id=filters_pb2.IdFilter(any=["nope"]))},
            "flow_run_filter.id.any[0]",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument(runs, request_fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in runs.WatchFlowRuns(pb.WatchFlowRunsRequest(**request_fields), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in decode(caught.value).field_violations


async def test_a_tampered_cursor_is_refused(wstubs, unique):
    flows, runs = wstubs
    watch = start_watch(runs)
    await watch.until(lambda w: any(m.WhichOneof("message") == "progress" for m in w.messages))
    watch.cancel()
    cursor = next(m.progress.cursor for m in watch.messages if m.WhichOneof("message") == "progress")
    flipped = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in runs.WatchFlowRuns(pb.WatchFlowRunsRequest(cursor=flipped), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert decode(caught.value).reason == "INVALID_WATCH_CURSOR"


async def test_watch_one_run_ends_at_its_terminal_state(wstubs, unique):
    flows, runs = wstubs
    run = await make_run(runs, await make_flow(flows, unique))
    call = runs.WatchFlowRun(pb.WatchFlowRunRequest(flow_run_id=run.id), timeout=STREAM_TIMEOUT)
    got = []

    async def collect():
        async for message in call:
            got.append(message)

    task = asyncio.ensure_future(collect())
    while not got:
        await asyncio.sleep(0.02)
    assert got[0].WhichOneof("message") == "snapshot_run" and got[0].snapshot_run.id == run.id
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    await propose(runs, run.id, "STATE_TYPE_FAILED")
    await asyncio.wait_for(task, STREAM_TIMEOUT)  # ends by itself, with OK
    events = [m.event for m in got if m.WhichOneof("message") == "event"]
    assert [e.state.type for e in events] == [state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_FAILED]


async def test_watch_one_run_unknown_is_not_found(runs):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in runs.WatchFlowRun(pb.WatchFlowRunRequest(flow_run_id=str(uuid.uuid4())), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_snapshot_then_changes(wstubs, unique):
    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    existing = [(await make_run(runs, flow_id)).id for _ in range(3)]
    watch = start_watch(
        runs,
        flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])),
        start=pb.WATCH_START_SNAPSHOT,
    )
    await watch.until(lambda w: any(m.WhichOneof("message") == "progress" for m in w.messages))
    later = await make_run(runs, flow_id)
    await watch.until(lambda w: len(w.events) >= 1)
    watch.cancel()
    kinds = [
        m.WhichOneof("message")
        for m in watch.messages
        if m.WhichOneof("message") != "progress" or m.progress.snapshot_complete
    ]
    assert kinds[:4] == ["snapshot_run"] * 3 + ["progress"]
    assert sorted(m.snapshot_run.id for m in watch.messages[:3]) == sorted(existing)
    assert [e.flow_run.id for e in watch.events] == [later.id]


async def test_retention_out_of_range(wstubs, unique, move_clock, watch_app):
    from flowrun.server.watch.retention import prune_events

    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    watch = start_watch(runs, flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])))
    await watch.first_progress()
    await make_run(runs, flow_id)
    await make_run(runs, flow_id)
    await watch.until(lambda w: len(w.events) >= 2)
    watch.cancel()
    old_cursor = watch.events[0].cursor
    move_clock(watch_app.settings.event_retention + timedelta(minutes=1))
    await make_run(runs, flow_id)  # a fresh event survives
    assert await prune_events(watch_app.database, watch_app.settings) >= 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in runs.WatchFlowRuns(pb.WatchFlowRunsRequest(cursor=old_cursor), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    info = decode(caught.value)
    assert info.reason == "WATCH_CURSOR_EXPIRED" and int(info.metadata["retention_seconds"]) > 0


async def test_cancelled_streams_release_their_reader(wstubs, watch_app):
    flows, runs = wstubs
    watches = [start_watch(runs) for _ in range(3)]
    for watch in watches:
        await watch.first_progress()
    assert watch_app.hub.streams == 3
    for watch in watches:
        watch.cancel()
    deadline = asyncio.get_running_loop().time() + 10
    while watch_app.hub.streams:
        assert asyncio.get_running_loop().time() < deadline, "a cancelled stream kept its reader"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    leftovers = [task for task in asyncio.all_tasks() if "Queue.get" in repr(task) or "watch-tail" in repr(task)]
    assert not leftovers, "a cancelled stream left a task behind"


async def test_shutdown_ends_streams_with_unavailable_and_a_cursor(database_url, unique):
    from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2_grpc

    app = await build_app(settings_for(database_url, watch_heartbeat_seconds=0.2))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow_id = await make_flow(flows, unique)
            only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
            watch = start_watch(runs, flow_run_filter=only_flow)
            await watch.first_progress()
            await make_run(runs, flow_id)
            await watch.until(lambda w: w.events)
            stopping = asyncio.ensure_future(app.stop(grace=5))
            await asyncio.wait_for(watch.task, 5)  # ended before the grace period ran out
            await stopping
    finally:
        await app.stop(grace=0)
    assert watch.error is not None and watch.error.code() == grpc.StatusCode.UNAVAILABLE
    info = decode(watch.error)
    assert info.reason == "SHUTTING_DOWN" and info.metadata["cursor"]


async def test_a_change_made_by_a_background_sweep_arrives(wstubs, unique, watch_app, move_clock):
    """The late-runs sweep proposes through set_state like any client: its change is an event."""
    from flowrun.server.liveness.late_runs import MarkLateRuns
    from flowrun.server.liveness.sweeper import Sweeper

    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    watch = start_watch(runs, flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])))
    await watch.first_progress()
    run = await make_run(runs, flow_id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED))
    move_clock(timedelta(seconds=watch_app.settings.late_runs_after_seconds + 5))
    sweeper = Sweeper(watch_app.database, MarkLateRuns(watch_app.settings), interval=60, batch_size=200)
    assert (await sweeper.sweep_once())["accept"] >= 1
    await watch.until(lambda w: len(w.events) >= 2)
    watch.cancel()
    late = watch.events[1]
    assert (late.kind, late.flow_run.id, late.state.name) == (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, run.id, "Late")
    assert late.previous_state_type == state_pb2.STATE_TYPE_SCHEDULED


async def test_deleting_a_flow_deletes_its_runs_with_an_event_each(wstubs, unique):
    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    watch = start_watch(runs, flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])))
    await watch.first_progress()
    ids = {(await make_run(runs, flow_id)).id for _ in range(3)}
    await flows.DeleteFlow(flow_service_pb2.DeleteFlowRequest(flow_id=flow_id))
    await watch.until(lambda w: len(w.events) >= 6)
    await asyncio.sleep(0.3)
    watch.cancel()
    deleted = [e for e in watch.events if e.kind == K.FLOW_RUN_EVENT_KIND_DELETED]
    assert {e.flow_run.id for e in deleted} == ids and len(watch.events) == 6
    assert all(e.flow_run.state_type == state_pb2.STATE_TYPE_PENDING for e in deleted)  # the runs as they were last


async def test_batch_mode_sends_the_same_events_in_fewer_messages(wstubs, unique):
    flows, runs = wstubs
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    one_by_one = start_watch(runs, flow_run_filter=only_flow)
    batched = start_watch(runs, flow_run_filter=only_flow, batch=True)
    await one_by_one.first_progress()
    await batched.first_progress()
    await asyncio.gather(*(make_run(runs, flow_id) for _ in range(12)))
    await one_by_one.until(lambda w: len(w.events) >= 12)

    def batched_events(w):
        return [e for m in w.messages if m.WhichOneof("message") == "events" for e in m.events.events]

    await batched.until(lambda w: len(batched_events(w)) >= 12)
    await asyncio.sleep(0.3)
    one_by_one.cancel()
    batched.cancel()
    assert not batched.events  # no single-event messages in batch mode
    assert [(e.cursor, e.flow_run.id) for e in batched_events(batched)] == [
        (e.cursor, e.flow_run.id) for e in one_by_one.events
    ]
