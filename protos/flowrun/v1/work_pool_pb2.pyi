import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkPool(_message.Message):
    __slots__ = ("id", "created", "updated", "name", "type", "description", "is_paused", "concurrency_limit", "default_queue_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    name: str
    type: str
    description: str
    is_paused: bool
    concurrency_limit: int
    default_queue_id: str
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., is_paused: _Optional[bool] = ..., concurrency_limit: _Optional[int] = ..., default_queue_id: _Optional[str] = ...) -> None: ...

class WorkQueue(_message.Message):
    __slots__ = ("id", "created", "updated", "name", "work_pool_id", "work_pool_name", "priority", "concurrency_limit", "is_paused", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    IS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    name: str
    work_pool_id: str
    work_pool_name: str
    priority: int
    concurrency_limit: int
    is_paused: bool
    description: str
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., work_pool_id: _Optional[str] = ..., work_pool_name: _Optional[str] = ..., priority: _Optional[int] = ..., concurrency_limit: _Optional[int] = ..., is_paused: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...
