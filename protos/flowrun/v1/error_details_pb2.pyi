from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_FLOW_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_FLOW_RUN_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_FLOW_RUN_STATE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_TASK_RUN_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_ARGUMENT: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_PAGE_TOKEN: _ClassVar[ErrorReason]
    ERROR_REASON_FAILED_PRECONDITION: _ClassVar[ErrorReason]
    ERROR_REASON_CONFLICT: _ClassVar[ErrorReason]
    ERROR_REASON_DATABASE_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_DEADLINE_EXCEEDED: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_DEPLOYMENT_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_WORK_POOL_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_WORK_QUEUE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_LEASE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_ALREADY_EXISTS: _ClassVar[ErrorReason]
    ERROR_REASON_MALFORMED_REQUEST: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_FLOW_NOT_FOUND: ErrorReason
ERROR_REASON_FLOW_RUN_NOT_FOUND: ErrorReason
ERROR_REASON_FLOW_RUN_STATE_NOT_FOUND: ErrorReason
ERROR_REASON_TASK_RUN_NOT_FOUND: ErrorReason
ERROR_REASON_INVALID_ARGUMENT: ErrorReason
ERROR_REASON_INVALID_PAGE_TOKEN: ErrorReason
ERROR_REASON_FAILED_PRECONDITION: ErrorReason
ERROR_REASON_CONFLICT: ErrorReason
ERROR_REASON_DATABASE_UNAVAILABLE: ErrorReason
ERROR_REASON_DEADLINE_EXCEEDED: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason
ERROR_REASON_TOO_LARGE: ErrorReason
ERROR_REASON_DEPLOYMENT_NOT_FOUND: ErrorReason
ERROR_REASON_WORK_POOL_NOT_FOUND: ErrorReason
ERROR_REASON_WORK_QUEUE_NOT_FOUND: ErrorReason
ERROR_REASON_LEASE_NOT_FOUND: ErrorReason
ERROR_REASON_ALREADY_EXISTS: ErrorReason
ERROR_REASON_MALFORMED_REQUEST: ErrorReason
