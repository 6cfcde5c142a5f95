import datetime

from flowrun.v1 import state_pb2 as _state_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FilterOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_OPERATOR_UNSPECIFIED: _ClassVar[FilterOperator]
    FILTER_OPERATOR_AND: _ClassVar[FilterOperator]
    FILTER_OPERATOR_OR: _ClassVar[FilterOperator]

class TaskRunSort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_RUN_SORT_UNSPECIFIED: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_ID_DESC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_EXPECTED_START_TIME_ASC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_EXPECTED_START_TIME_DESC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_NAME_ASC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_NAME_DESC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: _ClassVar[TaskRunSort]
    TASK_RUN_SORT_END_TIME_DESC: _ClassVar[TaskRunSort]

class FlowSort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_SORT_UNSPECIFIED: _ClassVar[FlowSort]
    FLOW_SORT_CREATED_DESC: _ClassVar[FlowSort]
    FLOW_SORT_UPDATED_DESC: _ClassVar[FlowSort]
    FLOW_SORT_NAME_ASC: _ClassVar[FlowSort]
    FLOW_SORT_NAME_DESC: _ClassVar[FlowSort]

class FlowRunSort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_RUN_SORT_UNSPECIFIED: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_ID_DESC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_START_TIME_ASC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_START_TIME_DESC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_EXPECTED_START_TIME_ASC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_EXPECTED_START_TIME_DESC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_NAME_ASC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_NAME_DESC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: _ClassVar[FlowRunSort]
    FLOW_RUN_SORT_END_TIME_DESC: _ClassVar[FlowRunSort]
FILTER_OPERATOR_UNSPECIFIED: FilterOperator
FILTER_OPERATOR_AND: FilterOperator
FILTER_OPERATOR_OR: FilterOperator
TASK_RUN_SORT_UNSPECIFIED: TaskRunSort
TASK_RUN_SORT_ID_DESC: TaskRunSort
TASK_RUN_SORT_EXPECTED_START_TIME_ASC: TaskRunSort
TASK_RUN_SORT_EXPECTED_START_TIME_DESC: TaskRunSort
TASK_RUN_SORT_NAME_ASC: TaskRunSort
TASK_RUN_SORT_NAME_DESC: TaskRunSort
TASK_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: TaskRunSort
TASK_RUN_SORT_END_TIME_DESC: TaskRunSort
FLOW_SORT_UNSPECIFIED: FlowSort
FLOW_SORT_CREATED_DESC: FlowSort
FLOW_SORT_UPDATED_DESC: FlowSort
FLOW_SORT_NAME_ASC: FlowSort
FLOW_SORT_NAME_DESC: FlowSort
FLOW_RUN_SORT_UNSPECIFIED: FlowRunSort
FLOW_RUN_SORT_ID_DESC: FlowRunSort
FLOW_RUN_SORT_START_TIME_ASC: FlowRunSort
FLOW_RUN_SORT_START_TIME_DESC: FlowRunSort
FLOW_RUN_SORT_EXPECTED_START_TIME_ASC: FlowRunSort
FLOW_RUN_SORT_EXPECTED_START_TIME_DESC: FlowRunSort
FLOW_RUN_SORT_NAME_ASC: FlowRunSort
FLOW_RUN_SORT_NAME_DESC: FlowRunSort
FLOW_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: FlowRunSort
FLOW_RUN_SORT_END_TIME_DESC: FlowRunSort

class IdFilter(_message.Message):
    __slots__ = ("operator", "any", "not_any", "is_null", "strict_any")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NOT_ANY_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    STRICT_ANY_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    any: _containers.RepeatedScalarFieldContainer[str]
    not_any: _containers.RepeatedScalarFieldContainer[str]
    is_null: bool
    strict_any: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., any: _Optional[_Iterable[str]] = ..., not_any: _Optional[_Iterable[str]] = ..., is_null: _Optional[bool] = ..., strict_any: _Optional[bool] = ...) -> None: ...

