import datetime

from flowrun.v1 import flow_run_pb2 as _flow_run_pb2
from flowrun.v1 import state_pb2 as _state_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowRunEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_RUN_EVENT_KIND_UNSPECIFIED: _ClassVar[FlowRunEventKind]
    FLOW_RUN_EVENT_KIND_CREATED: _ClassVar[FlowRunEventKind]
    FLOW_RUN_EVENT_KIND_STATE_CHANGED: _ClassVar[FlowRunEventKind]
    FLOW_RUN_EVENT_KIND_UPDATED: _ClassVar[FlowRunEventKind]
    FLOW_RUN_EVENT_KIND_DELETED: _ClassVar[FlowRunEventKind]
FLOW_RUN_EVENT_KIND_UNSPECIFIED: FlowRunEventKind
FLOW_RUN_EVENT_KIND_CREATED: FlowRunEventKind
FLOW_RUN_EVENT_KIND_STATE_CHANGED: FlowRunEventKind
FLOW_RUN_EVENT_KIND_UPDATED: FlowRunEventKind
FLOW_RUN_EVENT_KIND_DELETED: FlowRunEventKind

class FlowRunEvent(_message.Message):
    __slots__ = ("cursor", "kind", "time", "flow_run", "state", "previous_state_type", "flow_run_truncated")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    kind: FlowRunEventKind
    time: _timestamp_pb2.Timestamp
    flow_run: _flow_run_pb2.FlowRun
    state: _state_pb2.State
    previous_state_type: _state_pb2.StateType
    flow_run_truncated: bool
    def __init__(self, cursor: _Optional[str] = ..., kind: _Optional[_Union[FlowRunEventKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., flow_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ..., state: _Optional[_Union[_state_pb2.State, _Mapping]] = ..., previous_state_type: _Optional[_Union[_state_pb2.StateType, str]] = ..., flow_run_truncated: _Optional[bool] = ...) -> None: ...

class FlowRunEventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FlowRunEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[FlowRunEvent, _Mapping]]] = ...) -> None: ...
