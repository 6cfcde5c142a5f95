import datetime

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

class CollisionStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLISION_STRATEGY_UNSPECIFIED: _ClassVar[CollisionStrategy]
    COLLISION_STRATEGY_ENQUEUE: _ClassVar[CollisionStrategy]
    COLLISION_STRATEGY_CANCEL_NEW: _ClassVar[CollisionStrategy]
COLLISION_STRATEGY_UNSPECIFIED: CollisionStrategy
COLLISION_STRATEGY_ENQUEUE: CollisionStrategy
COLLISION_STRATEGY_CANCEL_NEW: CollisionStrategy

class ConcurrencyOptions(_message.Message):
    __slots__ = ("collision_strategy", "grace_period")
    COLLISION_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    collision_strategy: CollisionStrategy
    grace_period: _duration_pb2.Duration
    def __init__(self, collision_strategy: _Optional[_Union[CollisionStrategy, str]] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("id", "created", "updated", "name", "flow_id", "version", "work_pool_name", "work_queue_name", "work_queue_id", "paused", "tags", "labels", "parameters", "job_variables", "concurrency_limit", "concurrency_options", "active_slots", "heartbeat_timeout")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    name: str
    flow_id: str
    version: str
    work_pool_name: str
    work_queue_name: str
    work_queue_id: str
    paused: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    parameters: _struct_pb2.Struct
    job_variables: _struct_pb2.Struct
    concurrency_limit: int
    concurrency_options: ConcurrencyOptions
    active_slots: int
    heartbeat_timeout: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., flow_id: _Optional[str] = ..., version: _Optional[str] = ..., work_pool_name: _Optional[str] = ..., work_queue_name: _Optional[str] = ..., work_queue_id: _Optional[str] = ..., paused: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., job_variables: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., concurrency_limit: _Optional[int] = ..., concurrency_options: _Optional[_Union[ConcurrencyOptions, _Mapping]] = ..., active_slots: _Optional[int] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