class StringFilter(_message.Message):
    __slots__ = ("operator", "any", "not_any", "like", "is_null", "startswith", "strict_any")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NOT_ANY_FIELD_NUMBER: _ClassVar[int]
    LIKE_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    STARTSWITH_FIELD_NUMBER: _ClassVar[int]
    STRICT_ANY_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    any: _containers.RepeatedScalarFieldContainer[str]
    not_any: _containers.RepeatedScalarFieldContainer[str]
    like: str
    is_null: bool
    startswith: _containers.RepeatedScalarFieldContainer[str]
    strict_any: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., any: _Optional[_Iterable[str]] = ..., not_any: _Optional[_Iterable[str]] = ..., like: _Optional[str] = ..., is_null: _Optional[bool] = ..., startswith: _Optional[_Iterable[str]] = ..., strict_any: _Optional[bool] = ...) -> None: ...

class TagsFilter(_message.Message):
    __slots__ = ("operator", "all", "any", "is_null", "strict_any")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    STRICT_ANY_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    all: _containers.RepeatedScalarFieldContainer[str]
    any: _containers.RepeatedScalarFieldContainer[str]
    is_null: bool
    strict_any: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., all: _Optional[_Iterable[str]] = ..., any: _Optional[_Iterable[str]] = ..., is_null: _Optional[bool] = ..., strict_any: _Optional[bool] = ...) -> None: ...

class TimeFilter(_message.Message):
    __slots__ = ("operator", "before", "after", "is_null")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    before: _timestamp_pb2.Timestamp
    after: _timestamp_pb2.Timestamp
    is_null: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., is_null: _Optional[bool] = ...) -> None: ...

class StateTypeFilter(_message.Message):
    __slots__ = ("any", "not_any", "strict_any")
    ANY_FIELD_NUMBER: _ClassVar[int]
    NOT_ANY_FIELD_NUMBER: _ClassVar[int]
    STRICT_ANY_FIELD_NUMBER: _ClassVar[int]
    any: _containers.RepeatedScalarFieldContainer[_state_pb2.StateType]
    not_any: _containers.RepeatedScalarFieldContainer[_state_pb2.StateType]
    strict_any: bool
    def __init__(self, any: _Optional[_Iterable[_Union[_state_pb2.StateType, str]]] = ..., not_any: _Optional[_Iterable[_Union[_state_pb2.StateType, str]]] = ..., strict_any: _Optional[bool] = ...) -> None: ...

class FlowRunStateFilter(_message.Message):
    __slots__ = ("operator", "type", "name")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    type: StateTypeFilter
    name: StringFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., type: _Optional[_Union[StateTypeFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ...) -> None: ...

class CreatedByFilter(_message.Message):
    __slots__ = ("operator", "id", "type", "is_null")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: _containers.RepeatedScalarFieldContainer[str]
    type: _containers.RepeatedScalarFieldContainer[str]
    is_null: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Iterable[str]] = ..., type: _Optional[_Iterable[str]] = ..., is_null: _Optional[bool] = ...) -> None: ...

class FlowDeploymentFilter(_message.Message):
    __slots__ = ("operator", "is_null")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    is_null: bool
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., is_null: _Optional[bool] = ...) -> None: ...

class FlowFilter(_message.Message):
    __slots__ = ("operator", "id", "name", "tags", "deployment")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    tags: TagsFilter
    deployment: FlowDeploymentFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ..., tags: _Optional[_Union[TagsFilter, _Mapping]] = ..., deployment: _Optional[_Union[FlowDeploymentFilter, _Mapping]] = ...) -> None: ...

