"""Domain -> proto: the one place responses are built."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import NullValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from flowrun.server import errors
from flowrun.server.domain.deployments import CollisionStrategy, Deployment, LeaseRenewal
from flowrun.server.domain.flow_runs import FlowRun, FlowRunPolicy
from flowrun.server.domain.flows import Flow
from flowrun.server.domain.graphs import Graph
from flowrun.server.domain.states import State, StateDetails, StateType
from flowrun.server.domain.task_runs import TaskInputs, TaskRun, TaskRunPolicy, upstream_task_run_ids
from flowrun.server.domain.work_pools import WorkPool, WorkQueue
from flowrun.server.orchestration.context import SetStateStatus, TransitionResult
from flowrun.server.orchestration.retry_rules import bounded_retry_delay
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2,
    flow_pb2,
    flow_run_pb2,
    flow_run_service_pb2,
    graph_pb2,
    state_pb2,
    task_run_pb2,
    work_pool_pb2,
)

# getattr, not StateType.Value(): the stubs type Value()'s result as a plain int.
STATE_TYPES: dict[StateType, state_pb2.StateType] = {
    state_type: getattr(state_pb2, f"STATE_TYPE_{state_type.value}") for state_type in StateType
}
SET_STATE_STATUSES = {
    status: state_pb2.SetStateStatus.Value(f"SET_STATE_STATUS_{status.value}") for status in SetStateStatus
}
RETRY_TYPES = {
    "in_process": flow_run_pb2.RETRY_TYPE_IN_PROCESS,
    "reschedule": flow_run_pb2.RETRY_TYPE_RESCHEDULE,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_PER_SECOND = 1_000_000_000


# Responses are written in place (message.created, message.state, ...): a sub-message
# built apart and passed to a constructor or CopyFrom is copied a second time, and
# Timestamp.FromDatetime / Duration.FromTimedelta are Python that goes through a time
# tuple; the set_* helpers compute the same fields in integer arithmetic.


def set_timestamp(message: Timestamp, value: datetime) -> None:
    """The fields Timestamp.FromDatetime(value) sets (a naive datetime is UTC), computed
    without its round trip through a time tuple."""
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    message.seconds = since.days * 86_400 + since.seconds
    message.nanos = since.microseconds * 1_000


def set_duration(message: Duration, value: timedelta | float) -> None:
    """The fields Duration.FromTimedelta sets (nanos take the sign of seconds); seconds
    as a float are rounded to microseconds, as timedelta does."""
    if not isinstance(value, timedelta):
        value = timedelta(seconds=value)
    seconds, nanos = value.days * 86_400 + value.seconds, value.microseconds * 1_000
    if seconds < 0 and nanos > 0:
        seconds, nanos = seconds + 1, nanos - _NANOS_PER_SECOND
    message.seconds = seconds
    message.nanos = nanos


def set_struct(message: Struct, value: dict[str, Any] | None) -> None:
    """The field set (present even when empty, an empty JSON object) to `value`."""
    message.SetInParent()
    if value:
        message.update(value)


def timestamp(value: datetime) -> Timestamp:
    message = Timestamp()
    set_timestamp(message, value)
    return message


def duration(value: timedelta | float) -> Duration:
    message = Duration()
    set_duration(message, value)
    return message


def struct(value: dict[str, Any] | None) -> Struct:
    message = Struct()
    if value:
        message.update(value)
    return message


def write_json_value(message: Value, value: Any) -> None:
    if value is None:
        message.null_value = NullValue.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, (int, float)):
        message.number_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, dict):
        message.struct_value.SetInParent()  # an empty object is still an object
        message.struct_value.update(value)
    else:
        message.list_value.SetInParent()
        message.list_value.extend(value)


def json_value(value: Any) -> Value:
    message = Value()
    write_json_value(message, value)
    return message


def flow(value: Flow) -> flow_pb2.Flow:
    message = flow_pb2.Flow(id=value.id, name=value.name, tags=value.tags)
    set_timestamp(message.created, value.created)
    set_timestamp(message.updated, value.updated)
    set_struct(message.labels, value.labels)
    return message


def write_state_details(message: state_pb2.StateDetails, value: StateDetails) -> None:
    """Fills `message` (a fresh, empty StateDetails) and marks it present."""
    message.SetInParent()
    if value.flow_run_id:
        message.flow_run_id = value.flow_run_id
    if value.task_run_id:
        message.task_run_id = value.task_run_id
    if value.child_flow_run_id:
        message.child_flow_run_id = value.child_flow_run_id
    if value.cache_key:
        message.cache_key = value.cache_key
    if value.deferred:
        message.deferred = True
    if value.untrackable_result:
        message.untrackable_result = value.untrackable_result
    if value.pause_reschedule:
        message.pause_reschedule = value.pause_reschedule
    if value.pause_key:
        message.pause_key = value.pause_key
    if value.run_input_keyset:
        message.run_input_keyset.update(value.run_input_keyset)
    if value.transition_id:
        message.transition_id = value.transition_id
    if value.task_parameters_id:
        message.task_parameters_id = value.task_parameters_id
    if value.traceparent:
        message.traceparent = value.traceparent
    if value.deployment_concurrency_lease_id:
        message.deployment_concurrency_lease_id = value.deployment_concurrency_lease_id
    if value.scheduled_time is not None:
        set_timestamp(message.scheduled_time, value.scheduled_time)
    if value.cache_expiration is not None:
        set_timestamp(message.cache_expiration, value.cache_expiration)
    if value.pause_timeout is not None:
        set_timestamp(message.pause_timeout, value.pause_timeout)
    if value.refresh_cache is not None:
        message.refresh_cache = value.refresh_cache
    if value.retriable is not None:
        message.retriable = value.retriable


def state_details(value: StateDetails) -> state_pb2.StateDetails:
    message = state_pb2.StateDetails()
    write_state_details(message, value)
    return message


def write_state(message: state_pb2.State, value: State) -> None:
    """Fills `message` (a fresh, empty State) and marks it present."""
    message.id = value.id
    message.type = STATE_TYPES[value.type]
    message.name = value.name
    if value.message:
        message.message = value.message
    set_timestamp(message.timestamp, value.timestamp)
    write_state_details(message.state_details, value.state_details)
    if value.data is not None:
        write_json_value(message.data, value.data)


def state(value: State) -> state_pb2.State:
    message = state_pb2.State()
    write_state(message, value)
    return message


def write_policy(message: flow_run_pb2.FlowRunPolicy, value: FlowRunPolicy) -> None:
    """Fills `message` (a fresh, empty FlowRunPolicy) and marks it present."""
    message.SetInParent()
    message.max_retries = value.max_retries
    message.retry_delay_seconds = value.retry_delay_seconds
    if value.pause_keys:
        message.pause_keys.extend(sorted(value.pause_keys))
    message.resuming = value.resuming
    if value.retries is not None:
        message.retries = value.retries
    if value.retry_delay is not None:  # clamped: a row stored before the limit may hold any number
        set_duration(message.retry_delay, bounded_retry_delay(value.retry_delay))
    if value.retry_type in RETRY_TYPES:
        message.retry_type = RETRY_TYPES[value.retry_type]


def policy(value: FlowRunPolicy) -> flow_run_pb2.FlowRunPolicy:
    message = flow_run_pb2.FlowRunPolicy()
    write_policy(message, value)
    return message


_FLOW_RUN_TIMES = (
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "last_heartbeat_time",
    "heartbeat_deadline",
)


def write_flow_run(message: flow_run_pb2.FlowRun, value: FlowRun, now: datetime) -> None:
    """Fills `message` (a fresh, empty FlowRun, usually a response's field) in place."""
    message.id = value.id
    message.name = value.name
    message.flow_id = value.flow_id
    message.run_count = value.run_count
    if value.state_id:
        message.state_id = value.state_id
    if value.deployment_id:
        message.deployment_id = value.deployment_id
    if value.deployment_version:
        message.deployment_version = value.deployment_version
    if value.work_queue_id:
        message.work_queue_id = value.work_queue_id
    if value.work_queue_name:
        message.work_queue_name = value.work_queue_name
    if value.flow_version:
        message.flow_version = value.flow_version
    if value.idempotency_key:
        message.idempotency_key = value.idempotency_key
    if value.tags:
        message.tags.extend(value.tags)
    if value.parent_task_run_id:
        message.parent_task_run_id = value.parent_task_run_id
    if value.state_type:
        message.state_type = STATE_TYPES[value.state_type]
    if value.state_name:
        message.state_name = value.state_name
    if value.auto_scheduled:
        message.auto_scheduled = True
    if value.infrastructure_document_id:
        message.infrastructure_document_id = value.infrastructure_document_id
    if value.infrastructure_pid:
        message.infrastructure_pid = value.infrastructure_pid
    if value.work_pool_id:
        message.work_pool_id = value.work_pool_id
    if value.work_pool_name:
        message.work_pool_name = value.work_pool_name
    set_timestamp(message.created, value.created)
    set_timestamp(message.updated, value.updated)
    set_struct(message.parameters, value.parameters)
    set_struct(message.context, value.context)
    set_struct(message.labels, value.labels)
    write_policy(message.empirical_policy, value.empirical_policy)
    set_duration(message.total_run_time, value.total_run_time)
    set_duration(message.estimated_run_time, value.estimated_run_time(now))
    set_duration(message.estimated_start_time_delta, value.estimated_start_time_delta(now))
    for name in _FLOW_RUN_TIMES:
        when = getattr(value, name)
        if when is not None:
            set_timestamp(getattr(message, name), when)
    if value.heartbeat_timeout_seconds is not None:
        set_duration(message.heartbeat_timeout, value.heartbeat_timeout_seconds)
    if value.created_by:
        created_by = message.created_by
        created_by.SetInParent()
        created_by.id = str(value.created_by.get("id") or "")
        created_by.type = value.created_by.get("type") or ""
        created_by.display_value = value.created_by.get("display_value") or ""
    if value.job_variables is not None:
        set_struct(message.job_variables, value.job_variables)
    if value.state is not None:
        write_state(message.state, value.state)


def flow_run(value: FlowRun, now: datetime) -> flow_run_pb2.FlowRun:
    message = flow_run_pb2.FlowRun()
    write_flow_run(message, value, now)
    return message


def write_task_run_dependency(message: graph_pb2.TaskRunDependency, value: TaskRun, now: datetime) -> None:
    """A task run as an entry of its flow run's dependency map: the task runs it depends
    on (upstream_task_run_ids: parameters, constants and flow-run inputs are skipped,
    where the reference fails the whole call) and its timing."""
    message.task_run_id = value.id
    message.name = value.name
    message.upstream_task_run_ids.extend(upstream_task_run_ids(value.task_inputs))
    set_duration(message.total_run_time, value.total_run_time)
    set_duration(message.estimated_run_time, value.estimated_run_time(now))
    message.untrackable_result = bool(value.state and value.state.state_details.untrackable_result)
    if value.state is not None:
        write_state(message.state, value.state)
    for name in ("expected_start_time", "start_time", "end_time"):
        when = getattr(value, name)
        if when is not None:
            set_timestamp(getattr(message, name), when)


# -- answers bounded by the response limit ----------------------------------------------
# GetTaskRunDependencies and GetFlowRunGraph answer a whole run at once, and what they
# hold grows with the ids the run's task runs name (a graph: with the square of its
# nodes), not only with the node count. They are built entry by entry, counting the
# exact encoded size as they go, and refused (TooLarge) as soon as the answer passes the
# response limit: gRPC would refuse to send it anyway, after it had been built whole.


def _varint_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _entry_bytes(field_number: int, size: int) -> int:
    """What a length-delimited field (a message or string) of `size` bytes adds to its
    parent's encoding: tag, length prefix and the bytes themselves."""
    return _varint_bytes(field_number << 3) + _varint_bytes(size) + size


def _over_limit(what: str, flow_run_id: str, max_bytes: int, remedy: str) -> errors.TooLarge:
    return errors.TooLarge(
        f"The {what} of flow run {flow_run_id} is larger than the response limit ({max_bytes} bytes); {remedy}",
        metadata={"flow_run_id": flow_run_id, "max_bytes": str(max_bytes)},
    )


_DEPENDENCIES = flow_run_service_pb2.GetTaskRunDependenciesResponse.DESCRIPTOR.fields_by_name["dependencies"].number


class DependencyMap:
    """A flow run's dependency map (see write_task_run_dependency), built from its task
    runs as they are read, at most `max_bytes` encoded: `add` raises TooLarge as soon as
    the entries built pass it, so the rows of the rest need not be read at all."""

    def __init__(self, now: datetime, *, max_bytes: int, flow_run_id: str) -> None:
        self.response = flow_run_service_pb2.GetTaskRunDependenciesResponse()
        self._now = now
        self._max_bytes = max_bytes
        self._flow_run_id = flow_run_id
        self._used = 0

    def __len__(self) -> int:
        return len(self.response.dependencies)

    def add(self, value: TaskRun) -> None:
        entry = self.response.dependencies.add()
        write_task_run_dependency(entry, value, self._now)
        self._used += _entry_bytes(_DEPENDENCIES, entry.ByteSize())
        if self._used > self._max_bytes:
            raise _over_limit(
                "task-run dependency map",
                self._flow_run_id,
                self._max_bytes,
                "it cannot be answered whole by this server",
            )


def task_run_dependencies(
    values: Iterable[TaskRun], now: datetime, *, max_bytes: int, flow_run_id: str
) -> flow_run_service_pb2.GetTaskRunDependenciesResponse:
    """The dependency map of task runs at hand (see DependencyMap)."""
    answer = DependencyMap(now, max_bytes=max_bytes, flow_run_id=flow_run_id)
    for value in values:
        answer.add(value)
    return answer.response


_NODES = graph_pb2.FlowRunGraph.DESCRIPTOR.fields_by_name["nodes"].number
_STATES = graph_pb2.FlowRunGraph.DESCRIPTOR.fields_by_name["states"].number
_GRAPH_IN_RESPONSE = flow_run_service_pb2.GetFlowRunGraphResponse.DESCRIPTOR.fields_by_name["graph"].number
_NODE_ID_LISTS = {
    name: graph_pb2.GraphNode.DESCRIPTOR.fields_by_name[name].number
    for name in ("parent_ids", "child_ids", "encapsulating_ids")
}


def graph_edge_counter(*, max_bytes: int, flow_run_id: str) -> Callable[[str, str], None]:
    """Counts the ids a graph's edges put in its nodes' lists (`parent_ids`, `child_ids`,
    `encapsulating_ids`), called by the repository with each list's name and id as it
    finds them in the task runs' inputs. Each is an entry of the answer, so their sum is
    at most its size: past the limit the read stops with graph_response's own TooLarge,
    and the edges held while reading never outgrow what an answer could hold."""
    used = 0

    def count(list_name: str, node_id: str) -> None:
        nonlocal used
        used += _entry_bytes(_NODE_ID_LISTS[list_name], len(node_id.encode()))
        if _entry_bytes(_GRAPH_IN_RESPONSE, used) > max_bytes:
            raise _graph_over_limit(flow_run_id, max_bytes)

    return count


def _graph_over_limit(flow_run_id: str, max_bytes: int) -> errors.TooLarge:
    return _over_limit("graph", flow_run_id, max_bytes, "pass a later `since` to return fewer nodes")


def graph_response(value: Graph, *, max_bytes: int, flow_run_id: str) -> flow_run_service_pb2.GetFlowRunGraphResponse:
    """A flow run's graph, at most `max_bytes` encoded (the whole response); TooLarge as
    soon as the states and nodes built pass it."""
    response = flow_run_service_pb2.GetFlowRunGraphResponse()
    message = response.graph
    message.SetInParent()
    message.root_node_ids.extend(value.root_node_ids)
    if value.start_time is not None:
        set_timestamp(message.start_time, value.start_time)
    if value.end_time is not None:
        set_timestamp(message.end_time, value.end_time)
    used = 0

    def spend(entry_bytes: int) -> None:
        """Counts an entry of the graph; the graph sits in the response behind its own
        tag and length prefix."""
        nonlocal used
        used += entry_bytes
        if _entry_bytes(_GRAPH_IN_RESPONSE, used) > max_bytes:
            raise _graph_over_limit(flow_run_id, max_bytes)

    spend(message.ByteSize())
    for item in value.states:
        graph_state = message.states.add(id=item.id, type=STATE_TYPES[item.type], name=item.name)
        set_timestamp(graph_state.timestamp, item.timestamp)
        spend(_entry_bytes(_STATES, graph_state.ByteSize()))
    for node in value.nodes:
        entry = message.nodes.add(
            kind=GRAPH_NODE_KINDS[node.kind],
            id=node.id,
            label=node.label,
            state_type=STATE_TYPES[node.state_type] if node.state_type else 0,
            parent_ids=node.parent_ids,
            child_ids=node.child_ids,
            encapsulating_ids=node.encapsulating_ids,
        )
        set_timestamp(entry.start_time, node.start_time)
        if node.end_time is not None:
            set_timestamp(entry.end_time, node.end_time)
        spend(_entry_bytes(_NODES, entry.ByteSize()))
    return response


def set_state_response(result: TransitionResult, response_type: Any) -> Any:
    """The orchestration outcome: status, resulting state and the matching details (as
    a SetFlowRunStateResponse, or the same-shaped SetTaskRunStateResponse)."""
    message = response_type(status=SET_STATE_STATUSES[result.status])
    if result.state is not None:
        write_state(message.state, result.state)
    reason = result.reason or ""
    if result.status == SetStateStatus.ACCEPT:
        message.accept.SetInParent()
    elif result.status == SetStateStatus.REJECT:
        message.reject.reason = reason
    elif result.status == SetStateStatus.ABORT:
        message.abort.reason = reason
    else:
        message.wait.reason = reason
        message.wait.delay.FromTimedelta(timedelta(seconds=result.delay_seconds or 0))
    return message


GRAPH_NODE_KINDS = {"task-run": graph_pb2.GRAPH_NODE_KIND_TASK_RUN, "flow-run": graph_pb2.GRAPH_NODE_KIND_FLOW_RUN}


def task_run_policy(value: TaskRunPolicy) -> task_run_pb2.TaskRunPolicy:
    message = task_run_pb2.TaskRunPolicy()
    if value.retries is not None:
        message.retries = value.retries
    if value.retry_delay is not None:  # clamped as a flow run's: rows stored before the limit
        set_duration(message.retry_delay, bounded_retry_delay(value.retry_delay))
    if value.retry_jitter_factor is not None:
        message.retry_jitter_factor = value.retry_jitter_factor
    return message


_TASK_INPUT_FIELDS = {
    "task_run": "task_run_id",
    "flow_run": "flow_run_id",
    "parameter": "parameter",
    "constant": "constant_type",
}
_TASK_INPUT_KEYS = {"task_run": "id", "flow_run": "id", "parameter": "name", "constant": "type"}


def task_inputs(value: TaskInputs) -> dict[str, task_run_pb2.TaskRunInputs]:
    """The stored JSON inputs as the proto map. Inputs of a kind this version does not
    know are left out."""
    result = {}
    for key, items in value.items():
        inputs = task_run_pb2.TaskRunInputs()
        for item in items:
            kind = item.get("input_type")
            if kind in _TASK_INPUT_FIELDS:
                inputs.inputs.add(**{_TASK_INPUT_FIELDS[kind]: str(item.get(_TASK_INPUT_KEYS[kind]) or "")})
        result[key] = inputs
    return result


def task_run(value: TaskRun, now: datetime) -> task_run_pb2.TaskRun:
    message = task_run_pb2.TaskRun(
        id=value.id,
        created=timestamp(value.created),
        updated=timestamp(value.updated),
        name=value.name,
        flow_run_id=value.flow_run_id or "",
        task_key=value.task_key,
        dynamic_key=value.dynamic_key,
        cache_key=value.cache_key or "",
        task_version=value.task_version or "",
        empirical_policy=task_run_policy(value.empirical_policy),
        tags=value.tags,
        labels=struct(value.labels),
        task_inputs=task_inputs(value.task_inputs),
        state_id=value.state_id or "",
        state_type=STATE_TYPES[value.state_type] if value.state_type else state_pb2.STATE_TYPE_UNSPECIFIED,
        state_name=value.state_name or "",
        run_count=value.run_count,
        flow_run_run_count=value.flow_run_run_count,
        total_run_time=duration(value.total_run_time),
        estimated_run_time=duration(value.estimated_run_time(now)),
    )
    for name in ("cache_expiration", "expected_start_time", "next_scheduled_start_time", "start_time", "end_time"):
        when = getattr(value, name)
        if when is not None:
            getattr(message, name).FromDatetime(when)
    if value.state is not None:
        message.state.CopyFrom(state(value.state))
    return message


# -- deployments, work pools and work queues ------------------------------------------------

COLLISION_STRATEGIES = {
    CollisionStrategy.ENQUEUE: deployment_pb2.COLLISION_STRATEGY_ENQUEUE,
    CollisionStrategy.CANCEL_NEW: deployment_pb2.COLLISION_STRATEGY_CANCEL_NEW,
}


def deployment(value: Deployment) -> deployment_pb2.Deployment:
    options = deployment_pb2.ConcurrencyOptions(collision_strategy=COLLISION_STRATEGIES[value.collision_strategy])
    if value.grace_period_seconds is not None:
        options.grace_period.CopyFrom(duration(value.grace_period_seconds))
    message = deployment_pb2.Deployment(
        id=value.id,
        created=timestamp(value.created),
        updated=timestamp(value.updated),
        name=value.name,
        flow_id=value.flow_id,
        version=value.version or "",
        work_pool_name=value.work_pool_name or "",
        work_queue_name=value.work_queue_name or "",
        work_queue_id=value.work_queue_id or "",
        paused=value.paused,
        tags=value.tags,
        labels=struct(value.labels),
        parameters=struct(value.parameters),
        job_variables=struct(value.job_variables),
        concurrency_options=options,
        active_slots=value.active_slots,
    )
    if value.concurrency_limit is not None:
        message.concurrency_limit = value.concurrency_limit
    if value.heartbeat_timeout_seconds is not None:
        message.heartbeat_timeout.CopyFrom(duration(value.heartbeat_timeout_seconds))
    return message


def heartbeat_response(
    deadline: datetime | None, timeout_seconds: int | None
) -> flow_run_service_pb2.HeartbeatFlowRunResponse:
    """The deadline a heartbeat set; both absent when the run's heartbeat checking is off."""
    message = flow_run_service_pb2.HeartbeatFlowRunResponse()
    if deadline is not None:
        message.deadline.CopyFrom(timestamp(deadline))
    if timeout_seconds:
        message.heartbeat_timeout.CopyFrom(duration(timeout_seconds))
    return message


def lease_renewal(value: LeaseRenewal) -> deployment_service_pb2.RenewConcurrencyLeaseResponse:
    return deployment_service_pb2.RenewConcurrencyLeaseResponse(
        expiration=timestamp(value.expiration), ttl=duration(value.ttl_seconds)
    )


def work_pool(value: WorkPool) -> work_pool_pb2.WorkPool:
    message = work_pool_pb2.WorkPool(
        id=value.id,
        created=timestamp(value.created),
        updated=timestamp(value.updated),
        name=value.name,
        type=value.type,
        description=value.description or "",
        is_paused=value.is_paused,
        default_queue_id=value.default_queue_id or "",
    )
    if value.concurrency_limit is not None:
        message.concurrency_limit = value.concurrency_limit
    return message


def work_queue(value: WorkQueue) -> work_pool_pb2.WorkQueue:
    message = work_pool_pb2.WorkQueue(
        id=value.id,
        created=timestamp(value.created),
        updated=timestamp(value.updated),
        name=value.name,
        work_pool_id=value.work_pool_id,
        work_pool_name=value.work_pool_name,
        priority=value.priority,
        is_paused=value.is_paused,
        description=value.description or "",
    )
    if value.concurrency_limit is not None:
        message.concurrency_limit = value.concurrency_limit
    return message
