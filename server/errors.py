"""Domain errors. Raised anywhere below the servicers; mapped to gRPC status in one place
(server/error_mapping.py) so that no lower layer needs to know about gRPC."""

from __future__ import annotations


class FlowrunError(Exception):
    """Base class. `reason` is an ErrorReason value name without its prefix."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


class NotFound(FlowrunError):
    """A row the request names does not exist."""

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message, metadata=metadata)
        self.reason = reason


class InvalidArgument(FlowrunError):
    """Bad input. `violations` are (field path, description) pairs."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[tuple[str, str]], *, reason: str | None = None) -> None:
        message = "; ".join(f"{field}: {text}" for field, text in violations)
        super().__init__(message)
        self.violations = violations
        if reason:
            self.reason = reason

    @classmethod
    def field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls([(field, description)], reason=reason)


class AlreadyExists(FlowrunError):
    """A strict create found its unique name taken. `metadata` holds the name fields."""

    reason = "ALREADY_EXISTS"


class FailedPrecondition(FlowrunError):
    """The target exists but is not in a state that allows the request."""

    reason = "FAILED_PRECONDITION"


class Conflict(FlowrunError):
    """A concurrent writer won a lock or uniqueness race; retrying may succeed."""

    reason = "CONFLICT"


class TooLarge(FlowrunError):
    """A request or result exceeds a documented limit."""

    reason = "TOO_LARGE"


class OutOfRange(FlowrunError):
    """A position the service no longer has (a watch cursor older than the retention)."""

    reason = "WATCH_CURSOR_EXPIRED"


class ResourceExhausted(FlowrunError):
    """A stream's client fell too far behind; `metadata` says where to resume."""

    reason = "WATCH_TOO_SLOW"


class ShuttingDown(FlowrunError):
    """The server is stopping; `metadata` says where to resume."""

    reason = "SHUTTING_DOWN"


class Interrupted(FlowrunError):
    """A watch stream's read of the database failed for a moment (a statement timeout, a
    lost connection, no pooled connection in time); `metadata` says where to resume.
    UNAVAILABLE, as the database being away is."""

    reason = "DATABASE_UNAVAILABLE"


def flow_not_found(flow_id: str) -> NotFound:
    return NotFound("FLOW_NOT_FOUND", f"Flow {flow_id} not found", flow_id=flow_id)


def flow_run_not_found(flow_run_id: str) -> NotFound:
    return NotFound("FLOW_RUN_NOT_FOUND", f"Flow run {flow_run_id} not found", flow_run_id=flow_run_id)


def state_not_found(state_id: str) -> NotFound:
    return NotFound("FLOW_RUN_STATE_NOT_FOUND", f"Flow run state {state_id} not found", state_id=state_id)


def task_run_not_found(task_run_id: str) -> NotFound:
    return NotFound("TASK_RUN_NOT_FOUND", f"Task run {task_run_id} not found", task_run_id=task_run_id)


def deployment_not_found(deployment_id: str) -> NotFound:
    return NotFound("DEPLOYMENT_NOT_FOUND", f"Deployment {deployment_id} not found", deployment_id=deployment_id)


def work_pool_not_found(work_pool_name: str) -> NotFound:
    return NotFound("WORK_POOL_NOT_FOUND", f"Work pool {work_pool_name!r} not found", work_pool_name=work_pool_name)


def work_queue_not_found(work_pool_name: str, work_queue_name: str) -> NotFound:
    return NotFound(
        "WORK_QUEUE_NOT_FOUND",
        f"Work queue {work_pool_name}/{work_queue_name} not found",
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
    )


def lease_not_found(lease_id: str) -> NotFound:
    return NotFound("LEASE_NOT_FOUND", f"Concurrency lease {lease_id} not found or expired", lease_id=lease_id)


class MalformedRequest(InvalidArgument):
    """The request body is not a valid encoding of the method's request message."""

    reason = "MALFORMED_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__([])
        self.message = message
        self.args = (message,)
