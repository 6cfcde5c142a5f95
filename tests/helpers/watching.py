"""Watching in tests: a WatchFlowRuns call collected by a task, and the few calls that
make the changes the watch tests look for."""

from __future__ import annotations

import asyncio

import grpc

from flowrun.v1 import filters_pb2, flow_run_event_pb2, flow_run_pb2, flow_run_service_pb2, flow_service_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as pb

K = flow_run_event_pb2.FlowRunEventKind
STREAM_TIMEOUT = 20.0


async def make_flow(flows, unique: str, suffix: str = "") -> str:
    response = await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"watch-{unique}{suffix}"))
    return response.flow.id


async def make_run(runs, flow_id: str, **fields) -> flow_run_pb2.FlowRun:
    return (await runs.CreateFlowRun(flow_run_service_pb2.CreateFlowRunRequest(flow_id=flow_id, **fields))).flow_run


async def propose(runs, run_id: str, state_type: str, *, force: bool = False) -> None:
    await runs.SetFlowRunState(
        flow_run_service_pb2.SetFlowRunStateRequest(
            flow_run_id=run_id, state=state_pb2.StateCreate(type=state_pb2.StateType.Value(state_type)), force=force
        )
    )


class Watch:
    """A running WatchFlowRuns call whose messages are collected by a task."""

    def __init__(self, call) -> None:
        self.call = call
        self.messages: list = []
        self.error: grpc.aio.AioRpcError | None = None
        self.task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        try:
            async for message in self.call:
                self.messages.append(message)
        except grpc.aio.AioRpcError as exc:
            self.error = exc
        except asyncio.CancelledError:
            pass

    @property
    def events(self) -> list[flow_run_event_pb2.FlowRunEvent]:
        return [m.event for m in self.messages if m.WhichOneof("message") == "event"]

    @property
    def batched(self) -> list[flow_run_event_pb2.FlowRunEvent]:
        """The events of the batch messages (WatchFlowRuns with `batch`)."""
        return [e for m in self.messages if m.WhichOneof("message") == "events" for e in m.events.events]

    async def until(self, predicate, timeout: float = STREAM_TIMEOUT) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            if self.task.done():
                raise AssertionError(f"the stream ended: {self.error!r}; got {len(self.messages)} messages")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; got {[(e.kind, e.flow_run.id) for e in self.events]}")
            await asyncio.sleep(0.02)

    async def first_progress(self) -> None:
        """The stream is open: every later change is after its start."""
        await self.until(lambda w: w.messages, timeout=STREAM_TIMEOUT)

    def cancel(self) -> None:
        self.call.cancel()


def start_watch(runs, **request) -> Watch:
    return Watch(runs.WatchFlowRuns(pb.WatchFlowRunsRequest(**request)))


async def cursor_before_the_next_change(runs, flow_id: str) -> tuple[str, filters_pb2.FlowRunFilter]:
    """A cursor from a watch of the flow's runs, after one run it creates, and that filter:
    a stream resumed from it gets every change made afterwards."""
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    watch = start_watch(runs, flow_run_filter=only_flow)
    await watch.first_progress()
    await make_run(runs, flow_id)
    await watch.until(lambda w: w.events)
    watch.cancel()
    return watch.events[0].cursor, only_flow


def of_run(watch: Watch, run_id: str) -> list[tuple[int, str]]:
    return [(e.kind, e.state.type if e.HasField("state") else 0) for e in watch.events if e.flow_run.id == run_id]


async def watch_flow_through_client(client, flow_id: str) -> tuple[asyncio.Future, list]:
    """Starts `client.watch_flow_runs` on one flow's runs (the client resumes by itself) and
    waits until the stream is open; returns the watching task and the events it collects."""
    received: list[flow_run_event_pb2.FlowRunEvent] = []
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow_id]))
    opened = asyncio.Event()

    async def watch() -> None:
        async for message in client.watch_flow_runs(flow_run_filter=only_flow, progress=True):
            opened.set()
            if message.WhichOneof("message") == "event":
                received.append(message.event)

    watching = asyncio.ensure_future(watch())
    await asyncio.wait_for(opened.wait(), 10)
    return watching, received
