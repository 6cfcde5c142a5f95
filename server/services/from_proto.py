"""Proto -> domain: the one place requests are validated and turned into domain
objects. Every problem becomes an InvalidArgument naming the field."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from flowrun.server.domain.deployments import CollisionStrategy, DeploymentCreate
from flowrun.server.domain.flow_runs import FlowRunCreate, FlowRunPolicy
from flowrun.server.domain.flows import FlowCreate
from flowrun.server.domain.names import random_run_name
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.domain.task_runs import TaskInputs, TaskRunCreate, TaskRunPolicy
from flowrun.server.domain.work_pools import DEFAULT_POOL_TYPE, HIGHEST_PRIORITY, WorkPoolCreate, WorkQueueCreate
from flowrun.server.errors import InvalidArgument
from flowrun.server.orchestration.retry_rules import MAX_RETRY_DELAY_SECONDS
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2,
    flow_run_pb2,
    flow_run_service_pb2,
    flow_service_pb2,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
    work_pool_service_pb2,
)

MAX_NAME_LENGTH = 200
MAX_TAGS = 1_000
MAX_TEXT_LENGTH = 1_000
MAX_MESSAGE_LENGTH = 100_000
# Text PostgreSQL indexes (flow_version, work_queue_name, idempotency_key, task_key,
# dynamic_key) is bounded in UTF-8 bytes: a B-tree entry holds at most about 2,700 bytes
# (two keys and a run id in task_run's unique index), and longer incompressible text
# failed the INSERT there (INTERNAL) while SQLite stored it.
MAX_INDEXED_BYTES = 1_000
FORBIDDEN_NAME_CHARACTERS = set("/%&><")

STATE_TYPES = {state_pb2.StateType.Value(f"STATE_TYPE_{state_type.value}"): state_type for state_type in StateType}
RETRY_TYPES = {
    flow_run_pb2.RETRY_TYPE_IN_PROCESS: "in_process",
    flow_run_pb2.RETRY_TYPE_RESCHEDULE: "reschedule",
}


class Violations:
    """Collects every problem of one request, so the client learns them all at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def canonical_uuid(value: str) -> str | None:
    """The id rule, one for every id field and filter: UUID text in the 8-4-4-4-12 hex form
    (RFC 9562), letters in either case, answered in lowercase; None for anything else.
    Braces, `urn:uuid:`, the 32 digits without hyphens and hyphens elsewhere (all of
    which Python's uuid.UUID would take) are rejected, so an id has one spelling."""
    return value.lower() if _UUID_TEXT.fullmatch(value) else None


def uuid_text(value: str, field: str, violations: Violations, *, required: bool = True) -> str | None:
    """Canonical lowercase UUID text, or None when empty and optional."""
    if not value:
        if required:
            violations.add(field, "is required")
        return None
    canonical = canonical_uuid(value)
    if canonical is None:
        violations.add(field, f"must be a UUID in the 8-4-4-4-12 hex form, got {value[:64]!r}")
    return canonical


def required_uuid(value: str, field: str) -> str:
    violations = Violations()
    result = uuid_text(value, field, violations)
    violations.raise_if_any()
    assert result is not None
    return result


