import datetime

from flowrun.v1 import filters_pb2 as _filters_pb2
from flowrun.v1 import flow_run_pb2 as _flow_run_pb2
from flowrun.v1 import flow_run_event_pb2 as _flow_run_event_pb2
from flowrun.v1 import graph_pb2 as _graph_pb2
from flowrun.v1 import state_pb2 as _state_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchStart(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_START_UNSPECIFIED: _ClassVar[WatchStart]
    WATCH_START_NOW: _ClassVar[WatchStart]
    WATCH_START_SNAPSHOT: _ClassVar[WatchStart]
WATCH_START_UNSPECIFIED: WatchStart
WATCH_START_NOW: WatchStart
WATCH_START_SNAPSHOT: WatchStart

class CreateFlowRunRequest(_message.Message):
    __slots__ = ("flow_id", "name", "flow_version", "parameters", "context", "parent_task_run_id", "infrastructure_document_id", "empirical_policy", "tags", "labels", "idempotency_key", "work_queue_name", "job_variables", "deployment_id", "state", "work_pool_name", "heartbeat_timeout")
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INFRASTRUCTURE_DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    EMPIRICAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_VARIABLES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    name: str
    flow_version: str
    parameters: _struct_pb2.Struct
    context: _struct_pb2.Struct
    parent_task_run_id: str
    infrastructure_document_id: str
    empirical_policy: _flow_run_pb2.FlowRunPolicy
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    idempotency_key: str
    work_queue_name: str
    job_variables: _struct_pb2.Struct
    deployment_id: str
    state: _state_pb2.StateCreate
    work_pool_name: str
    heartbeat_timeout: _duration_pb2.Duration
    def __init__(self, flow_id: _Optional[str] = ..., name: _Optional[str] = ..., flow_version: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parent_task_run_id: _Optional[str] = ..., infrastructure_document_id: _Optional[str] = ..., empirical_policy: _Optional[_Union[_flow_run_pb2.FlowRunPolicy, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., work_queue_name: _Optional[str] = ..., job_variables: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deployment_id: _Optional[str] = ..., state: _Optional[_Union[_state_pb2.StateCreate, _Mapping]] = ..., work_pool_name: _Optional[str] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateFlowRunResponse(_message.Message):
    __slots__ = ("flow_run", "created")
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_run_pb2.FlowRun
    created: bool
    def __init__(self, flow_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class GetFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_run_pb2.FlowRun
    def __init__(self, flow_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ...) -> None: ...

class ListFlowRunsRequest(_message.Message):
    __slots__ = ("flow_filter", "flow_run_filter", "sort", "offset", "limit", "page_size", "page_token", "task_run_filter", "deployment_filter", "work_pool_filter", "work_queue_filter")
    FLOW_FILTER_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FILTER_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FILTER_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_FILTER_FIELD_NUMBER: _ClassVar[int]
    flow_filter: _filters_pb2.FlowFilter
    flow_run_filter: _filters_pb2.FlowRunFilter
    sort: _filters_pb2.FlowRunSort
    offset: int
    limit: int
    page_size: int
    page_token: str
    task_run_filter: _filters_pb2.TaskRunFilter
    deployment_filter: _filters_pb2.DeploymentFilter
    work_pool_filter: _filters_pb2.WorkPoolFilter
    work_queue_filter: _filters_pb2.WorkQueueFilter
    def __init__(self, flow_filter: _Optional[_Union[_filters_pb2.FlowFilter, _Mapping]] = ..., flow_run_filter: _Optional[_Union[_filters_pb2.FlowRunFilter, _Mapping]] = ..., sort: _Optional[_Union[_filters_pb2.FlowRunSort, str]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., task_run_filter: _Optional[_Union[_filters_pb2.TaskRunFilter, _Mapping]] = ..., deployment_filter: _Optional[_Union[_filters_pb2.DeploymentFilter, _Mapping]] = ..., work_pool_filter: _Optional[_Union[_filters_pb2.WorkPoolFilter, _Mapping]] = ..., work_queue_filter: _Optional[_Union[_filters_pb2.WorkQueueFilter, _Mapping]] = ...) -> None: ...

class ListFlowRunsResponse(_message.Message):
    __slots__ = ("flow_runs", "next_page_token")
    FLOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flow_runs: _containers.RepeatedCompositeFieldContainer[_flow_run_pb2.FlowRun]
    next_page_token: str
    def __init__(self, flow_runs: _Optional[_Iterable[_Union[_flow_run_pb2.FlowRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountFlowRunsRequest(_message.Message):
    __slots__ = ("flow_filter", "flow_run_filter", "task_run_filter", "deployment_filter", "work_pool_filter", "work_queue_filter")
    FLOW_FILTER_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FILTER_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FILTER_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_FILTER_FIELD_NUMBER: _ClassVar[int]
    flow_filter: _filters_pb2.FlowFilter
    flow_run_filter: _filters_pb2.FlowRunFilter
    task_run_filter: _filters_pb2.TaskRunFilter
    deployment_filter: _filters_pb2.DeploymentFilter
    work_pool_filter: _filters_pb2.WorkPoolFilter
    work_queue_filter: _filters_pb2.WorkQueueFilter
    def __init__(self, flow_filter: _Optional[_Union[_filters_pb2.FlowFilter, _Mapping]] = ..., flow_run_filter: _Optional[_Union[_filters_pb2.FlowRunFilter, _Mapping]] = ..., task_run_filter: _Optional[_Union[_filters_pb2.TaskRunFilter, _Mapping]] = ..., deployment_filter: _Optional[_Union[_filters_pb2.DeploymentFilter, _Mapping]] = ..., work_pool_filter: _Optional[_Union[_filters_pb2.WorkPoolFilter, _Mapping]] = ..., work_queue_filter: _Optional[_Union[_filters_pb2.WorkQueueFilter, _Mapping]] = ...) -> None: ...

class CountFlowRunsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class UpdateFlowRunRequest(_message.Message):
    __slots__ = ("flow_run", "update_mask")
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_run_pb2.FlowRun
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, flow_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateFlowRunResponse(_message.Message):
    __slots__ = ("flow_run",)
    FLOW_RUN_FIELD_NUMBER: _ClassVar[int]
    flow_run: _flow_run_pb2.FlowRun
    def __init__(self, flow_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ...) -> None: ...

class DeleteFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class DeleteFlowRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetFlowRunStateRequest(_message.Message):
    __slots__ = ("flow_run_id", "state", "force")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    state: _state_pb2.StateCreate
    force: bool
    def __init__(self, flow_run_id: _Optional[str] = ..., state: _Optional[_Union[_state_pb2.StateCreate, _Mapping]] = ..., force: _Optional[bool] = ...) -> None: ...

class SetFlowRunStateResponse(_message.Message):
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

class GetTaskRunDependenciesRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class GetTaskRunDependenciesResponse(_message.Message):
    __slots__ = ("dependencies",)
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    dependencies: _containers.RepeatedCompositeFieldContainer[_graph_pb2.TaskRunDependency]
    def __init__(self, dependencies: _Optional[_Iterable[_Union[_graph_pb2.TaskRunDependency, _Mapping]]] = ...) -> None: ...

class GetFlowRunGraphRequest(_message.Message):
    __slots__ = ("flow_run_id", "since")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, flow_run_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFlowRunGraphResponse(_message.Message):
    __slots__ = ("graph",)
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    graph: _graph_pb2.FlowRunGraph
    def __init__(self, graph: _Optional[_Union[_graph_pb2.FlowRunGraph, _Mapping]] = ...) -> None: ...

class GetFlowRunStateRequest(_message.Message):
    __slots__ = ("state_id",)
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    state_id: str
    def __init__(self, state_id: _Optional[str] = ...) -> None: ...

class GetFlowRunStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: _state_pb2.State
    def __init__(self, state: _Optional[_Union[_state_pb2.State, _Mapping]] = ...) -> None: ...

class ListFlowRunStatesRequest(_message.Message):
    __slots__ = ("flow_run_id", "page_size", "page_token")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    page_size: int
    page_token: str
    def __init__(self, flow_run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFlowRunStatesResponse(_message.Message):
    __slots__ = ("states", "next_page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[_state_pb2.State]
    next_page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[_state_pb2.State, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteFlowRunStateRequest(_message.Message):
    __slots__ = ("state_id",)
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    state_id: str
    def __init__(self, state_id: _Optional[str] = ...) -> None: ...

class DeleteFlowRunStateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id",)
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    def __init__(self, flow_run_id: _Optional[str] = ...) -> None: ...

class HeartbeatFlowRunResponse(_message.Message):
    __slots__ = ("deadline", "heartbeat_timeout")
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    deadline: _timestamp_pb2.Timestamp
    heartbeat_timeout: _duration_pb2.Duration
    def __init__(self, deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchFlowRunsRequest(_message.Message):
    __slots__ = ("flow_run_filter", "cursor", "start", "batch")
    FLOW_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    flow_run_filter: _filters_pb2.FlowRunFilter
    cursor: str
    start: WatchStart
    batch: bool
    def __init__(self, flow_run_filter: _Optional[_Union[_filters_pb2.FlowRunFilter, _Mapping]] = ..., cursor: _Optional[str] = ..., start: _Optional[_Union[WatchStart, str]] = ..., batch: _Optional[bool] = ...) -> None: ...

class WatchProgress(_message.Message):
    __slots__ = ("cursor", "snapshot_complete", "time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    snapshot_complete: bool
    time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., snapshot_complete: _Optional[bool] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchFlowRunsResponse(_message.Message):
    __slots__ = ("event", "snapshot_run", "progress", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_RUN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: _flow_run_event_pb2.FlowRunEvent
    snapshot_run: _flow_run_pb2.FlowRun
    progress: WatchProgress
    events: _flow_run_event_pb2.FlowRunEventBatch
    def __init__(self, event: _Optional[_Union[_flow_run_event_pb2.FlowRunEvent, _Mapping]] = ..., snapshot_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ..., progress: _Optional[_Union[WatchProgress, _Mapping]] = ..., events: _Optional[_Union[_flow_run_event_pb2.FlowRunEventBatch, _Mapping]] = ...) -> None: ...

class WatchFlowRunRequest(_message.Message):
    __slots__ = ("flow_run_id", "cursor", "keep_going")
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KEEP_GOING_FIELD_NUMBER: _ClassVar[int]
    flow_run_id: str
    cursor: str
    keep_going: bool
    def __init__(self, flow_run_id: _Optional[str] = ..., cursor: _Optional[str] = ..., keep_going: _Optional[bool] = ...) -> None: ...

class WatchFlowRunResponse(_message.Message):
    __slots__ = ("event", "snapshot_run", "progress")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_RUN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    event: _flow_run_event_pb2.FlowRunEvent
    snapshot_run: _flow_run_pb2.FlowRun
    progress: WatchProgress
    def __init__(self, event: _Optional[_Union[_flow_run_event_pb2.FlowRunEvent, _Mapping]] = ..., snapshot_run: _Optional[_Union[_flow_run_pb2.FlowRun, _Mapping]] = ..., progress: _Optional[_Union[WatchProgress, _Mapping]] = ...) -> None: ...
