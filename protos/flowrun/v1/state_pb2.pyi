import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StateType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_TYPE_UNSPECIFIED: _ClassVar[StateType]
    STATE_TYPE_SCHEDULED: _ClassVar[StateType]
    STATE_TYPE_PENDING: _ClassVar[StateType]
    STATE_TYPE_RUNNING: _ClassVar[StateType]
    STATE_TYPE_COMPLETED: _ClassVar[StateType]
    STATE_TYPE_FAILED: _ClassVar[StateType]
    STATE_TYPE_CANCELLED: _ClassVar[StateType]
    STATE_TYPE_CRASHED: _ClassVar[StateType]
    STATE_TYPE_PAUSED: _ClassVar[StateType]
    STATE_TYPE_CANCELLING: _ClassVar[StateType]

class SetStateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SET_STATE_STATUS_UNSPECIFIED: _ClassVar[SetStateStatus]
    SET_STATE_STATUS_ACCEPT: _ClassVar[SetStateStatus]
    SET_STATE_STATUS_REJECT: _ClassVar[SetStateStatus]
    SET_STATE_STATUS_ABORT: _ClassVar[SetStateStatus]
    SET_STATE_STATUS_WAIT: _ClassVar[SetStateStatus]
STATE_TYPE_UNSPECIFIED: StateType
STATE_TYPE_SCHEDULED: StateType
STATE_TYPE_PENDING: StateType
STATE_TYPE_RUNNING: StateType
STATE_TYPE_COMPLETED: StateType
STATE_TYPE_FAILED: StateType
STATE_TYPE_CANCELLED: StateType
STATE_TYPE_CRASHED: StateType
STATE_TYPE_PAUSED: StateType
STATE_TYPE_CANCELLING: StateType
SET_STATE_STATUS_UNSPECIFIED: SetStateStatus
SET_STATE_STATUS_ACCEPT: SetStateStatus
SET_STATE_STATUS_REJECT: SetStateStatus
SET_STATE_STATUS_ABORT: SetStateStatus
SET_STATE_STATUS_WAIT: SetStateStatus

class StateDetails(_message.Message):
    __slots__ = ("flow_run_id", "task_run_id", "child_flow_run_id", "scheduled_time", "cache_key", "cache_expiration", "deferred", "untrackable_result", "pause_timeout", "pause_reschedule", "pause_key", "run_input_keyset", "refresh_cache", "retriable", "transition_id", "task_parameters_id", "traceparent", "deployment_concurrency_lease_id")
    class RunInputKeysetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CHILD_FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    UNTRACKABLE_RESULT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_RESCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_INPUT_KEYSET_FIELD_NUMBER: _ClassVar[int]
    REFRESH_CACHE_FIELD_NUMBER: _ClassVar[int]
    RETRIABLE_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_PARAMETERS_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_CONCURRENCY_LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    task_run_id: str
    child_flow_run_id: str
    scheduled_time: _timestamp_pb2.Timestamp
    cache_key: str
    cache_expiration: _timestamp_pb2.Timestamp
    deferred: bool
    untrackable_result: bool
    pause_timeout: _timestamp_pb2.Timestamp
    pause_reschedule: bool
    pause_key: str
    run_input_keyset: _containers.ScalarMap[str, str]
    refresh_cache: bool
    retriable: bool
    transition_id: str
    task_parameters_id: str
    traceparent: str
    deployment_concurrency_lease_id: str
    def __init__(self, flow_run_id: _Optional[str] = ..., task_run_id: _Optional[str] = ..., child_flow_run_id: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cache_key: _Optional[str] = ..., cache_expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deferred: _Optional[bool] = ..., untrackable_result: _Optional[bool] = ..., pause_timeout: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pause_reschedule: _Optional[bool] = ..., pause_key: _Optional[str] = ..., run_input_keyset: _Optional[_Mapping[str, str]] = ..., refresh_cache: _Optional[bool] = ..., retriable: _Optional[bool] = ..., transition_id: _Optional[str] = ..., task_parameters_id: _Optional[str] = ..., traceparent: _Optional[str] = ..., deployment_concurrency_lease_id: _Optional[str] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("id", "type", "name", "timestamp", "message", "data", "state_details")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: StateType
    name: str
    timestamp: _timestamp_pb2.Timestamp
    message: str
    data: _struct_pb2.Value
    state_details: StateDetails
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[StateType, str]] = ..., name: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., state_details: _Optional[_Union[StateDetails, _Mapping]] = ...) -> None: ...

class StateCreate(_message.Message):
    __slots__ = ("type", "name", "message", "data", "state_details")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STATE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    type: StateType
    name: str
    message: str
    data: _struct_pb2.Value
    state_details: StateDetails
    def __init__(self, type: _Optional[_Union[StateType, str]] = ..., name: _Optional[str] = ..., message: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., state_details: _Optional[_Union[StateDetails, _Mapping]] = ...) -> None: ...

class AcceptDetails(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RejectDetails(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class AbortDetails(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class WaitDetails(_message.Message):
    __slots__ = ("delay", "reason")
    DELAY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    delay: _duration_pb2.Duration
    reason: str
    def __init__(self, delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...
