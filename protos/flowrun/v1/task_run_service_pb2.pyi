import datetime

from flowrun.v1 import filters_pb2 as _filters_pb2
from flowrun.v1 import state_pb2 as _state_pb2
from flowrun.v1 import task_run_pb2 as _task_run_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTaskRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "task_key", "dynamic_key", "name", "cache_key", "cache_expiration", "task_version", "empirical_policy", "tags", "labels", "task_inputs", "state")
    class TaskInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _task_run_pb2.TaskRunInputs
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_task_run_pb2.TaskRunInputs, _Mapping]] = ...) -> None: ...
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_KEY_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    TASK_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMPIRICAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_INPUTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    task_key: str
    dynamic_key: str
    name: str
    cache_key: str
    cache_expiration: _timestamp_pb2.Timestamp
    task_version: str
    empirical_policy: _task_run_pb2.TaskRunPolicy
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    task_inputs: _containers.MessageMap[str, _task_run_pb2.TaskRunInputs]
    state: _state_pb2.StateCreate
    def __init__(self, flow_run_id: _Optional[str] = ..., task_key: _Optional[str] = ..., dynamic_key: _Optional[str] = ..., name: _Optional[str] = ..., cache_key: _Optional[str] = ..., cache_expiration: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_version: _Optional[str] = ..., empirical_policy: _Optional[_Union[_task_run_pb2.TaskRunPolicy, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., task_inputs: _Optional[_Mapping[str, _task_run_pb2.TaskRunInputs]] = ..., state: _Optional[_Union[_state_pb2.StateCreate, _Mapping]] = ...) -> None: ...

class CreateTaskRunResponse(_message.Message):
    __slots__ = ("task_run", "created")
    TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    task_run: _task_run_pb2.TaskRun
    created: bool
    def __init__(self, task_run: _Optional[_Union[_task_run_pb2.TaskRun, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetTaskRunRequest(_message.Message):
    __slots__ = ("task_run_id",)
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    def __init__(self, task_run_id: _Optional[str] = ...) -> None: ...

class GetTaskRunResponse(_message.Message):
    __slots__ = ("task_run",)
    TASK_RUN_FIELD_NUMBER: _ClassVar[int]
    task_run: _task_run_pb2.TaskRun
    def __init__(self, task_run: _Optional[_Union[_task_run_pb2.TaskRun, _Mapping]] = ...) -> None: ...

class ListTaskRunsRequest(_message.Message):
    __slots__ = ("task_run_filter", "sort", "page_size", "page_token")
    TASK_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_run_filter: _filters_pb2.TaskRunFilter
    sort: _filters_pb2.TaskRunSort
    page_size: int
    page_token: str
    def __init__(self, task_run_filter: _Optional[_Union[_filters_pb2.TaskRunFilter, _Mapping]] = ..., sort: _Optional[_Union[_filters_pb2.TaskRunSort, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTaskRunsResponse(_message.Message):
    __slots__ = ("task_runs", "next_page_token")
    TASK_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_runs: _containers.RepeatedCompositeFieldContainer[_task_run_pb2.TaskRun]
    next_page_token: str
    def __init__(self, task_runs: _Optional[_Iterable[_Union[_task_run_pb2.TaskRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetTaskRunStateRequest(_message.Message):
    __slots__ = ("task_run_id", "state", "force")
    TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    task_run_id: str
    state: _state_pb2.StateCreate
    force: bool
    def __init__(self, task_run_id: _Optional[str] = ..., state: _Optional[_Union[_state_pb2.StateCreate, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class SetTaskRunStateResponse(_message.Message):
    __slots__ = ("state", "status", "accept", "reject", "abort", "wait")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    state: _state_pb2.State
    status: _state_pb2.SetStateStatus
    accept: _state_pb2.AcceptDetails
    reject: _state_pb2.RejectDetails
    abort: _state_pb2.AbortDetails
    wait: _state_pb2.WaitDetails
    def __init__(self, state: _Optional[_Union[_state_pb2.State, _Mapping]] = ..., status: _Optional[_Union[_state_pb2.SetStateStatus, str]] = ..., accept: _Optional[_Union[_state_pb2.AcceptDetails, _Mapping]] = ..., reject: _Optional[_Union[_state_pb2.RejectDetails, _Mapping]] = ..., abort: _Optional[_Union[_state_pb2.AbortDetails, _Mapping]] = ..., wait: _Optional[_Union[_state_pb2.WaitDetails, _Mapping]] = ...) -> None: ...
