"""A server process listens for events only while a watch stream is attached to it.

On PostgreSQL every state change NOTIFYs every process that LISTENs; a process with no
watch stream has nothing to wake, so it holds no LISTEN (and no connection for it) and
receives none of them; on SQLite (and behind pgbouncer) it does not poll. The hub's
`wakeups` counts the NOTIFYs received and the polls made; `listening` is set while the
LISTEN is in place (or the poller runs). Streams that attach later still get every
event from their cursor, and detach-attach cycles work."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.watching import K, cursor_before_the_next_change, make_flow, make_run, propose, start_watch

SETTLE_SECONDS = 0.5  # a few poll intervals (watch_poll_seconds below): what a poller would have done


async def idle(app) -> None:
    """Waits until no stream is attached to the process and its listener has stopped."""
    async with asyncio.timeout(10):
        while app.hub.streams or app.hub.listening.is_set():
            await asyncio.sleep(0.02)


async def changes(runs, flow_id: str) -> str:
    """A run created (PENDING) and taken to COMPLETED: three events."""
    run = await make_run(runs, flow_id)
    await propose(runs, run.id, "STATE_TYPE_RUNNING")
    await propose(runs, run.id, "STATE_TYPE_COMPLETED")
    return run.id


async def test_without_streams_a_process_neither_listens_nor_wakes(served, unique):
    app, flows, runs = await served(watch_poll_seconds=0.1)
    flow_id = await make_flow(flows, unique)
    await changes(runs, flow_id)
    await asyncio.sleep(SETTLE_SECONDS)
    assert not app.hub.listening.is_set() and app.hub.wakeups == 0


@pytest.mark.pgbouncer  # also where PostgreSQL is polled
async def test_streams_attached_after_changes_get_every_event_and_detach_attach_cycles_work(served, backend, unique):
    app, flows, runs = await served(watch_poll_seconds=0.1)
    flow_id = await make_flow(flows, unique)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    for cycle in range(2):
        await idle(app)
        before = app.hub.wakeups
        unseen = await changes(runs, flow_id)  # while nothing listens
        await asyncio.sleep(SETTLE_SECONDS)
        assert app.hub.wakeups == before, f"cycle {cycle}: woken with no stream attached"

        watch = start_watch(runs, flow_run_filter=only_flow, cursor=cursor)
        await watch.until(lambda w: len(w.events) >= 3)
        assert [(e.kind, e.flow_run.id) for e in watch.events[:3]] == [
            (K.FLOW_RUN_EVENT_KIND_CREATED, unseen),
            (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, unseen),
            (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, unseen),
        ]
        async with asyncio.timeout(10):
            await app.hub.listening.wait()  # attached: the process listens (or polls) again
        live = await changes(runs, flow_id)
        await watch.until(lambda w: len(w.events) >= 6)
        assert [e.flow_run.id for e in watch.events[3:6]] == [live] * 3
        # Woken by the changes: on PostgreSQL by their NOTIFYs, on SQLite by polls
        # (this process's own commits wake it through the commit hook, uncounted).
        async with asyncio.timeout(10):
            while app.hub.wakeups == before:
                await asyncio.sleep(0.02)
        cursor = watch.events[5].cursor
        watch.cancel()
        await watch.task


async def test_a_change_committed_while_the_listen_is_being_set_up_is_read_at_once(
    served, backend, unique, monkeypatch
):
    """The first stream of a process starts the LISTEN; a change that commits after the
    shared reader's first read but before the LISTEN is in place sends its NOTIFY to no
    one. The hub wakes the reader once the LISTEN is in place, so the change arrives then,
    not at the next heartbeat (60 s here, longer than the test waits)."""
    if backend != "postgres":
        pytest.skip("only PostgreSQL LISTENs")
    writer_app, flows, runs = await served()
    watcher_app, _, watcher_runs = await served(watch_heartbeat_seconds=60)
    flow_id = await make_flow(flows, unique)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    release = asyncio.Event()
    listen_once = watcher_app.hub._listen_once

    async def held(stop: asyncio.Event) -> None:
        await release.wait()
        await listen_once(stop)

    monkeypatch.setattr(watcher_app.hub, "_listen_once", held)
    watch = start_watch(watcher_runs, flow_run_filter=only_flow, cursor=cursor)
    async with asyncio.timeout(10):
        while not watcher_app.hub.streams:  # attached: the reader has read, the LISTEN waits
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the reader's first read is behind it
    run = await make_run(runs, flow_id)  # its NOTIFY finds no LISTEN in the watcher's process
    release.set()
    await watch.until(lambda w: w.events)
    watch.cancel()
    assert watch.events[0].flow_run.id == run.id
