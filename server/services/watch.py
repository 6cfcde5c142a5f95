"""WatchFlowRuns and WatchFlowRun: requests into a start position and a filter, the
stream (server/watch/stream.py) into response messages.

Every live stream sends the same events, so each event is serialized once (in the
`Watcher`) and the streams send bytes: a single-event response is the event's encoded
field, a batch the concatenation of those inside the batch field (protobuf's wire
format: a repeated message field is its elements' encodings one after the other).
`PreEncodedResponses` gives the two Watch methods a response serializer that passes
those bytes through (and serializes the other messages, snapshot and progress, as
usual); the other interceptors keep wrapping the handler as before.

No message carrying events is larger than the send limit nor than gRPC's default
receive limit (4 MiB): an event that would be is sent truncated (`truncated`), so no
event can stop a stream, and every resume, at itself. (A `snapshot_run` is a whole run:
it still fails the stream when it is over the send limit.)

When the server stops, a stream ends between two messages (ShuttingDown: UNAVAILABLE
with the cursor of the last message it sent), not only between two reads: a stream
sending a long catch-up read, or slowed down by a busy process, ends within the shutdown
grace too. Every call counts with the hub until its status is out (server/watch/hub.py),
and one that begins while the server stops ends at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any

import grpc
from google.protobuf.message import Message

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.events import EventKind, FlowRunEvent
from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.repositories.flow_run_events import Position
from flowrun.server.services import filters_from_proto, to_proto
from flowrun.server.services.from_proto import required_uuid
from flowrun.server.watch import cursor as cursors
from flowrun.server.watch.filter import TagsFilter, ValueFilter, WatchFilter, only_run
from flowrun.server.watch.hub import EventHub
from flowrun.server.watch.stream import Sent, expired, follow, shutting_down
from flowrun.server.watch.tail import Tail
from flowrun.v1 import filters_pb2, flow_run_event_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as pb

SNAPSHOT_PAGE = 200
#: The encoded-event cache (EncodedEventCache): at most this many events, this many bytes
#: of them in all, and none larger than BUILT_EVENT_MAX_BYTES (such an event, which only a
#: run with megabytes of parameters or state data makes, is encoded for each stream).
BUILT_EVENTS_KEPT = 4096
BUILT_EVENTS_MAX_BYTES = 64 * 1024 * 1024
BUILT_EVENT_MAX_BYTES = BUILT_EVENTS_MAX_BYTES // 32
#: gRPC's default receive limit: no watch message is larger, so every client can read
#: every one without raising its limit (a stream is stuck on a message its client refuses).
GRPC_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024
#: The most a batch adds around its events: the field's key (1 byte) and length (a varint
#: of at most 5 bytes for any length below 32 GiB).
BATCH_FRAMING_BYTES = 6
#: What a truncated event keeps (see FlowRunEvent.flow_run_truncated): fields whose size
#: validation bounds (ids, names of at most 200 characters, times, enums).
TRUNCATED_RUN_FIELDS = (
    "id",
    "flow_id",
    "deployment_id",
    "name",
    "state_id",
    "state_type",
    "state_name",
    "created",
    "updated",
)
TRUNCATED_STATE_FIELDS = ("id", "type", "name", "timestamp")
_SERVICE = pb.DESCRIPTOR.services_by_name["FlowRunService"].full_name
WATCH_METHODS = frozenset(f"/{_SERVICE}/{name}" for name in ("WatchFlowRuns", "WatchFlowRun"))
_KINDS: dict[EventKind, Any] = {
    kind: flow_run_event_pb2.FlowRunEventKind.Value(f"FLOW_RUN_EVENT_KIND_{kind.value}") for kind in EventKind
}


class EncodedEventCache:
    """Encoded events by (sequence, position), oldest dropped first, bounded by entries
    and by bytes: every live stream sends the same events, and they sit close together
    in time, so the recent ones are what the streams ask for. Bounded by entries alone it
    held up to 4,096 events of up to 4 MiB each (~16 GiB) for the process's life; the
    byte bound keeps it within BUILT_EVENTS_MAX_BYTES whatever the events, and the entry
    bound keeps one large event from pushing out thousands of the usual small ones."""

    def __init__(
        self,
        max_entries: int = BUILT_EVENTS_KEPT,
        max_bytes: int = BUILT_EVENTS_MAX_BYTES,
        max_entry_bytes: int = BUILT_EVENT_MAX_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[int, Position], bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[int, Position]) -> bytes | None:
        return self._entries.get(key)

    def put(self, key: tuple[int, Position], encoded: bytes) -> None:
        """Keeps `encoded` unless it is over the entry bound, dropping the oldest entries
        until both bounds hold."""
        if len(encoded) > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = encoded
        self.bytes += len(encoded)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= len(dropped)


class Watcher:
    """What both RPCs share: the database, the hub and the cursor key."""

    def __init__(self, database: Database, settings: Settings, hub: EventHub) -> None:
        self.database = database
        self.settings = settings
        self.hub = hub
        self.tail = Tail(database, hub, settings)
        # Encoded events: every live stream sends the same ones, so each is built (run
        # converted, cursor signed) and serialized once while it is recent.
        self._built = EncodedEventCache()
        self._filters: weakref.WeakValueDictionary[WatchFilter, WatchFilter] = weakref.WeakValueDictionary()
        # The most one encoded event may take: a batch of it alone, and so any message of
        # a Watch stream, is then within both the send limit and the default receive limit.
        send_limit = settings.send_limit_bytes
        self.event_budget = min(send_limit, GRPC_DEFAULT_RECEIVE_BYTES) - BATCH_FRAMING_BYTES

    def encode(self, position: Position) -> str:
        return cursors.encode(position, self.settings.resolved_page_token_secret)

    async def start_position(self, cursor: str) -> Position:
        """The position `cursor` names, checked against retention; or now."""
        async with self.database.unit_of_work(write=False) as uow:
            if not cursor:
                return await uow.repos.flow_run_events.head()
            position, xmax_known = cursors.decode(cursor, self.settings.resolved_page_token_secret)
            pruned = await uow.repos.flow_run_events.pruned_through()
            if position.after < pruned:
                raise expired(self.settings)
            if not xmax_known:  # a version 2 cursor: see server/watch/cursor.py
                writer = await uow.repos.flow_run_events.writer_of(position.after)
                position = replace(position, xmax=writer + 1 if writer is not None else 0)
        return position

    def follow(self, start: Position, match: WatchFilter) -> AsyncGenerator[list[Sent]]:
        # Equal filters become one object, which the shared reader evaluates once per event
        # for all their streams (kept while a stream holds it).
        match = self._filters.setdefault(match, match)
        return follow(self.database, self.hub, self.tail, self.settings, start, match.matches, self.encode)

    def end_if_closing(self, sent: Position | None) -> None:
        """Before each message: when the server is stopping the stream ends here, resumable
        from `sent`, the position of what it has sent (None: its snapshot is incomplete)."""
        if self.hub.closing:
            raise shutting_down(None if sent is None else self.encode(sent.resumable))

    def encoded(self, event: FlowRunEvent, position: Position) -> bytes:
        """The event as the `event` field (1) of either response, which is also one element
        of a FlowRunEventBatch's `events` (1): encoded once for every stream that sends it
        (recent ones are kept: EncodedEventCache). At most `event_budget` bytes: an event
        over it is encoded again, truncated (only those are encoded twice)."""
        key = (event.sequence, position)
        framed = self._built.get(key)
        if framed is None:
            message = self._build(event, position)
            framed = encoded_event(message.SerializeToString())
            if len(framed) > self.event_budget:
                framed = encoded_event(truncated(message).SerializeToString())
            self._built.put(key, framed)
        return framed

    @property
    def cached_bytes(self) -> int:
        """The bytes of encoded events kept (at most BUILT_EVENTS_MAX_BYTES)."""
        return self._built.bytes

    def batches(self, chunk: list[Sent]) -> list[tuple[bytes, Position]]:
        """WatchFlowRunsResponses whose `events` batches hold the chunk's events, in order,
        each within the message limit (every encoded event fits one on its own), each with
        the position of its last event."""
        budget = self.event_budget
        messages: list[tuple[bytes, Position]] = []
        group: list[bytes] = []
        size = 0
        through = chunk[0].position
        for sent in chunk:
            if sent.event is None:
                continue
            encoded = self.encoded(sent.event, sent.position)
            if group and size + len(encoded) > budget:
                messages.append((encoded_batch(group), through))
                group, size = [], 0
            group.append(encoded)
            size += len(encoded)
            through = sent.position
        if group:
            messages.append((encoded_batch(group), through))
        return messages

    def _build(self, event: FlowRunEvent, position: Position) -> flow_run_event_pb2.FlowRunEvent:
        message = flow_run_event_pb2.FlowRunEvent(
            cursor=self.encode(position),
            kind=_KINDS[event.kind],
            flow_run=to_proto.flow_run(event.run, clock.now()),
        )
        message.time.FromDatetime(event.occurred)
        if event.state is not None:
            message.state.CopyFrom(to_proto.state(event.state))
        if event.previous_state_type is not None:
            previous: Any = state_pb2.StateType.Value(f"STATE_TYPE_{event.previous_state_type.value}")
            message.previous_state_type = previous
        return message

    def progress(self, position: Position, *, snapshot_complete: bool = False) -> pb.WatchProgress:
        message = pb.WatchProgress(cursor=self.encode(position), snapshot_complete=snapshot_complete)
        message.time.FromDatetime(clock.now())
        return message


async def watch_flow_runs(
    watcher: Watcher, request: pb.WatchFlowRunsRequest
) -> AsyncIterator[pb.WatchFlowRunsResponse | bytes]:
    """Response messages, and events already encoded (bytes; see the module docstring)."""
    watcher.hub.track(asyncio.current_task())
    match = watch_filter(request.flow_run_filter) if request.HasField("flow_run_filter") else WatchFilter()
    start = await watcher.start_position(request.cursor)
    if not request.cursor and request.start == pb.WATCH_START_SNAPSHOT:
        watcher.end_if_closing(None)
        async with contextlib.aclosing(_snapshot(watcher, request, match)) as snapshot:
            async for run in snapshot:
                watcher.end_if_closing(None)
                yield pb.WatchFlowRunsResponse(snapshot_run=to_proto.flow_run(run, clock.now()))
        watcher.end_if_closing(None)
        yield pb.WatchFlowRunsResponse(progress=watcher.progress(start, snapshot_complete=True))
    sent = start
    async with contextlib.aclosing(watcher.follow(start, match)) as chunks:
        async for chunk in chunks:
            if chunk[0].event is None:
                watcher.end_if_closing(sent)
                yield pb.WatchFlowRunsResponse(progress=watcher.progress(chunk[0].position))
                sent = chunk[0].position
            elif request.batch:
                for message, through in watcher.batches(chunk):
                    watcher.end_if_closing(sent)
                    yield message
                    sent = through
            else:
                for item in chunk:
                    assert item.event is not None
                    watcher.end_if_closing(sent)
                    yield watcher.encoded(item.event, item.position)
                    sent = item.position


async def watch_flow_run(
    watcher: Watcher, request: pb.WatchFlowRunRequest
) -> AsyncIterator[pb.WatchFlowRunResponse | bytes]:
    watcher.hub.track(asyncio.current_task())
    flow_run_id = required_uuid(request.flow_run_id, "flow_run_id")
    start = await watcher.start_position(request.cursor)
    if not request.cursor:
        watcher.end_if_closing(None)
        async with watcher.database.unit_of_work(write=False) as uow:
            run = await uow.repos.flow_runs.get(flow_run_id)
        if run is None:
            raise errors.flow_run_not_found(flow_run_id)
        watcher.end_if_closing(None)
        yield pb.WatchFlowRunResponse(snapshot_run=to_proto.flow_run(run, clock.now()))
        if _is_terminal(run) and not request.keep_going:
            return
    sent = start
    async with contextlib.aclosing(watcher.follow(start, only_run(flow_run_id))) as chunks:
        async for chunk in chunks:
            for item in chunk:
                watcher.end_if_closing(sent)
                if item.event is None:
                    yield pb.WatchFlowRunResponse(progress=watcher.progress(item.position))
                else:
                    yield watcher.encoded(item.event, item.position)
                sent = item.position
                if item.event is not None and _ends_watch_of_run(item.event, request.keep_going):
                    return


class PreEncodedResponses(grpc.aio.ServerInterceptor):
    """Innermost: the Watch methods' responses may be bytes already encoded (sent as
    they are); every other method's handler is untouched. The wrapped handlers are
    built once per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in WATCH_METHODS or handler.unary_stream is None:
            return handler
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            serialize = handler.response_serializer
            wrapped = grpc.unary_stream_rpc_method_handler(
                handler.unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=lambda message: message if isinstance(message, bytes) else serialize(message),
            )
            cached = self._wrapped[method] = (handler, wrapped)
        return cached[1]


