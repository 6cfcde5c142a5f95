"""Watch delivery under the hard cases: a transaction that commits after later ones
(PostgreSQL), a client that stops reading, and a burst larger than one read."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import timedelta

import grpc
import pytest
from google.protobuf import struct_pb2

from flowrun.server import clock
from flowrun.v1 import filters_pb2, flow_run_event_pb2
from flowrun.v1 import flow_run_service_pb2 as pb
from tests.helpers.rich_errors import decode
from tests.helpers.watching import make_flow, make_run, start_watch

K = flow_run_event_pb2.FlowRunEventKind


async def test_a_late_commit_is_delivered_and_never_skipped_by_a_cursor(served, backend, unique):
    """PostgreSQL commits out of sequence order: a transaction holding an early sequence
    value commits after later ones. The live stream delivers it when it commits, and a
    cursor issued while it was open does not skip it."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: commit order is sequence order")
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    late_run = await make_run(runs, flow_id)
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    holding, release = asyncio.Event(), asyncio.Event()

    async def late_writer() -> None:
        async with app.database.unit_of_work(write=True) as uow:
            await uow.repos.flow_runs.update(late_run.id, {"name": "late"}, clock.now())  # draws its sequence now
            holding.set()
            await release.wait()  # ... and commits after the others

    writer = asyncio.ensure_future(late_writer())
    await holding.wait()
    later = [(await make_run(runs, flow_id)).id for _ in range(3)]
    await watch.until(lambda w: len(w.events) >= 3)
    cursor_while_open = watch.events[-1].cursor
    assert [e.flow_run.id for e in watch.events] == later
    release.set()
    await writer
    await watch.until(lambda w: len(w.events) >= 4)
    late = watch.events[3]
    assert (late.kind, late.flow_run.id, late.flow_run.name) == (K.FLOW_RUN_EVENT_KIND_UPDATED, late_run.id, "late")
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor_while_open)
    await resumed.until(lambda w: len(w.events) >= 1)
    await asyncio.sleep(0.3)
    watch.cancel()
    resumed.cancel()
    assert [e.flow_run.id for e in resumed.events] == [late_run.id]
    assert len(watch.events) == 4


async def test_a_burst_larger_than_one_read_arrives_whole_and_in_order(served, unique):
    app, flows, runs = await served(watch_batch_size=3)
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    ids = await asyncio.gather(*(make_run(runs, flow_id) for _ in range(10)))
    await watch.until(lambda w: len(w.events) >= 10)
    await asyncio.sleep(0.3)
    watch.cancel()
    assert sorted(e.flow_run.id for e in watch.events) == sorted(run.id for run in ids)
    assert len(watch.events) == 10


@pytest.mark.slow
async def test_a_client_that_stops_reading_gets_resource_exhausted_then_resumes(served, unique):
    app, flows, runs = await served(watch_buffer_events=2)
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    call = runs.WatchFlowRuns(pb.WatchFlowRunsRequest(flow_run_filter=only_flow))
    first = await call.read()  # the stream is open (a heartbeat)
    assert first.WhichOneof("message") == "progress"
    parameters = struct_pb2.Struct()
    parameters.update({"blob": "x" * 400_000})  # each event carries the run, parameters included
    created = [(await make_run(runs, flow_id, parameters=parameters)).id for _ in range(24)]
    await asyncio.sleep(1.0)  # the client reads nothing: the server's buffer stays full
    received: list = []
    error = None

    async def read_all() -> None:
        nonlocal error
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                if message.WhichOneof("message") == "event":
                    received.append(message.event)
        except grpc.aio.AioRpcError as exc:
            error = exc

    await asyncio.wait_for(read_all(), 20)
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = decode(error)
    assert info.reason == "WATCH_TOO_SLOW"
    assert len(received) < len(created)
    if received:
        assert info.metadata["cursor"] == received[-1].cursor
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=info.metadata["cursor"])
    missing = len(created) - len(received)
    await resumed.until(lambda w: len(w.events) >= missing)
    resumed.cancel()
    assert [e.flow_run.id for e in received] + [e.flow_run.id for e in resumed.events] == created


