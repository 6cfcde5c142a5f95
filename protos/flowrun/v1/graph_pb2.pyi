import datetime

from flowrun.v1 import state_pb2 as _state_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GraphNodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRAPH_NODE_KIND_UNSPECIFIED: _ClassVar[GraphNodeKind]
    GRAPH_NODE_KIND_TASK_RUN: _ClassVar[GraphNodeKind]
    GRAPH_NODE_KIND_FLOW_RUN: _ClassVar[GraphNodeKind]
GRAPH_NODE_KIND_UNSPECIFIED: GraphNodeKind
GRAPH_NODE_KIND_TASK_RUN: GraphNodeKind
GRAPH_NODE_KIND_FLOW_RUN: GraphNodeKind

class TaskRunDependency(_message.Message):
    __slots__ = ("task_run_id", "name", "upstream_task_run_ids", "state", "expected_start_time", "start_time", "end_time", "total_run_time", "estimated_run_time", "untrackable_result")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_TASK_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    UNTRACKABLE_RESULT_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    name: str
    upstream_task_run_ids: _containers.RepeatedScalarFieldContainer[str]
    state: _state_pb2.State
    expected_start_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_run_time: _duration_pb2.Duration
    estimated_run_time: _duration_pb2.Duration
    untrackable_result: bool
    def __init__(self, task_run_id: _Optional[str] = ..., name: _Optional[str] = ..., upstream_task_run_ids: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[_state_pb2.State, _Mapping]] = ..., expected_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., untrackable_result: _Optional[bool] = ...) -> None: ...

class GraphArtifact(_message.Message):
    __slots__ = ("id", "created", "key", "type", "is_latest", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IS_LATEST_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    key: str
    type: str
    is_latest: bool
    data: _struct_pb2.Value
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key: _Optional[str] = ..., type: _Optional[str] = ..., is_latest: _Optional[bool] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class GraphState(_message.Message):
    __slots__ = ("id", "timestamp", "type", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    timestamp: _timestamp_pb2.Timestamp
    type: _state_pb2.StateType
    name: str
    def __init__(self, id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[_state_pb2.StateType, str]] = ..., name: _Optional[str] = ...) -> None: ...

class GraphNode(_message.Message):
    __slots__ = ("kind", "id", "label", "state_type", "start_time", "end_time", "parent_ids", "child_ids", "encapsulating_ids", "artifacts")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHILD_IDS_FIELD_NUMBER: _ClassVar[int]
    ENCAPSULATING_IDS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    kind: GraphNodeKind
    id: str
    label: str
    state_type: _state_pb2.StateType
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    parent_ids: _containers.RepeatedScalarFieldContainer[str]
    child_ids: _containers.RepeatedScalarFieldContainer[str]
    encapsulating_ids: _containers.RepeatedScalarFieldContainer[str]
    artifacts: _containers.RepeatedCompositeFieldContainer[GraphArtifact]
    def __init__(self, kind: _Optional[_Union[GraphNodeKind, str]] = ..., id: _Optional[str] = ..., label: _Optional[str] = ..., state_type: _Optional[_Union[_state_pb2.StateType, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parent_ids: _Optional[_Iterable[str]] = ..., child_ids: _Optional[_Iterable[str]] = ..., encapsulating_ids: _Optional[_Iterable[str]] = ..., artifacts: _Optional[_Iterable[_Union[GraphArtifact, _Mapping]]] = ...) -> None: ...

class FlowRunGraph(_message.Message):
    __slots__ = ("start_time", "end_time", "root_node_ids", "nodes", "artifacts", "states")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ROOT_NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    root_node_ids: _containers.RepeatedScalarFieldContainer[str]
    nodes: _containers.RepeatedCompositeFieldContainer[GraphNode]
    artifacts: _containers.RepeatedCompositeFieldContainer[GraphArtifact]
    states: _containers.RepeatedCompositeFieldContainer[GraphState]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., root_node_ids: _Optional[_Iterable[str]] = ..., nodes: _Optional[_Iterable[_Union[GraphNode, _Mapping]]] = ..., artifacts: _Optional[_Iterable[_Union[GraphArtifact, _Mapping]]] = ..., states: _Optional[_Iterable[_Union[GraphState, _Mapping]]] = ...) -> None: ...