def truncated(event: flow_run_event_pb2.FlowRunEvent) -> flow_run_event_pb2.FlowRunEvent:
    """The event with only the fields whose size is bounded (TRUNCATED_*_FIELDS) of its
    run and state, marked `flow_run_truncated`: it fits any send limit the settings
    allow (server/config.py), cursor included."""
    small = flow_run_event_pb2.FlowRunEvent(cursor=event.cursor, kind=event.kind, time=event.time)
    if event.HasField("previous_state_type"):
        small.previous_state_type = event.previous_state_type
    _copy(event.flow_run, small.flow_run, TRUNCATED_RUN_FIELDS)
    if event.HasField("state"):
        _copy(event.state, small.state, TRUNCATED_STATE_FIELDS)
    small.flow_run_truncated = True
    return small


def _copy(source: Message, target: Message, fields: tuple[str, ...]) -> None:
    for name in fields:
        if source.DESCRIPTOR.fields_by_name[name].message_type is None:
            setattr(target, name, getattr(source, name))
        elif source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))


def encoded_event(body: bytes) -> bytes:
    """A serialized FlowRunEvent as field 1 of a response (or one element of a batch)."""
    return _EVENT_TAG + cursors.varint(len(body)) + body


def encoded_batch(events: list[bytes]) -> bytes:
    """A WatchFlowRunsResponse whose `events` batch holds these `encoded_event`s."""
    inner = b"".join(events)
    return _BATCH_TAG + cursors.varint(len(inner)) + inner