async def test_a_cursor_between_two_late_commits_skips_neither(served, backend, unique):
    """Two transactions draw sequence values (Y before X), later ones commit, then X
    commits while Y is still open. A stream resumed from the cursor of X's event must
    still get Y's, which has the smaller sequence value."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: commit order is sequence order")
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    run_y, run_x = await make_run(runs, flow_id), await make_run(runs, flow_id)
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    gates = {name: (asyncio.Event(), asyncio.Event()) for name in ("y", "x")}

    async def late(name: str, run_id: str) -> None:
        holding, release = gates[name]
        async with app.database.unit_of_work(write=True) as uow:
            await uow.repos.flow_runs.update(run_id, {"name": f"late-{name}"}, clock.now())
            holding.set()
            await release.wait()

    writer_y = asyncio.ensure_future(late("y", run_y.id))
    await gates["y"][0].wait()
    writer_x = asyncio.ensure_future(late("x", run_x.id))
    await gates["x"][0].wait()
    later = (await make_run(runs, flow_id)).id  # commits after both drew their sequence values
    await watch.until(lambda w: len(w.events) >= 1)
    gates["x"][1].set()
    await writer_x
    await watch.until(lambda w: len(w.events) >= 2)
    x_event = watch.events[1]
    assert (x_event.flow_run.id, x_event.flow_run.name) == (run_x.id, "late-x")
    gates["y"][1].set()
    await writer_y
    await watch.until(lambda w: len(w.events) >= 3)
    watch.cancel()
    assert [e.flow_run.id for e in watch.events] == [later, run_x.id, run_y.id]
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=x_event.cursor)
    await resumed.until(lambda w: any(e.flow_run.id == run_y.id for e in w.events))
    resumed.cancel()


def as_version_2(cursor: str, secret: str) -> str:
    """The same position as a cursor of the previous format (no xmax; its second
    number was always 0), as servers before the xmax fix issued them."""
    from flowrun.server.watch import cursor as cursors

    position, _ = cursors.decode(cursor, secret)
    numbers = [position.after, 0, len(position.pending)]
    numbers += [xid - before for xid, before in zip(position.pending, [0, *position.pending], strict=False)]
    body = bytes([2]) + b"".join(_varint(number) for number in numbers)
    mac = hmac.new(secret.encode(), b"watch-cursor\0" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


@pytest.mark.parametrize("cursor_version", [3, 2])
async def test_a_younger_transaction_committing_after_an_older_one_is_not_skipped(
    served, backend, unique, cursor_version
):
    """A PostgreSQL snapshot lists as in progress only the transaction ids below its
    xmax, the last *completed* id + 1: a transaction that took its id after the last one
    to complete is running but in no list. Here it draws its sequence value before an
    older transaction, which commits first. Its event must still arrive when it commits,
    and a stream resumed from a cursor issued meanwhile (also one of the previous
    cursor format) must get it too."""
    if backend != "postgres":
        pytest.skip("SQLite serializes writers: commit order is sequence order")
    app, flows, runs = await served()
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    older_run, younger_run = await make_run(runs, flow_id), await make_run(runs, flow_id)
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    older_has_its_id, younger_drew, release_younger = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def older() -> None:
        async with app.database.unit_of_work(write=True) as uow:
            await uow.connection.exec_driver_sql("SELECT pg_current_xact_id()")  # takes its id first
            older_has_its_id.set()
            await younger_drew.wait()
            await uow.repos.flow_runs.update(older_run.id, {"name": "older"}, clock.now())

    async def younger() -> None:
        await older_has_its_id.wait()
        async with app.database.unit_of_work(write=True) as uow:
            await uow.repos.flow_runs.update(younger_run.id, {"name": "younger"}, clock.now())
            younger_drew.set()
            await release_younger.wait()

    younger_writer = asyncio.ensure_future(younger())
    await older()  # committed, while the younger transaction is open with a smaller sequence value
    await watch.until(lambda w: len(w.events) >= 1)
    cursor_while_open = watch.events[0].cursor
    if cursor_version == 2:
        cursor_while_open = as_version_2(cursor_while_open, app.settings.resolved_page_token_secret)
    release_younger.set()
    await younger_writer
    await watch.until(lambda w: len(w.events) >= 2)
    watch.cancel()
    assert [(e.flow_run.id, e.flow_run.name) for e in watch.events] == [
        (older_run.id, "older"),
        (younger_run.id, "younger"),
    ]
    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=cursor_while_open)
    await resumed.until(lambda w: w.events)
    await asyncio.sleep(0.3)
    resumed.cancel()
    assert [(e.flow_run.id, e.flow_run.name) for e in resumed.events] == [(younger_run.id, "younger")]


async def test_a_pool_of_one_connection_still_delivers(served, unique):
    """With no connection to spare for LISTEN, the hub polls: watches and writes both work."""
    app, flows, runs = await served(db_pool_size=1, db_max_overflow=0, watch_poll_seconds=0.1)
    flow_id = await make_flow(flows, unique)
    watch = start_watch(runs, flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id])))
    await watch.first_progress()
    created = [(await make_run(runs, flow_id)).id for _ in range(3)]
    await watch.until(lambda w: len(w.events) >= 3)
    watch.cancel()
    assert [e.flow_run.id for e in watch.events] == created


@pytest.mark.slow
async def test_a_stream_whose_unread_events_are_pruned_ends_out_of_range(served, unique, move_clock):
    """Catching up, a stream re-checks retention at every read: events deleted before it
    read them end it with OUT_OF_RANGE instead of a silent gap."""
    from flowrun.server.watch.retention import prune_events

    app, flows, runs = await served(watch_batch_size=1)
    flow_id = await make_flow(flows, unique)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    first = await make_run(runs, flow_id)
    await watch.until(lambda w: w.events)
    watch.cancel()
    cursor = watch.events[0].cursor
    parameters = struct_pb2.Struct()
    parameters.update({"blob": "x" * 400_000})  # big events: the server cannot run far ahead of the client
    for _ in range(8):
        await make_run(runs, flow_id, parameters=parameters)
    call = runs.WatchFlowRuns(pb.WatchFlowRunsRequest(flow_run_filter=only_flow, cursor=cursor))
    assert (await call.read()).WhichOneof("message") == "event"
    move_clock(app.settings.event_retention + timedelta(minutes=1))
    await make_run(runs, flow_id)
    assert await prune_events(app.database, app.settings) >= 8
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with asyncio.timeout(20):
            while (message := await call.read()) is not grpc.aio.EOF:
                assert message.event.flow_run.id != first.id
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert decode(caught.value).reason == "WATCH_CURSOR_EXPIRED"
