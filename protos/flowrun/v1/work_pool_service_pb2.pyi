from flowrun.v1 import filters_pb2 as _filters_pb2
from flowrun.v1 import work_pool_pb2 as _work_pool_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateWorkPoolRequest(_message.Message):
    __slots__ = ("name", "type", "description", "is_paused", "concurrency_limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    is_paused: bool
    concurrency_limit: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., is_paused: _Optional[bool] = ..., concurrency_limit: _Optional[int] = ...) -> None: ...

class CreateWorkPoolResponse(_message.Message):
    __slots__ = ("work_pool",)
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    work_pool: _work_pool_pb2.WorkPool
    def __init__(self, work_pool: _Optional[_Union[_work_pool_pb2.WorkPool, _Mapping]] = ...) -> None: ...

class GetWorkPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetWorkPoolResponse(_message.Message):
    __slots__ = ("work_pool",)
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    work_pool: _work_pool_pb2.WorkPool
    def __init__(self, work_pool: _Optional[_Union[_work_pool_pb2.WorkPool, _Mapping]] = ...) -> None: ...

class ListWorkPoolsRequest(_message.Message):
    __slots__ = ("work_pool_filter", "page_size", "page_token")
    WORK_POOL_FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_pool_filter: _filters_pb2.WorkPoolFilter
    page_size: int
    page_token: str
    def __init__(self, work_pool_filter: _Optional[_Union[_filters_pb2.WorkPoolFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkPoolsResponse(_message.Message):
    __slots__ = ("work_pools", "next_page_token")
    WORK_POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_pools: _containers.RepeatedCompositeFieldContainer[_work_pool_pb2.WorkPool]
    next_page_token: str
    def __init__(self, work_pools: _Optional[_Iterable[_Union[_work_pool_pb2.WorkPool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteWorkPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteWorkPoolResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "name", "priority", "concurrency_limit", "is_paused", "description")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    IS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    name: str
    priority: int
    concurrency_limit: int
    is_paused: bool
    description: str
    def __init__(self, work_pool_name: _Optional[str] = ..., name: _Optional[str] = ..., priority: _Optional[int] = ..., concurrency_limit: _Optional[int] = ..., is_paused: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class CreateWorkQueueResponse(_message.Message):
    __slots__ = ("work_queue",)
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    work_queue: _work_pool_pb2.WorkQueue
    def __init__(self, work_queue: _Optional[_Union[_work_pool_pb2.WorkQueue, _Mapping]] = ...) -> None: ...

class GetWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "name")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    name: str
    def __init__(self, work_pool_name: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetWorkQueueResponse(_message.Message):
    __slots__ = ("work_queue",)
    WORK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    work_queue: _work_pool_pb2.WorkQueue
    def __init__(self, work_queue: _Optional[_Union[_work_pool_pb2.WorkQueue, _Mapping]] = ...) -> None: ...

class ListWorkQueuesRequest(_message.Message):
    __slots__ = ("work_pool_name", "work_queue_filter", "page_size", "page_token")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_QUEUE_FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    work_queue_filter: _filters_pb2.WorkQueueFilter
    page_size: int
    page_token: str
    def __init__(self, work_pool_name: _Optional[str] = ..., work_queue_filter: _Optional[_Union[_filters_pb2.WorkQueueFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkQueuesResponse(_message.Message):
    __slots__ = ("work_queues", "next_page_token")
    WORK_QUEUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    work_queues: _containers.RepeatedCompositeFieldContainer[_work_pool_pb2.WorkQueue]
    next_page_token: str
    def __init__(self, work_queues: _Optional[_Iterable[_Union[_work_pool_pb2.WorkQueue, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteWorkQueueRequest(_message.Message):
    __slots__ = ("work_pool_name", "name")
    WORK_POOL_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    work_pool_name: str
    name: str
    def __init__(self, work_pool_name: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteWorkQueueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