def _tag(message: Any, field: str) -> bytes:
    """A length-delimited field's key: (number << 3) | 2."""
    return cursors.varint(message.DESCRIPTOR.fields_by_name[field].number << 3 | 2)


_EVENT_TAG = _tag(pb.WatchFlowRunsResponse, "event")
assert _EVENT_TAG == _tag(pb.WatchFlowRunResponse, "event") == _tag(flow_run_event_pb2.FlowRunEventBatch, "events")
_BATCH_TAG = _tag(pb.WatchFlowRunsResponse, "events")


def _ends_watch_of_run(event: FlowRunEvent, keep_going: bool) -> bool:
    """WatchFlowRun ends after the run's deletion, and after its terminal state unless asked to keep going."""
    if event.kind == EventKind.DELETED:
        return True
    return event.state is not None and event.state.is_terminal and not keep_going


def _is_terminal(run: FlowRun) -> bool:
    return run.state_type is not None and run.state_type.is_terminal


async def _snapshot(watcher: Watcher, request: pb.WatchFlowRunsRequest, match: WatchFilter) -> AsyncGenerator[FlowRun]:
    """Every matching run as it is now, page by page (each page its own short read)."""
    token = ""
    while True:
        listing = pb.ListFlowRunsRequest(
            flow_run_filter=request.flow_run_filter, page_size=SNAPSHOT_PAGE, page_token=token
        )
        filters = filters_from_proto.list_filters(listing)
        sort = filters_from_proto.flow_run_sort(listing.sort)
        page = filters_from_proto.page_request(listing, max_bytes=watcher.settings.page_max_bytes)
        async with watcher.database.unit_of_work(write=False) as uow:
            runs, token = await uow.repos.flow_runs.list_page(
                filters, sort, page, secret=watcher.settings.resolved_page_token_secret
            )
        for run in runs:
            if match.matches_run(run):
                yield run
        if not token:
            return


