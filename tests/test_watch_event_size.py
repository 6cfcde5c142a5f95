"""Watch events larger than a message may be: every watcher still gets every event.

The server sends nothing larger than its send limit (the smaller of
FLOWRUN_MAX_MESSAGE_BYTES and FLOWRUN_MAX_RESPONSE_BYTES) nor than 4 MiB, gRPC's default
receive limit, while a request (and so a run's context, job variables, labels or a
state's data) may be up to the write budget (Settings.write_max_bytes, a third of a
List page), so a run may hold three of them (its flow's labels, its create request and
its state) and its state-change event a fourth (the state twice: in `state` and in
`flow_run.state`), which can be more than the send limit. An event that does not fit is
sent with `flow_run_truncated` and only the run's and state's small fields; the stream
goes on, a resume from its cursor goes on, and the whole state is one GetFlowRunState
away. Before, such an event ended every stream that met it with RESOURCE_EXHAUSTED,
and every resume met it again."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2
from pydantic import ValidationError

from flowrun.server.config import Settings
from flowrun.v1 import flow_run_service_pb2 as pb
from flowrun.v1 import flow_service_pb2, state_pb2
from tests.helpers.watching import K, cursor_before_the_next_change, make_flow, make_run, start_watch

SEND_LIMIT = 64 * 1024
SMALL = {"max_message_bytes": 256 * 1024, "max_response_bytes": SEND_LIMIT, "max_parameter_bytes": 16 * 1024}
# Large enough for a state-change event of a run at every write budget to pass the send limit.
TRUNCATING_LIMIT = 512 * 1024
TRUNCATING = {"max_response_bytes": TRUNCATING_LIMIT, "max_parameter_bytes": 64 * 1024}
GRPC_DEFAULT_RECEIVE = 4 * 1024 * 1024


def most_of_a_write(**limits) -> int:
    """A blob size that leaves a write request within the write budget of `limits`."""
    return Settings(database_url="sqlite+aiosqlite:///unused.db", **limits).write_max_bytes - 1024


async def make_labelled_flow(flows, unique: str, label_bytes: int) -> str:
    """A flow with `label_bytes` of labels, which its runs hold too."""
    labels = struct_pb2.Struct()
    labels.update({"big": "l" * label_bytes})
    request = flow_service_pb2.CreateFlowRequest(name=f"watch-{unique}", labels=labels)
    return (await flows.CreateFlow(request)).flow.id


def blob(size: int) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update({"blob": "x" * size})
    return value


async def set_state(runs, run_id: str, state_type: str, *, data_bytes: int = 0) -> None:
    """Proposes the state; with `data_bytes`, with that much result data."""
    state = state_pb2.StateCreate(type=state_pb2.StateType.Value(state_type))
    if data_bytes:
        state.data.string_value = "d" * data_bytes
    await runs.SetFlowRunState(pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state))


def events_of(watch) -> list:
    return watch.events + watch.batched


def assert_truncated(event, flow_id: str) -> None:
    """Only the small fields: identity, state summary, cursor."""
    assert event.flow_run_truncated and event.cursor and event.flow_run.id and event.flow_run.flow_id == flow_id
    assert event.flow_run.state_type and event.flow_run.state_name and event.flow_run.HasField("updated")
    assert not event.flow_run.HasField("context") and not event.flow_run.HasField("state")
    assert event.state.id == event.flow_run.state_id and event.state.type == event.flow_run.state_type
    assert not event.state.HasField("data") and not event.state.message


@pytest.mark.parametrize("batch", [False, True])
async def test_an_event_over_the_send_limit_arrives_truncated_and_the_stream_goes_on(served, unique, batch):
    app, flows, runs = await served(**TRUNCATING)
    most = most_of_a_write(**TRUNCATING)
    flow_id = await make_labelled_flow(flows, unique, most)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    # The flow's labels, the run's context and the state's data, with the state twice,
    # make the RUNNING event larger than the send limit.
    run = await make_run(runs, flow_id, context=blob(most))
    await set_state(runs, run.id, "STATE_TYPE_RUNNING", data_bytes=most)
    small = await make_run(runs, flow_id, context=blob(100))

    for start in (cursor, cursor):  # and again from the same cursor
        watch = start_watch(runs, flow_run_filter=only_flow, cursor=start, batch=batch)
        await watch.until(lambda w: len(events_of(w)) >= 3)
        watch.cancel()
        created, large, after = events_of(watch)[:3]
        assert created.kind == K.FLOW_RUN_EVENT_KIND_CREATED and not created.flow_run_truncated
        assert large.kind == K.FLOW_RUN_EVENT_KIND_STATE_CHANGED
        assert_truncated(large, flow_id)
        assert large.state.type == state_pb2.STATE_TYPE_RUNNING
        assert after.flow_run.id == small.id and not after.flow_run_truncated
        assert after.flow_run.context["blob"] == "x" * 100
        assert all(m.ByteSize() <= TRUNCATING_LIMIT for m in watch.messages)

    resumed = start_watch(runs, flow_run_filter=only_flow, cursor=large.cursor, batch=batch)
    await resumed.until(lambda w: events_of(w))
    resumed.cancel()
    assert events_of(resumed)[0].flow_run.id == small.id


async def test_watch_flow_run_goes_on_past_a_truncated_state_change(served, unique):
    app, flows, runs = await served(**TRUNCATING)
    most = most_of_a_write(**TRUNCATING)
    run = await make_run(runs, await make_labelled_flow(flows, unique, most), context=blob(most))
    call = runs.WatchFlowRun(pb.WatchFlowRunRequest(flow_run_id=run.id))
    messages = []
    async for message in call:
        messages.append(message)
        if message.WhichOneof("message") == "snapshot_run":
            # The run with this state fits a response, but not with the state twice (an event)
            await set_state(runs, run.id, "STATE_TYPE_RUNNING", data_bytes=most)
            await set_state(runs, run.id, "STATE_TYPE_COMPLETED")
    assert await call.code() == grpc.StatusCode.OK  # ended after the terminal state
    running, completed = [m.event for m in messages if m.WhichOneof("message") == "event"]
    assert running.state.type == state_pb2.STATE_TYPE_RUNNING
    assert_truncated(running, run.flow_id)
    whole = await runs.GetFlowRunState(pb.GetFlowRunStateRequest(state_id=running.state.id))
    assert whole.state.data.string_value == "d" * most
    assert completed.state.type == state_pb2.STATE_TYPE_COMPLETED and not completed.flow_run_truncated


@pytest.mark.parametrize(
    "limits",
    [{}, {"max_message_bytes": 16 * 1024 * 1024, "max_response_bytes": 16 * 1024 * 1024}],
    ids=["default-limits", "raised-limits"],
)
async def test_a_client_with_grpc_default_receive_limit_reads_every_event(served, unique, limits):
    """With the default limits a run with its flow's labels, context and state data each
    near the write budget fits every response, but its state-change event (the state
    twice) does not; with raised server limits such an event could be sent, but a client
    with gRPC's default receive limit (as the test's channel is) could not read it."""
    app, flows, runs = await served(**limits)
    most = most_of_a_write()
    flow_id = await make_labelled_flow(flows, unique, most)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    run = await make_run(runs, flow_id, context=blob(most))
    await set_state(runs, run.id, "STATE_TYPE_RUNNING", data_bytes=most)
    await set_state(runs, run.id, "STATE_TYPE_COMPLETED")
    watch = start_watch(runs, flow_run_filter=only_flow, cursor=cursor, batch=True)
    await watch.until(lambda w: len(w.batched) >= 3)
    watch.cancel()
    created, running, completed = watch.batched[:3]
    assert not created.flow_run_truncated and not completed.flow_run_truncated
    assert_truncated(running, flow_id)
    assert all(m.ByteSize() <= GRPC_DEFAULT_RECEIVE for m in watch.messages)


async def test_a_batch_of_events_that_each_fit_is_cut_within_the_send_limit(served, unique):
    app, flows, runs = await served(**SMALL)
    flow_id = await make_flow(flows, unique)
    cursor, only_flow = await cursor_before_the_next_change(runs, flow_id)
    for _ in range(8):  # each near the write budget (about a sixth of the send limit)
        await make_run(runs, flow_id, context=blob(most_of_a_write(**SMALL)))
    watch = start_watch(runs, flow_run_filter=only_flow, cursor=cursor, batch=True)
    await watch.until(lambda w: len(w.batched) >= 8)
    watch.cancel()
    assert not any(e.flow_run_truncated for e in watch.batched)
    assert sum(1 for m in watch.messages if m.WhichOneof("message") == "events") > 1
    assert all(m.ByteSize() <= SEND_LIMIT for m in watch.messages)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_response_bytes": 32 * 1024},  # below what a truncated event (and its cursor) needs
        {"max_message_bytes": 32 * 1024},
        {"max_parameter_bytes": 4 * 1024 * 1024},  # parameters at the limit could never be sent back
        {"max_response_bytes": 1024 * 1024, "max_parameter_bytes": 1024 * 1024},
    ],
)
def test_settings_that_make_ordinary_runs_undeliverable_are_refused(settings):
    with pytest.raises(ValidationError):
        Settings(database_url="sqlite+aiosqlite:///unused.db", **settings)
