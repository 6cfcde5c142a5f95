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

class RetryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRY_TYPE_UNSPECIFIED: _ClassVar[RetryType]
    RETRY_TYPE_IN_PROCESS: _ClassVar[RetryType]
    RETRY_TYPE_RESCHEDULE: _ClassVar[RetryType]
RETRY_TYPE_UNSPECIFIED: RetryType
RETRY_TYPE_IN_PROCESS: RetryType
RETRY_TYPE_RESCHEDULE: RetryType

class FlowRunPolicy(_message.Message):
    __slots__ = ("max_retries", "retry_delay_seconds", "retries", "retry_delay", "pause_keys", "resuming", "retry_type")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    PAUSE_KEYS_FIELD_NUMBER: _ClassVar[int]
    RESUMING_FIELD_NUMBER: _ClassVar[int]
    RETRY_TYPE_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    retry_delay_seconds: float
    retries: int
    retry_delay: _duration_pb2.Duration
    pause_keys: _containers.RepeatedScalarFieldContainer[str]
    resuming: bool
    retry_type: RetryType
    def __init__(self, max_retries: _Optional[int] = ..., retry_delay_seconds: _Optional[float] = ..., retries: _Optional[int] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pause_keys: _Optional[_Iterable[str]] = ..., resuming: _Optional[bool] = ..., retry_type: _Optional[_Union[RetryType, str]] = ...) -> None: ...

class CreatedBy(_message.Message):
    __slots__ = ("id", "type", "display_value")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    display_value: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., display_value: _Optional[str] = ...) -> None: ...

class FlowRun(_message.Message):
    __slots__ = ("id", "created", "updated", "name", "flow_id", "state_id", "deployment_id", "deployment_version", "work_queue_id", "work_queue_name", "flow_version", "parameters", "idempotency_key", "context", "empirical_policy", "tags", "labels", "parent_task_run_id", "state_type", "state_name", "run_count", "expected_start_time", "next_scheduled_start_time", "start_time", "end_time", "total_run_time", "estimated_run_time", "estimated_start_time_delta", "auto_scheduled", "infrastructure_document_id", "infrastructure_pid", "created_by", "work_pool_id", "work_pool_name", "state", "job_variables", "heartbeat_timeout", "last_heartbeat_time", "heartbeat_deadline")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EMPIRICAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_SCHEDULED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_START_TIME_DELTA_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    INFRASTRUCTURE_DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INFRASTRUCTURE_PID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    id: str
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    name: str
    flow_id: str
    state_id: str
    deployment_id: str
    deployment_version: str
    work_queue_id: str
    work_queue_name: str
    flow_version: str
    parameters: _struct_pb2.Struct
    idempotency_key: str
    context: _struct_pb2.Struct
    empirical_policy: FlowRunPolicy
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    parent_task_run_id: str
    state_type: _state_pb2.StateType
    state_name: str
    run_count: int
    expected_start_time: _timestamp_pb2.Timestamp
    next_scheduled_start_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_run_time: _duration_pb2.Duration
    estimated_run_time: _duration_pb2.Duration
    estimated_start_time_delta: _duration_pb2.Duration
    auto_scheduled: bool
    infrastructure_document_id: str
    infrastructure_pid: str
    created_by: CreatedBy
    work_pool_id: str
    work_pool_name: str
    state: _state_pb2.State
    job_variables: _struct_pb2.Struct
    heartbeat_timeout: _duration_pb2.Duration
    last_heartbeat_time: _timestamp_pb2.Timestamp
    heartbeat_deadline: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., flow_id: _Optional[str] = ..., state_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., deployment_version: _Optional[str] = ..., work_queue_id: _Optional[str] = ..., work_queue_name: _Optional[str] = ..., flow_version: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., empirical_policy: _Optional[_Union[FlowRunPolicy, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parent_task_run_id: _Optional[str] = ..., state_type: _Optional[_Union[_state_pb2.StateType, str]] = ..., state_name: _Optional[str] = ..., run_count: _Optional[int] = ..., expected_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_scheduled_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_run_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_start_time_delta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., auto_scheduled: _Optional[bool] = ..., infrastructure_document_id: _Optional[str] = ..., infrastructure_pid: _Optional[str] = ..., created_by: _Optional[_Union[CreatedBy, _Mapping]] = ..., work_pool_id: _Optional[str] = ..., work_pool_name: _Optional[str] = ..., state: _Optional[_Union[_state_pb2.State, _Mapping]] = ..., job_variables: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