# The filter: the supported part of FlowRunFilter.

_SUPPORTED = {"id", "flow_id", "deployment_id", "tags", "state"}


def watch_filter(message: filters_pb2.FlowRunFilter) -> WatchFilter:
    """The supported fields of a FlowRunFilter (see WatchFlowRuns); INVALID_ARGUMENT
    naming every other field that is set."""
    violations: list[tuple[str, str]] = []
    root = "flow_run_filter"
    if message.operator == filters_pb2.FILTER_OPERATOR_OR:
        violations.append((f"{root}.operator", "WatchFlowRuns combines criteria with AND only"))
    for descriptor, _value in message.ListFields():
        if descriptor.name not in _SUPPORTED and descriptor.name != "operator":
            violations.append((f"{root}.{descriptor.name}", "not supported by WatchFlowRuns"))
    state_type = None
    if message.HasField("state"):
        state = message.state
        for descriptor, _value in state.ListFields():
            if descriptor.name != "type" and descriptor.name != "operator":
                violations.append((f"{root}.state.{descriptor.name}", "not supported by WatchFlowRuns"))
        if state.HasField("type"):
            t = state.type
            state_type = ValueFilter(
                any=_strict(_types(t.any, f"{root}.state.type.any", violations), _strict_flag(t)),
                not_any=frozenset(_types(t.not_any, f"{root}.state.type.not_any", violations)),
            )
    result = WatchFilter(
        id=_ids(message, "id", root, violations),
        flow_id=_ids(message, "flow_id", root, violations),
        deployment_id=_ids(message, "deployment_id", root, violations),
        tags=_tags(message, root, violations),
        state_type=state_type,
    )
    if violations:
        raise errors.InvalidArgument(violations)
    return result


