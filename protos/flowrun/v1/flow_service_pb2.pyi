from flowrun.v1 import filters_pb2 as _filters_pb2
from flowrun.v1 import flow_pb2 as _flow_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateFlowRequest(_message.Message):
    __slots__ = ("name", "tags", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    labels: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CreateFlowResponse(_message.Message):
    __slots__ = ("flow", "created")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    flow: _flow_pb2.Flow
    created: bool
    def __init__(self, flow: _Optional[_Union[_flow_pb2.Flow, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetFlowRequest(_message.Message):
    __slots__ = ("flow_id",)
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    def __init__(self, flow_id: _Optional[str] = ...) -> None: ...

class GetFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: _flow_pb2.Flow
    def __init__(self, flow: _Optional[_Union[_flow_pb2.Flow, _Mapping]] = ...) -> None: ...

class GetFlowByNameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetFlowByNameResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: _flow_pb2.Flow
    def __init__(self, flow: _Optional[_Union[_flow_pb2.Flow, _Mapping]] = ...) -> None: ...

class ListFlowsRequest(_message.Message):
    __slots__ = ("flow_filter", "flow_run_filter", "sort", "offset", "limit", "page_size", "page_token", "task_run_filter", "deployment_filter", "work_pool_filter")
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
    flow_filter: _filters_pb2.FlowFilter
    flow_run_filter: _filters_pb2.FlowRunFilter
    sort: _filters_pb2.FlowSort
    offset: int
    limit: int
    page_size: int
    page_token: str
    task_run_filter: _filters_pb2.TaskRunFilter
    deployment_filter: _filters_pb2.DeploymentFilter
    work_pool_filter: _filters_pb2.WorkPoolFilter
    def __init__(self, flow_filter: _Optional[_Union[_filters_pb2.FlowFilter, _Mapping]] = ..., flow_run_filter: _Optional[_Union[_filters_pb2.FlowRunFilter, _Mapping]] = ..., sort: _Optional[_Union[_filters_pb2.FlowSort, str]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., task_run_filter: _Optional[_Union[_filters_pb2.TaskRunFilter, _Mapping]] = ..., deployment_filter: _Optional[_Union[_filters_pb2.DeploymentFilter, _Mapping]] = ..., work_pool_filter: _Optional[_Union[_filters_pb2.WorkPoolFilter, _Mapping]] = ...) -> None: ...

class ListFlowsResponse(_message.Message):
    __slots__ = ("flows", "next_page_token")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Flow]
    next_page_token: str
    def __init__(self, flows: _Optional[_Iterable[_Union[_flow_pb2.Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountFlowsRequest(_message.Message):
    __slots__ = ("flow_filter", "flow_run_filter", "task_run_filter", "deployment_filter", "work_pool_filter")
    FLOW_FILTER_FIELD_NUMBER: _ClassVar[int]
    FLOW_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    TASK_RUN_FILTER_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FILTER_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FILTER_FIELD_NUMBER: _ClassVar[int]
    flow_filter: _filters_pb2.FlowFilter
    flow_run_filter: _filters_pb2.FlowRunFilter
    task_run_filter: _filters_pb2.TaskRunFilter
    deployment_filter: _filters_pb2.DeploymentFilter
    work_pool_filter: _filters_pb2.WorkPoolFilter
    def __init__(self, flow_filter: _Optional[_Union[_filters_pb2.FlowFilter, _Mapping]] = ..., flow_run_filter: _Optional[_Union[_filters_pb2.FlowRunFilter, _Mapping]] = ..., task_run_filter: _Optional[_Union[_filters_pb2.TaskRunFilter, _Mapping]] = ..., deployment_filter: _Optional[_Union[_filters_pb2.DeploymentFilter, _Mapping]] = ..., work_pool_filter: _Optional[_Union[_filters_pb2.WorkPoolFilter, _Mapping]] = ...) -> None: ...

class CountFlowsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class UpdateFlowRequest(_message.Message):
    __slots__ = ("flow", "update_mask")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    flow: _flow_pb2.Flow
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, flow: _Optional[_Union[_flow_pb2.Flow, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateFlowResponse(_message.Message):
    __slots__ = ("flow",)
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow: _flow_pb2.Flow
    def __init__(self, flow: _Optional[_Union[_flow_pb2.Flow, _Mapping]] = ...) -> None: ...

class DeleteFlowRequest(_message.Message):
    __slots__ = ("flow_id",)
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    def __init__(self, flow_id: _Optional[str] = ...) -> None: ...

class DeleteFlowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteFlowsRequest(_message.Message):
    __slots__ = ("flow_ids",)
    FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    flow_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flow_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteFlowsResponse(_message.Message):
    __slots__ = ("deleted_flow_ids",)
    DELETED_FLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted_flow_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted_flow_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetFlowLabelsRequest(_message.Message):
    __slots__ = ("flow_id",)
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    flow_id: str
    def __init__(self, flow_id: _Optional[str] = ...) -> None: ...

class GetFlowLabelsResponse(_message.Message):
    __slots__ = ("labels",)
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _struct_pb2.Struct
    def __init__(self, labels: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