class FlowRunFilter(_message.Message):
    __slots__ = ("operator", "id", "name", "tags", "deployment_id", "work_queue_name", "state", "flow_version", "start_time", "end_time", "expected_start_time", "next_scheduled_start_time", "parent_flow_run_id", "parent_task_run_id", "idempotency_key", "created_by", "flow_id")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    NEXT_SCHEDULED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    PARENT_FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    tags: TagsFilter
    deployment_id: IdFilter
    work_queue_name: StringFilter
    state: FlowRunStateFilter
    flow_version: StringFilter
    start_time: TimeFilter
    end_time: TimeFilter
    expected_start_time: TimeFilter
    next_scheduled_start_time: TimeFilter
    parent_flow_run_id: IdFilter
    parent_task_run_id: IdFilter
    idempotency_key: StringFilter
    created_by: CreatedByFilter
    flow_id: IdFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ..., tags: _Optional[_Union[TagsFilter, _Mapping]] = ..., deployment_id: _Optional[_Union[IdFilter, _Mapping]] = ..., work_queue_name: _Optional[_Union[StringFilter, _Mapping]] = ..., state: _Optional[_Union[FlowRunStateFilter, _Mapping]] = ..., flow_version: _Optional[_Union[StringFilter, _Mapping]] = ..., start_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., end_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., expected_start_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., next_scheduled_start_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., parent_flow_run_id: _Optional[_Union[IdFilter, _Mapping]] = ..., parent_task_run_id: _Optional[_Union[IdFilter, _Mapping]] = ..., idempotency_key: _Optional[_Union[StringFilter, _Mapping]] = ..., created_by: _Optional[_Union[CreatedByFilter, _Mapping]] = ..., flow_id: _Optional[_Union[IdFilter, _Mapping]] = ...) -> None: ...

class TaskRunStateFilter(_message.Message):
    __slots__ = ("operator", "type", "name")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    type: StateTypeFilter
    name: StringFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., type: _Optional[_Union[StateTypeFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ...) -> None: ...

class SubflowRunsFilter(_message.Message):
    __slots__ = ("exists",)
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    def __init__(self, exists: _Optional[bool] = ...) -> None: ...

class TaskRunFilter(_message.Message):
    __slots__ = ("operator", "id", "name", "tags", "state", "start_time", "end_time", "expected_start_time", "subflow_runs", "flow_run_id")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_START_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBFLOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    tags: TagsFilter
    state: TaskRunStateFilter
    start_time: TimeFilter
    end_time: TimeFilter
    expected_start_time: TimeFilter
    subflow_runs: SubflowRunsFilter
    flow_run_id: IdFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ..., tags: _Optional[_Union[TagsFilter, _Mapping]] = ..., state: _Optional[_Union[TaskRunStateFilter, _Mapping]] = ..., start_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., end_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., expected_start_time: _Optional[_Union[TimeFilter, _Mapping]] = ..., subflow_runs: _Optional[_Union[SubflowRunsFilter, _Mapping]] = ..., flow_run_id: _Optional[_Union[IdFilter, _Mapping]] = ...) -> None: ...

class BoolFilter(_message.Message):
    __slots__ = ("eq",)
    EQ_FIELD_NUMBER: _ClassVar[int]
    eq: bool
    def __init__(self, eq: _Optional[bool] = ...) -> None: ...

class DeploymentFilter(_message.Message):
    __slots__ = ("operator", "id", "name", "flow_or_deployment_name", "paused", "tags", "work_queue_name")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_OR_DEPLOYMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    flow_or_deployment_name: StringFilter
    paused: BoolFilter
    tags: TagsFilter
    work_queue_name: StringFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ..., flow_or_deployment_name: _Optional[_Union[StringFilter, _Mapping]] = ..., paused: _Optional[_Union[BoolFilter, _Mapping]] = ..., tags: _Optional[_Union[TagsFilter, _Mapping]] = ..., work_queue_name: _Optional[_Union[StringFilter, _Mapping]] = ...) -> None: ...

class WorkPoolFilter(_message.Message):
    __slots__ = ("operator", "id", "name", "type")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    type: StringFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ..., type: _Optional[_Union[StringFilter, _Mapping]] = ...) -> None: ...

class WorkQueueFilter(_message.Message):
    __slots__ = ("operator", "id", "name")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    id: IdFilter
    name: StringFilter
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., id: _Optional[_Union[IdFilter, _Mapping]] = ..., name: _Optional[_Union[StringFilter, _Mapping]] = ...) -> None: ...