def _strict_flag(message: Message) -> bool:
    return bool(getattr(message, "strict_any", False))


def _strict(values: list[str], strict: bool) -> frozenset[str] | None:
    return frozenset(values) if values or strict else None


def _ids(
    message: filters_pb2.FlowRunFilter, name: str, root: str, violations: list[tuple[str, str]]
) -> ValueFilter | None:
    if not message.HasField(name):
        return None
    sub = getattr(message, name)
    path = f"{root}.{name}"
    if sub.operator == filters_pb2.FILTER_OPERATOR_OR:
        violations.append((f"{path}.operator", "WatchFlowRuns combines criteria with AND only"))
    return ValueFilter(
        any=_strict(_uuids(sub.any, f"{path}.any", violations), _strict_flag(sub)),
        not_any=frozenset(_uuids(sub.not_any, f"{path}.not_any", violations)),
        is_null=sub.is_null if sub.HasField("is_null") else None,
    )


def _uuids(values: Any, path: str, violations: list[tuple[str, str]]) -> list[str]:
    out = []
    for index, value in enumerate(values):
        try:
            out.append(str(uuid.UUID(value)))
        except (ValueError, AttributeError, TypeError):
            violations.append((f"{path}[{index}]", "must be a UUID"))
    return out


def _types(values: Any, path: str, violations: list[tuple[str, str]]) -> list[str]:
    out = []
    for index, value in enumerate(values):
        name = state_pb2.StateType.Name(value) if value in state_pb2.StateType.values() else ""
        if not name.startswith("STATE_TYPE_") or value == 0:
            violations.append((f"{path}[{index}]", "must be a known state type"))
            continue
        out.append(name.removeprefix("STATE_TYPE_"))
    return out


def _tags(message: filters_pb2.FlowRunFilter, root: str, violations: list[tuple[str, str]]) -> TagsFilter | None:
    if not message.HasField("tags"):
        return None
    sub = message.tags
    if sub.operator == filters_pb2.FILTER_OPERATOR_OR:
        violations.append((f"{root}.tags.operator", "WatchFlowRuns combines criteria with AND only"))
    return TagsFilter(
        all=frozenset(sub.all),
        any=_strict(list(sub.any), _strict_flag(sub)),
        is_null=sub.is_null if sub.HasField("is_null") else None,
    )