def utc(message: Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def optional_utc(parent: Message, field: str) -> datetime | None:
    return utc(getattr(parent, field)) if parent.HasField(field) else None


def struct_dict(parent: Message, field: str) -> dict[str, Any] | None:
    return struct_value(getattr(parent, field)) if parent.HasField(field) else None


def struct_value(message: Struct) -> dict[str, Any]:
    """A Struct as the dict json_format.MessageToDict makes of it (numbers are floats, an
    unset Value is None), read field by field instead of through its generic converter
    (several times faster). NaN and infinities never get here: every request is checked
    for them as it is decoded (validation.py)."""
    return {key: json_value(item) for key, item in message.fields.items()}


def json_value(message: Value) -> Any:
    """A Value as MessageToDict makes it: see struct_value."""
    kind = message.WhichOneof("kind")
    if kind == "struct_value":
        return struct_value(message.struct_value)
    if kind == "list_value":
        return [json_value(item) for item in message.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(message, kind)


def check_name(name: str, field: str, violations: Violations) -> None:
    if not name:
        violations.add(field, "is required")
    elif len(name) > MAX_NAME_LENGTH:
        violations.add(field, f"must be at most {MAX_NAME_LENGTH} characters")
    elif FORBIDDEN_NAME_CHARACTERS & set(name):
        violations.add(field, 'must not contain "/", "%", "&", ">" or "<"')


def check_tags(tags: list[str], field: str, violations: Violations) -> list[str]:
    if len(tags) > MAX_TAGS:
        violations.add(field, f"must hold at most {MAX_TAGS} tags")
    for index, tag in enumerate(tags):
        if not tag or len(tag) > MAX_TEXT_LENGTH:
            violations.add(f"{field}[{index}]", f"must be 1 to {MAX_TEXT_LENGTH} characters")
    return list(tags)


def labels(parent: Message, field: str, violations: Violations) -> dict[str, Any]:
    value = struct_dict(parent, field) or {}
    for key, item in value.items():
        if item is None or isinstance(item, (dict, list)):
            violations.add(f"{field}.{key}", "must be a string, number or boolean")
    return value


def check_indexed_text(value: str, field: str, violations: Violations) -> None:
    if len(value) > MAX_INDEXED_BYTES // 4 and len(value.encode()) > MAX_INDEXED_BYTES:
        violations.add(field, f"must be at most {MAX_INDEXED_BYTES} bytes (UTF-8)")


def check_size(value: dict[str, Any] | None, limit: int, field: str, violations: Violations) -> None:
    if value and limit and len(json.dumps(value, separators=(",", ":"))) > limit:
        violations.add(field, f"must be at most {limit} bytes serialized")


def flow_create(request: flow_service_pb2.CreateFlowRequest) -> FlowCreate:
    violations = Violations()
    check_name(request.name, "name", violations)
    tags = check_tags(list(request.tags), "tags", violations)
    flow_labels = labels(request, "labels", violations)
    violations.raise_if_any()
    return FlowCreate(name=request.name, tags=tags, labels=flow_labels)


def state_details(message: state_pb2.StateDetails, field: str, violations: Violations) -> StateDetails:
    if not message.ListFields():
        return StateDetails()  # the usual proposal: nothing to read field by field

    def optional_id(name: str) -> str | None:
        value = getattr(message, name)  # most are empty: no field path built for those
        return uuid_text(value, f"{field}.{name}", violations, required=False) if value else None

    return StateDetails(
        flow_run_id=optional_id("flow_run_id"),
        task_run_id=optional_id("task_run_id"),
        child_flow_run_id=optional_id("child_flow_run_id"),
        scheduled_time=optional_utc(message, "scheduled_time"),
        cache_key=message.cache_key or None,
        cache_expiration=optional_utc(message, "cache_expiration"),
        deferred=message.deferred,
        untrackable_result=message.untrackable_result,
        pause_timeout=optional_utc(message, "pause_timeout"),
        pause_reschedule=message.pause_reschedule,
        pause_key=message.pause_key or None,
        run_input_keyset=dict(message.run_input_keyset) or None,
        refresh_cache=message.refresh_cache if message.HasField("refresh_cache") else None,
        retriable=message.retriable if message.HasField("retriable") else None,
        transition_id=optional_id("transition_id"),
        task_parameters_id=optional_id("task_parameters_id"),
        traceparent=message.traceparent or None,
        deployment_concurrency_lease_id=optional_id("deployment_concurrency_lease_id"),
    )


def proposed_state(message: state_pb2.StateCreate, field: str, now: datetime, violations: Violations) -> State | None:
    """A StateCreate stamped with the server's time. A SCHEDULED state without a
    scheduled time is due now."""
    state_type = STATE_TYPES.get(message.type)
    if state_type is None:
        violations.add(f"{field}.type", "must be a known state type other than STATE_TYPE_UNSPECIFIED")
        return None
    if len(message.name) > MAX_NAME_LENGTH:
        violations.add(f"{field}.name", f"must be at most {MAX_NAME_LENGTH} characters")
    if len(message.message) > MAX_MESSAGE_LENGTH:
        violations.add(f"{field}.message", f"must be at most {MAX_MESSAGE_LENGTH} characters")
    details = state_details(message.state_details, f"{field}.state_details", violations)
    if state_type == StateType.SCHEDULED and details.scheduled_time is None:
        details.scheduled_time = now
    data = json_value(message.data) if message.HasField("data") else None
    return State(
        type=state_type,
        name=message.name or state_type.default_name,
        timestamp=now,
        message=message.message or None,
        data=data,
        state_details=details,
    )


def retry_settings(
    message: flow_run_pb2.FlowRunPolicy | task_run_pb2.TaskRunPolicy, field: str, violations: Violations
) -> tuple[int | None, float | None]:
    """(retries, retry_delay in seconds) of a flow-run or task-run policy; unset is None."""
    retries = message.retries if message.HasField("retries") else None
    if retries is not None and retries < 0:
        violations.add(f"{field}.retries", "must not be negative")
    retry_delay = message.retry_delay.ToTimedelta().total_seconds() if message.HasField("retry_delay") else None
    if retry_delay is not None:
        check_retry_delay(retry_delay, f"{field}.retry_delay", violations)
    return retries, retry_delay


RETRY_DELAY_DESCRIPTION = f"must be from 0 to {MAX_RETRY_DELAY_SECONDS} seconds (100 years)"


def check_retry_delay(seconds: float, field: str, violations: Violations) -> None:
    """Every delay a run's policy holds is 0 to MAX_RETRY_DELAY_SECONDS (see there why)."""
    if not 0 <= seconds <= MAX_RETRY_DELAY_SECONDS:
        violations.add(field, RETRY_DELAY_DESCRIPTION)


def policy(message: flow_run_pb2.FlowRunPolicy, field: str, violations: Violations) -> FlowRunPolicy:
    retries, retry_delay = retry_settings(message, field, violations)
    check_retry_delay(message.retry_delay_seconds, f"{field}.retry_delay_seconds", violations)
    retry_type = None
    if message.HasField("retry_type"):
        retry_type = RETRY_TYPES.get(message.retry_type)
        if retry_type is None:
            violations.add(f"{field}.retry_type", "must be RETRY_TYPE_IN_PROCESS or RETRY_TYPE_RESCHEDULE")
    return FlowRunPolicy(
        max_retries=message.max_retries,  # deprecated alias, still honoured
        retry_delay_seconds=message.retry_delay_seconds,
        retries=retries,
        retry_delay=retry_delay,
        pause_keys=list(message.pause_keys),
        resuming=message.resuming,
        retry_type=retry_type,
    )


def flow_run_create(
    request: flow_run_service_pb2.CreateFlowRunRequest, now: datetime, max_parameter_bytes: int
) -> FlowRunCreate:
    violations = Violations()
    flow_id = uuid_text(request.flow_id, "flow_id", violations)
    if len(request.name) > MAX_NAME_LENGTH:
        violations.add("name", f"must be at most {MAX_NAME_LENGTH} characters")
    check_indexed_text(request.idempotency_key, "idempotency_key", violations)
    check_indexed_text(request.flow_version, "flow_version", violations)
    check_indexed_text(request.work_queue_name, "work_queue_name", violations)
    parameters = struct_dict(request, "parameters") or {}
    check_size(parameters, max_parameter_bytes, "parameters", violations)
    new = FlowRunCreate(
        flow_id=flow_id or "",
        name=request.name or None,
        flow_version=request.flow_version or None,
        parameters=parameters,
        context=struct_dict(request, "context") or {},
        parent_task_run_id=uuid_text(request.parent_task_run_id, "parent_task_run_id", violations, required=False),
        infrastructure_document_id=uuid_text(
            request.infrastructure_document_id, "infrastructure_document_id", violations, required=False
        ),
        empirical_policy=policy(request.empirical_policy, "empirical_policy", violations),
        tags=check_tags(list(request.tags), "tags", violations),
        labels=labels(request, "labels", violations),
        idempotency_key=request.idempotency_key or None,
        work_queue_name=request.work_queue_name or None,
        job_variables=struct_dict(request, "job_variables"),
        deployment_id=uuid_text(request.deployment_id, "deployment_id", violations, required=False),
        work_pool_name=request.work_pool_name or None,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds(request, violations),
    )
    if request.HasField("state"):
        new.state = proposed_state(request.state, "state", now, violations)
    violations.raise_if_any()
    return new


def update_mask_paths(
    request: flow_service_pb2.UpdateFlowRequest | flow_run_service_pb2.UpdateFlowRunRequest,
    resource_field: str,
    allowed: frozenset[str],
) -> list[str]:
    """The paths to update. An empty mask means every allowed field that is set
    (AIP-134). Unknown or read-only paths are INVALID_ARGUMENT."""
    resource = getattr(request, resource_field)
    paths = list(request.update_mask.paths)
    if not paths:
        return [name for name in sorted(allowed) if _is_set(resource, name)]
    violations = Violations()
    known = {f.name for f in resource.DESCRIPTOR.fields}
    for index, path in enumerate(paths):
        if path not in known:
            violations.add(f"update_mask.paths[{index}]", f"{path!r} is not a field of {resource.DESCRIPTOR.name}")
        elif path not in allowed:
            violations.add(f"update_mask.paths[{index}]", f"{path!r} is not updatable")
    violations.raise_if_any()
    return list(dict.fromkeys(paths))


def _is_set(message: Message, name: str) -> bool:
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.message_type is not None and not field.is_repeated:
        return message.HasField(name)
    value = getattr(message, name)
    return bool(len(value)) if field.is_repeated else bool(value)


def set_state_request(
    request: flow_run_service_pb2.SetFlowRunStateRequest | task_run_service_pb2.SetTaskRunStateRequest,
    now: datetime,
    id_field: str = "flow_run_id",
) -> tuple[str, State, bool]:
    """(run id, stamped proposal, force) of a SetFlowRunStateRequest, or of a
    SetTaskRunStateRequest with id_field="task_run_id". The write budget has already
    refused a request too large to store (server/services/write_size.py)."""
    violations = Violations()
    run_id = uuid_text(getattr(request, id_field), id_field, violations)
    proposed = None
    if not request.HasField("state"):
        violations.add("state", "is required")
    else:
        proposed = proposed_state(request.state, "state", now, violations)
    violations.raise_if_any()
    assert run_id is not None and proposed is not None
    return run_id, proposed, request.force


def flow_run_update(resource: flow_run_pb2.FlowRun, paths: list[str], max_parameter_bytes: int) -> dict[str, Any]:
    """Column values for UpdateFlowRun's mask paths. An empty name draws a new random
    name, as the reference does."""
    violations = Violations()
    values: dict[str, Any] = {}
    for path in paths:
        if path == "name":
            if len(resource.name) > MAX_NAME_LENGTH:
                violations.add("flow_run.name", f"must be at most {MAX_NAME_LENGTH} characters")
            values["name"] = resource.name or random_run_name()
        elif path == "flow_version":
            check_indexed_text(resource.flow_version, "flow_run.flow_version", violations)
            values["flow_version"] = resource.flow_version or None
        elif path == "parameters":
            values["parameters"] = struct_dict(resource, "parameters") or {}
            check_size(values["parameters"], max_parameter_bytes, "flow_run.parameters", violations)
        elif path == "empirical_policy":
            values["empirical_policy"] = policy(
                resource.empirical_policy, "flow_run.empirical_policy", violations
            ).to_json()
        elif path == "tags":
            values["tags"] = check_tags(list(resource.tags), "flow_run.tags", violations)
        elif path == "infrastructure_pid":
            values["infrastructure_pid"] = resource.infrastructure_pid or None
        elif path == "job_variables":
            values["job_variables"] = struct_dict(resource, "job_variables")
    violations.raise_if_any()
    return values


# -- task runs ---------------------------------------------------------------------------


def task_run_policy(message: task_run_pb2.TaskRunPolicy, field: str, violations: Violations) -> TaskRunPolicy:
    retries, retry_delay = retry_settings(message, field, violations)
    jitter = message.retry_jitter_factor if message.HasField("retry_jitter_factor") else None
    if jitter is not None and jitter < 0:
        violations.add(f"{field}.retry_jitter_factor", "must not be negative")
    return TaskRunPolicy(retries=retries, retry_delay=retry_delay, retry_jitter_factor=jitter)


def task_inputs(inputs: Any, field: str, violations: Violations) -> TaskInputs:
    """The proto map as the stored JSON (spec 1.9): argument -> list of
    {"input_type": "task_run"|"flow_run", "id"} / {"input_type": "parameter", "name"} /
    {"input_type": "constant", "type"}."""
    result: TaskInputs = {}
    for key in sorted(inputs):
        items = []
        for index, item in enumerate(inputs[key].inputs):
            path = f"{field}[{key!r}].inputs[{index}]"
            source = item.WhichOneof("source")
            if source == "task_run_id":
                items.append(
                    {"input_type": "task_run", "id": uuid_text(item.task_run_id, f"{path}.task_run_id", violations)}
                )
            elif source == "flow_run_id":
                items.append(
                    {"input_type": "flow_run", "id": uuid_text(item.flow_run_id, f"{path}.flow_run_id", violations)}
                )
            elif source == "parameter":
                items.append({"input_type": "parameter", "name": item.parameter})
            elif source == "constant_type":
                items.append({"input_type": "constant", "type": item.constant_type})
            else:
                violations.add(path, "must set one of task_run_id, flow_run_id, parameter, constant_type")
        result[key] = items
    return result


def task_run_create(request: task_run_service_pb2.CreateTaskRunRequest, now: datetime) -> TaskRunCreate:
    violations = Violations()
    flow_run_id = uuid_text(request.flow_run_id, "flow_run_id", violations)
    if not request.task_key:
        violations.add("task_key", "is required")
    for name in ("cache_key", "task_version"):
        if len(getattr(request, name)) > MAX_TEXT_LENGTH:
            violations.add(name, f"must be at most {MAX_TEXT_LENGTH} characters")
    check_indexed_text(request.task_key, "task_key", violations)
    check_indexed_text(request.dynamic_key, "dynamic_key", violations)
    if len(request.name) > MAX_NAME_LENGTH:
        violations.add("name", f"must be at most {MAX_NAME_LENGTH} characters")
    new = TaskRunCreate(
        flow_run_id=flow_run_id or "",
        task_key=request.task_key,
        dynamic_key=request.dynamic_key,
        name=request.name or None,
        cache_key=request.cache_key or None,
        cache_expiration=optional_utc(request, "cache_expiration"),
        task_version=request.task_version or None,
        empirical_policy=task_run_policy(request.empirical_policy, "empirical_policy", violations),
        tags=check_tags(list(request.tags), "tags", violations),
        labels=labels(request, "labels", violations),
        task_inputs=task_inputs(request.task_inputs, "task_inputs", violations),
    )
    if request.HasField("state"):
        new.state = proposed_state(request.state, "state", now, violations)
    violations.raise_if_any()
    return new


# -- deployments, work pools and work queues ------------------------------------------------

COLLISION_STRATEGIES = {
    deployment_pb2.COLLISION_STRATEGY_UNSPECIFIED: CollisionStrategy.ENQUEUE,
    deployment_pb2.COLLISION_STRATEGY_ENQUEUE: CollisionStrategy.ENQUEUE,
    deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW: CollisionStrategy.CANCEL_NEW,
}
MIN_GRACE_PERIOD_SECONDS = 60
MAX_GRACE_PERIOD_SECONDS = 24 * 60 * 60


def required_text(value: str, field: str) -> str:
    """A non-empty string field (names that address a resource)."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    return value


def optional_limit(parent: Message, field: str, violations: Violations) -> int | None:
    """An optional non-negative concurrency limit."""
    if not parent.HasField(field):
        return None
    value = getattr(parent, field)
    if value < 0:
        violations.add(field, "must not be negative")
    return value


def grace_period_seconds(options: deployment_pb2.ConcurrencyOptions, field: str, violations: Violations) -> int | None:
    if not options.HasField("grace_period"):
        return None
    period = options.grace_period
    if period.nanos or not MIN_GRACE_PERIOD_SECONDS <= period.seconds <= MAX_GRACE_PERIOD_SECONDS:
        violations.add(
            field,
            f"must be whole seconds from {MIN_GRACE_PERIOD_SECONDS} s to {MAX_GRACE_PERIOD_SECONDS} s",
        )
    return period.seconds


MAX_HEARTBEAT_TIMEOUT_SECONDS = 7 * 24 * 60 * 60


def heartbeat_timeout_seconds(
    request: flow_run_service_pb2.CreateFlowRunRequest | deployment_service_pb2.CreateDeploymentRequest,
    violations: Violations,
) -> int | None:
    """The request's heartbeat_timeout in whole seconds (0: off), or None when unset."""
    if not request.HasField("heartbeat_timeout"):
        return None
    timeout = request.heartbeat_timeout
    if timeout.nanos or not 0 <= timeout.seconds <= MAX_HEARTBEAT_TIMEOUT_SECONDS:
        violations.add("heartbeat_timeout", f"must be whole seconds from 0 to {MAX_HEARTBEAT_TIMEOUT_SECONDS} s")
    return timeout.seconds


def deployment_create(
    request: deployment_service_pb2.CreateDeploymentRequest, max_parameter_bytes: int
) -> DeploymentCreate:
    violations = Violations()
    flow_id = uuid_text(request.flow_id, "flow_id", violations)
    check_name(request.name, "name", violations)
    if len(request.version) > MAX_TEXT_LENGTH:
        violations.add("version", f"must be at most {MAX_TEXT_LENGTH} characters")
    if request.work_queue_name and len(request.work_queue_name) > MAX_NAME_LENGTH:
        violations.add("work_queue_name", f"must be at most {MAX_NAME_LENGTH} characters")
    parameters = struct_dict(request, "parameters") or {}
    check_size(parameters, max_parameter_bytes, "parameters", violations)
    options = request.concurrency_options
    strategy = COLLISION_STRATEGIES.get(options.collision_strategy)
    if strategy is None:
        violations.add(
            "concurrency_options.collision_strategy", f"unknown CollisionStrategy value {options.collision_strategy}"
        )
    new = DeploymentCreate(
        flow_id=flow_id or "",
        name=request.name,
        version=request.version or None,
        work_pool_name=request.work_pool_name or None,
        work_queue_name=request.work_queue_name or None,
        paused=request.paused,
        tags=check_tags(list(request.tags), "tags", violations),
        labels=labels(request, "labels", violations),
        parameters=parameters,
        job_variables=struct_dict(request, "job_variables") or {},
        concurrency_limit=optional_limit(request, "concurrency_limit", violations),
        collision_strategy=strategy or CollisionStrategy.ENQUEUE,
        grace_period_seconds=grace_period_seconds(options, "concurrency_options.grace_period", violations),
        heartbeat_timeout_seconds=heartbeat_timeout_seconds(request, violations),
    )
    violations.raise_if_any()
    return new


def work_pool_create(request: work_pool_service_pb2.CreateWorkPoolRequest) -> WorkPoolCreate:
    violations = Violations()
    check_name(request.name, "name", violations)
    if len(request.type) > MAX_NAME_LENGTH:
        violations.add("type", f"must be at most {MAX_NAME_LENGTH} characters")
    if len(request.description) > MAX_MESSAGE_LENGTH:
        violations.add("description", f"must be at most {MAX_MESSAGE_LENGTH} characters")
    new = WorkPoolCreate(
        name=request.name,
        type=request.type or DEFAULT_POOL_TYPE,
        description=request.description or None,
        is_paused=request.is_paused,
        concurrency_limit=optional_limit(request, "concurrency_limit", violations),
    )
    violations.raise_if_any()
    return new


def work_queue_create(request: work_pool_service_pb2.CreateWorkQueueRequest) -> WorkQueueCreate:
    violations = Violations()
    if not request.work_pool_name:
        violations.add("work_pool_name", "is required")
    check_name(request.name, "name", violations)
    if request.priority < 0:
        violations.add("priority", "must not be negative")
    if len(request.description) > MAX_MESSAGE_LENGTH:
        violations.add("description", f"must be at most {MAX_MESSAGE_LENGTH} characters")
    new = WorkQueueCreate(
        work_pool_name=request.work_pool_name,
        name=request.name,
        priority=request.priority or HIGHEST_PRIORITY,
        concurrency_limit=optional_limit(request, "concurrency_limit", violations),
        is_paused=request.is_paused,
        description=request.description or None,
    )
    violations.raise_if_any()
    return new
