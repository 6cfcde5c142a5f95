"""Watchers on two server processes sharing one database see every change made through
either process: each run's events in its history's order, none missing, none
duplicated; a watcher whose server is killed (SIGKILL) resumes on the other one from
its last cursor and misses nothing."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import grpc
import pytest
from google.protobuf import field_mask_pb2

from flowrun.v1 import filters_pb2, flow_run_pb2, flow_run_service_pb2, flow_run_service_pb2_grpc, flow_service_pb2_grpc
from tests.helpers.servers import ServerProcess, wait_for_health
from tests.helpers.watching import K, make_flow, make_run, propose, start_watch

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

ENV = {"FLOWRUN_WATCH_HEARTBEAT_SECONDS": "0.3", "FLOWRUN_WATCH_POLL_SECONDS": "0.2"}
S = "STATE_TYPE_"


def cursor_of(message) -> str:
    return message.event.cursor if message.WhichOneof("message") == "event" else message.progress.cursor


def per_run(events) -> dict[str, list[tuple[int, int]]]:
    runs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for event in events:
        runs[event.flow_run.id].append((event.kind, event.state.type if event.HasField("state") else 0))
    return dict(runs)


def first_times(events) -> list:
    """The events without repeats (the same run, kind and state), in order."""
    seen: set = set()
    kept = []
    for event in events:
        key = (event.flow_run.id, event.kind, event.state.id)
        if key not in seen:
            seen.add(key)
            kept.append(event)
    return kept


async def lifecycle(stubs, index: int, flow_id: str, expected: dict, *, update: bool, delete: bool) -> None:
    """One run driven through both servers alternately; records the events it should cause."""
    first, second = stubs[index % len(stubs)], stubs[(index + 1) % len(stubs)]
    run = await make_run(first, flow_id)
    await propose(second, run.id, f"{S}RUNNING")
    await propose(first, run.id, f"{S}COMPLETED")
    events = [(K.FLOW_RUN_EVENT_KIND_CREATED, 2), (K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, 3)]
    events.append((K.FLOW_RUN_EVENT_KIND_STATE_CHANGED, 4))
    if update:
        await second.UpdateFlowRun(
            flow_run_service_pb2.UpdateFlowRunRequest(
                flow_run=flow_run_pb2.FlowRun(id=run.id, name=f"run-{index}"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            )
        )
        events.append((K.FLOW_RUN_EVENT_KIND_UPDATED, 0))
    if delete:
        await first.DeleteFlowRun(flow_run_service_pb2.DeleteFlowRunRequest(flow_run_id=run.id))
        events.append((K.FLOW_RUN_EVENT_KIND_DELETED, 0))
    expected[run.id] = events


async def test_watchers_on_two_processes_see_every_change_once_in_order_and_resume_after_a_kill(
    database_url, tmp_path, unique
):
    servers = [ServerProcess(database_url, log_path=tmp_path / f"server-{i}.log", env=ENV) for i in range(2)]
    channels = []
    try:
        for server in servers:
            await asyncio.to_thread(server.wait_until_serving, 60)
        await asyncio.gather(*(wait_for_health(server.address) for server in servers))
        channels = [grpc.aio.insecure_channel(server.address) for server in servers]
        stubs = [flow_run_service_pb2_grpc.FlowRunServiceStub(channel) for channel in channels]
        flow_id = await make_flow(flow_service_pb2_grpc.FlowServiceStub(channels[0]), unique)
        only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
        watchers = [start_watch(stub, flow_run_filter=only_flow) for stub in stubs]
        for watch in watchers:
            await watch.first_progress()

        expected: dict[str, list] = {}
        await asyncio.gather(*(lifecycle(stubs, i, flow_id, expected, update=i < 2, delete=i == 2) for i in range(6)))
        total = sum(len(events) for events in expected.values())
        for watch in watchers:
            await watch.until(lambda w: len(w.events) >= total, timeout=30)
        await asyncio.sleep(0.5)  # a duplicate would arrive now
        for watch in watchers:
            assert per_run(watch.events) == expected
            assert len(watch.events) == total

        # Server 0 dies; its watcher resumes on server 1 from the last cursor it got.
        killed = watchers[0]
        servers[0].process.kill()
        await killed.until(lambda w: w.error is not None, timeout=30)
        assert killed.error.code() == grpc.StatusCode.UNAVAILABLE
        last_cursor = cursor_of(killed.messages[-1])
        before = list(killed.events)
        later: dict[str, list] = {}
        await asyncio.gather(*(lifecycle(stubs[1:], i, flow_id, later, update=i == 6, delete=False) for i in (6, 7)))
        resumed = start_watch(stubs[1], flow_run_filter=only_flow, cursor=last_cursor)
        total_later = sum(len(events) for events in later.values())
        await resumed.until(lambda w: len(w.events) >= total_later, timeout=30)
        await watchers[1].until(lambda w: len(w.events) >= total + total_later, timeout=30)
        await asyncio.sleep(0.5)
        resumed.cancel()
        watchers[1].cancel()
        # At least once across a resume: the resumed stream may repeat events before its cursor.
        assert per_run(first_times(before + resumed.events)) == {**expected, **later}
        assert per_run(watchers[1].events) == {**expected, **later}
        assert not servers[1].internal_errors()
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            server.stop()
