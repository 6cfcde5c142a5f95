import datetime

from flowrun.v1 import state_pb2 as _state_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskRunInput(_message.Message):
    __slots__ = ("task_run_id", "flow_run_id", "parameter", "constant_type")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_TYPE_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    flow_run_id: str
    parameter: str
    constant_type: str
    def __init__(self, task_run_id: _Optional[str] = ..., flow_run_id: _Optional[str] = ..., parameter: _Optional[str] = ..., constant_type: _Optional[str] = ...) -> None: ...

class TaskRunInputs(_message.Message):
    __slots__ = ("inputs",)
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[TaskRunInput]
    def __init__(self, inputs: _Optional[_Iterable[_Union[TaskRunInput, _Mapping]]] = ...) -> None: ...

class TaskRunPolicy(_message.Message):
    __slots__ = ("retries", "retry_delay", "retry_jitter_factor")
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    RETRY_JITTER_FACTOR_FIELD_NUMBER: _ClassVar[int]
    retries: int
    retry_delay: _duration_pb2.Duration
    retry_jitter_factor: float
    def __init__(self, retries: _Optional[int] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_jitter_factor: _Optional[float] = ...) -> None: ...

class TaskRun(_message.Message):
    __slots__ = ("id", "created", "updated", "name", "flow_run_id", "task_key", "dynamic_key", "cache_key", "cache_expiration", "task_version", "empirical_policy", "tags", "labels", "task_inputs", "state_id", "state_type", "state_name", "run_count", "flow_run_run_count", "expected_start_time", "next_scheduled_start_time", "start_time", "end_time", "total_run_time", "estimated_run_time", "state")
    class TaskInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TaskRunInputs
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TaskRunInputs, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    TASK_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMPIRICAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_INPUTS_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_SCHEDULED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    name: str
    flow_run_id: str
    task_key: str
    dynamic_key: str
    cache_key: str
    cache_expiration: _timestamp_pb2.Timestamp
    task_version: str
    empirical_policy: TaskRunPolicy
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    task_inputs: _containers.MessageMap[str, TaskRunInputs]
    state_id: str
    state_type: _state_pb2.StateType
    state_name: str
    run_count: int
    flow_run_run_count: int
    expected_start_time: _timestamp_pb2.Timestamp
    next_scheduled_start_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_run_time: _duration_pb2.Duration
    estimated_run_time: _duration_pb2.Duration
    state: _state_pb2.State
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., flow_run_id: _Optional[str] = ..., task_key: _Optional[str] = ..., dynamic_key: _Optional[str] = ..., cache_key: _Optional[str] = ..., cache_expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_version: _Optional[str] = ..., empirical_policy: _Optional[_Union[TaskRunPolicy, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., task_inputs: _Optional[_Mapping[str, TaskRunInputs]] = ..., state_id: _Optional[str] = ..., state_type: _Optional[_Union[_state_pb2.StateType, str]] = ..., state_name: _Optional[str] = ..., run_count: _Optional[int] = ..., flow_run_run_count: _Optional[int] = ..., expected_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_scheduled_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., state: _Optional[_Union[_state_pb2.State, _Mapping]] = ...) -> None: ...
