"""An async Python client for the flowrun gRPC API.

The generated stubs are complete but verbose: every call needs a request message, a
response unwrap and error decoding. FlowrunClient does those three things and nothing
else, so each method maps one to one onto an RPC documented in protos/flowrun/v1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from flowrun.client.errors import from_rpc_error
from flowrun.client.heartbeat import RunHeartbeat
from flowrun.client.retry import NO_RETRIES, RetryPolicy, retryable
from flowrun.client.tls import TlsConfig
from flowrun.client.watch import resuming
from flowrun.v1 import (
    deployment_pb2,
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    filters_pb2,
    flow_pb2,
    flow_run_pb2,
    flow_run_service_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    graph_pb2,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
    work_pool_pb2,
    work_pool_service_pb2,
    work_pool_service_pb2_grpc,
)

__all__ = ["DEFAULT_TARGET", "FlowRunUpdate", "FlowrunClient", "RetryPolicy", "TlsConfig", "default_target"]

DEFAULT_TARGET = "127.0.0.1:50051"

# Keepalive detects dead connections (for example behind a NAT or load balancer that
# drops idle flows) without tripping the server's ping policy, which allows one ping
# every 10 s: a ping every 30 s stays well inside it. Results can be large (a page of
# 200 runs with parameters of up to 512 KiB each), hence 16 MiB instead of gRPC's 4.
# gRPC's transparent retries resend a request that never reached a handler; every other
# retry is FlowrunClient's own (client/retry.py says why there is no retryPolicy).
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.enable_retries", 1),
]


def default_target() -> str:
    """The server to dial when none is given: $FLOWRUN_TARGET, else DEFAULT_TARGET."""
    return os.environ.get("FLOWRUN_TARGET") or DEFAULT_TARGET


_Response = TypeVar("_Response", bound=Message)
_Item = TypeVar("_Item")


class FlowRunUpdate(TypedDict, total=False):
    """The fields UpdateFlowRun may change; the keys given become the update mask."""

    name: str
    flow_version: str
    parameters: Mapping[str, Any]
    empirical_policy: flow_run_pb2.FlowRunPolicy
    tags: Iterable[str]
    infrastructure_pid: str
    job_variables: Mapping[str, Any]


_UPDATABLE_FLOW_RUN_FIELDS = frozenset(FlowRunUpdate.__annotations__)


class FlowrunClient:
    """Async client for FlowService, FlowRunService, DeploymentService, WorkPoolService
    and TaskRunService.

    Use it as an async context manager so that a channel it opened is closed:

        async with FlowrunClient("127.0.0.1:50051") as client:
            flow, created = await client.create_flow("etl")

    With no `target`, the client dials $FLOWRUN_TARGET, else 127.0.0.1:50051 (as the
    `flowrun` command does).

    Pass `tls` (a TlsConfig: the server's CA file, and for mTLS this client's certificate
    and key files) to connect over TLS. Pass `channel` to share one channel between
    clients; the client then leaves closing it to you. `timeout` (seconds, None for no
    deadline) is the deadline of every call, retries included. `token` is sent as
    `authorization: Bearer <token>` on every call (servers with FLOWRUN_AUTH_TOKENS_FILE).
    Failed calls raise a FlowrunError subclass chained to the grpc.aio.AioRpcError of the
    last attempt.

    Calls are retried by `retry` (a RetryPolicy; None turns retries off): ABORTED always
    (the server rolled back), UNAVAILABLE for calls that are safe to repeat, with
    exponential backoff and jitter that waits at least the server's RetryInfo delay;
    see client/retry.py. set_flow_run_state sends a transition id (a fresh UUID unless
    you give one), the same in every attempt, so a retried transition is not applied
    twice. The client is built on grpc.aio, so create it inside a running event loop;
    code without one uses SyncClient (client/sync.py), the same methods without await.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = RetryPolicy(),
        tls: TlsConfig | None = None,
        token: str | None = None,
    ) -> None:
        # The bearer token goes in every call's metadata, which works on plaintext and TLS
        # channels alike (grpc's call credentials refuse plaintext channels).
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        if target is None:
            target = default_target()
        self._owns_channel = channel is None
        self._retry = retry or NO_RETRIES
        if channel is None and tls is not None:
            channel = grpc.aio.secure_channel(
                target, tls.credentials(), options=CHANNEL_OPTIONS + tls.channel_options()
            )
        elif channel is None:
            channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._channel = channel
        self._timeout = timeout
        self._flows = flow_service_pb2_grpc.FlowServiceStub(self._channel)
        self._flow_runs = flow_run_service_pb2_grpc.FlowRunServiceStub(self._channel)
        self._deployments = deployment_service_pb2_grpc.DeploymentServiceStub(self._channel)
        self._work_pools = work_pool_service_pb2_grpc.WorkPoolServiceStub(self._channel)
        self._task_runs = task_run_service_pb2_grpc.TaskRunServiceStub(self._channel)

    async def __aenter__(self) -> FlowrunClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel if this client opened it; a caller's channel stays open."""
        if self._owns_channel:
            await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[_Response]], request: Message) -> _Response:
        """Invoke one unary RPC with the client's deadline, retries and typed errors.

        The same `request` is sent in every attempt. Each attempt gets the time left
        until the call's deadline; no retry starts that could not end before it.
        """
        policy = self._retry
        deadline = None if self._timeout is None else policy.clock() + self._timeout
        attempt = 0
        while True:
            attempt += 1
            timeout = None if deadline is None else max(deadline - policy.clock(), 0.0)
            try:
                return await method(request, timeout=timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                error.attempts = attempt
                if attempt >= policy.max_attempts or not retryable(exc.code(), request):
                    raise error from exc
                delay = policy.delay(attempt, error.retry_delay)
                if deadline is not None and policy.clock() + delay >= deadline:
                    raise error from exc
            await policy.sleep(delay)

    # FlowService

    async def create_flow(
        self,
        name: str,
        *,
        tags: Iterable[str] = (),
        labels: Mapping[str, Any] | None = None,
    ) -> tuple[flow_pb2.Flow, bool]:
        """Get or create the flow with this name; the bool is True if this call created it.

        An existing flow is returned unchanged: tags and labels only apply to a new one.
        """
        request = flow_service_pb2.CreateFlowRequest(name=name, tags=tags, labels=_struct_or_none(labels))
        response = await self._call(self._flows.CreateFlow, request)
        return response.flow, response.created

    async def get_flow(self, flow_id: str) -> flow_pb2.Flow:
        """Return one flow by id."""
        request = flow_service_pb2.GetFlowRequest(flow_id=flow_id)
        return (await self._call(self._flows.GetFlow, request)).flow

    async def get_flow_by_name(self, name: str) -> flow_pb2.Flow:
        """Return one flow by its exact name."""
        request = flow_service_pb2.GetFlowByNameRequest(name=name)
        return (await self._call(self._flows.GetFlowByName, request)).flow

    async def list_flows(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        sort: filters_pb2.FlowSort = filters_pb2.FLOW_SORT_UNSPECIFIED,
        offset: int = 0,
        limit: int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[flow_pb2.Flow], str]:
        """Return one page of flows and the next page token ("" on the last page).

        A flow matches when every filter given matches: `flow_run_filter`,
        `task_run_filter` and `deployment_filter` keep the flows that have at least one
        matching run, task run or deployment, `work_pool_filter` those with a deployment
        on a matching pool. Page with either offset/limit or page_size/page_token, not both;
        iter_flows follows the tokens for you.
        """
        request = flow_service_pb2.ListFlowsRequest(
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
            sort=sort,
            offset=offset,
            limit=limit,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._call(self._flows.ListFlows, request)
        return list(response.flows), response.next_page_token

    def iter_flows(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        sort: filters_pb2.FlowSort = filters_pb2.FLOW_SORT_UNSPECIFIED,
        page_size: int = 200,
    ) -> AsyncIterator[flow_pb2.Flow]:
        """Yield every matching flow (filters as in list_flows), fetching pages lazily by page token.

        Tokens are stable under concurrent inserts, so no flow is skipped or repeated.
        """
        return _iter_pages(
            self.list_flows,
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
            sort=sort,
            page_size=page_size,
        )

    async def count_flows(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
    ) -> int:
        """Count the flows matching the filters (as in list_flows)."""
        request = flow_service_pb2.CountFlowsRequest(
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
        )
        return (await self._call(self._flows.CountFlows, request)).count

    async def update_flow(self, flow_id: str, *, tags: Iterable[str]) -> flow_pb2.Flow:
        """Replace a flow's tags (its only updatable field) and return the flow."""
        request = flow_service_pb2.UpdateFlowRequest(
            flow=flow_pb2.Flow(id=flow_id, tags=tags),
            update_mask=field_mask_pb2.FieldMask(paths=["tags"]),
        )
        return (await self._call(self._flows.UpdateFlow, request)).flow

    async def delete_flow(self, flow_id: str) -> None:
        """Delete a flow with its runs and their states."""
        request = flow_service_pb2.DeleteFlowRequest(flow_id=flow_id)
        await self._call(self._flows.DeleteFlow, request)

    async def delete_flows(self, flow_ids: Iterable[str]) -> list[str]:
        """Delete up to 200 flows; return the ids that existed (unknown ids are skipped)."""
        request = flow_service_pb2.DeleteFlowsRequest(flow_ids=flow_ids)
        return list((await self._call(self._flows.DeleteFlows, request)).deleted_flow_ids)

    async def get_flow_labels(self, flow_id: str) -> dict[str, Any]:
        """Return a flow's labels as a dict (empty when it has none)."""
        request = flow_service_pb2.GetFlowLabelsRequest(flow_id=flow_id)
        return _dict((await self._call(self._flows.GetFlowLabels, request)).labels)

    # FlowRunService

    async def create_flow_run(
        self,
        flow_id: str,
        *,
        name: str = "",
        state: state_pb2.StateCreate | None = None,
        parameters: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        labels: Mapping[str, Any] | None = None,
        idempotency_key: str = "",
        empirical_policy: flow_run_pb2.FlowRunPolicy | None = None,
        flow_version: str = "",
        work_pool_name: str = "",
        work_queue_name: str = "",
        job_variables: Mapping[str, Any] | None = None,
        deployment_id: str = "",
        parent_task_run_id: str = "",
        infrastructure_document_id: str = "",
        heartbeat_timeout_seconds: int | None = None,
    ) -> tuple[flow_run_pb2.FlowRun, bool]:
        """Create a run of a flow; the bool is False when `idempotency_key` matched an existing run.

        With no `state` the run starts PENDING. Retrying with the same idempotency key
        is safe: the first run is returned unchanged. `work_pool_name` and
        `work_queue_name` queue the run by name (an empty queue name with a pool name
        means the pool's default queue). `heartbeat_timeout_seconds` (0: off; None: the
        deployment's or the server's default) lets the server crash the run when it goes
        that long without a heartbeat while RUNNING (see `heartbeat`).
        """
        request = flow_run_service_pb2.CreateFlowRunRequest(
            flow_id=flow_id,
            name=name,
            state=state,
            parameters=_struct_or_none(parameters),
            context=_struct_or_none(context),
            tags=tags,
            labels=_struct_or_none(labels),
            idempotency_key=idempotency_key,
            empirical_policy=empirical_policy,
            flow_version=flow_version,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=_struct_or_none(job_variables),
            deployment_id=deployment_id,
            parent_task_run_id=parent_task_run_id,
            infrastructure_document_id=infrastructure_document_id,
            heartbeat_timeout=(
                None if heartbeat_timeout_seconds is None else duration_pb2.Duration(seconds=heartbeat_timeout_seconds)
            ),
        )
        response = await self._call(self._flow_runs.CreateFlowRun, request)
        return response.flow_run, response.created

    async def get_flow_run(self, flow_run_id: str) -> flow_run_pb2.FlowRun:
        """Return one run with its current state."""
        request = flow_run_service_pb2.GetFlowRunRequest(flow_run_id=flow_run_id)
        return (await self._call(self._flow_runs.GetFlowRun, request)).flow_run

    async def list_flow_runs(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        work_queue_filter: filters_pb2.WorkQueueFilter | None = None,
        sort: filters_pb2.FlowRunSort = filters_pb2.FLOW_RUN_SORT_UNSPECIFIED,
        offset: int = 0,
        limit: int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[flow_run_pb2.FlowRun], str]:
        """Return one page of runs and the next page token ("" on the last page).

        A run matches when every filter given matches: `flow_filter` its flow,
        `deployment_filter` its deployment, `work_pool_filter` and `work_queue_filter`
        the pool and queue it was queued on, `task_run_filter` at least one of its task
        runs. Page with either offset/limit or page_size/page_token, not both;
        iter_flow_runs follows the tokens for you.
        """
        request = flow_run_service_pb2.ListFlowRunsRequest(
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
            work_queue_filter=work_queue_filter,
            sort=sort,
            offset=offset,
            limit=limit,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._call(self._flow_runs.ListFlowRuns, request)
        return list(response.flow_runs), response.next_page_token

    def iter_flow_runs(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        work_queue_filter: filters_pb2.WorkQueueFilter | None = None,
        sort: filters_pb2.FlowRunSort = filters_pb2.FLOW_RUN_SORT_UNSPECIFIED,
        page_size: int = 200,
    ) -> AsyncIterator[flow_run_pb2.FlowRun]:
        """Yield every matching run (filters as in list_flow_runs), fetching pages lazily by page token.

        Tokens are stable under concurrent inserts, so no run is skipped or repeated.
        """
        return _iter_pages(
            self.list_flow_runs,
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
            work_queue_filter=work_queue_filter,
            sort=sort,
            page_size=page_size,
        )

    async def count_flow_runs(
        self,
        *,
        flow_filter: filters_pb2.FlowFilter | None = None,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        work_queue_filter: filters_pb2.WorkQueueFilter | None = None,
    ) -> int:
        """Count the runs matching the filters (as in list_flow_runs)."""
        request = flow_run_service_pb2.CountFlowRunsRequest(
            flow_filter=flow_filter,
            flow_run_filter=flow_run_filter,
            task_run_filter=task_run_filter,
            deployment_filter=deployment_filter,
            work_pool_filter=work_pool_filter,
            work_queue_filter=work_queue_filter,
        )
        return (await self._call(self._flow_runs.CountFlowRuns, request)).count

    async def update_flow_run(self, flow_run_id: str, **fields: Unpack[FlowRunUpdate]) -> flow_run_pb2.FlowRun:
        """Change exactly the fields given and return the run.

        The update mask lists the given keyword names, so `name=""` really clears the
        name (the server then assigns a random one) instead of being ignored. A run's
        state is not writable here: use set_flow_run_state.
        """
        unknown = set(fields) - _UPDATABLE_FLOW_RUN_FIELDS
        if unknown:
            raise TypeError(f"update_flow_run() cannot update: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = dict(fields)
        for key in ("parameters", "job_variables"):
            if key in values:
                values[key] = _struct(values[key])
        request = flow_run_service_pb2.UpdateFlowRunRequest(
            flow_run=flow_run_pb2.FlowRun(id=flow_run_id, **values),
            update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
        )
        return (await self._call(self._flow_runs.UpdateFlowRun, request)).flow_run

    async def delete_flow_run(self, flow_run_id: str) -> None:
        """Delete a run with its states."""
        request = flow_run_service_pb2.DeleteFlowRunRequest(flow_run_id=flow_run_id)
        await self._call(self._flow_runs.DeleteFlowRun, request)

    async def set_flow_run_state(
        self,
        flow_run_id: str,
        state: state_pb2.StateCreate | state_pb2.StateType,
        *,
        force: bool = False,
        name: str = "",
        message: str = "",
        transition_id: str | None = None,
    ) -> flow_run_service_pb2.SetFlowRunStateResponse:
        """Propose a state and return the orchestration outcome.

        Orchestration outcomes (ACCEPT, REJECT, WAIT, ABORT) are in the response's
        `status`, not raised: only bad input and faults raise. `state` is either a full
        StateCreate or a StateType value, in which case `name` and `message` fill in the
        rest.

        The proposal carries a transition id: `transition_id`, else the one in `state`,
        else a fresh UUID. The client's own retries resend it unchanged; reuse it
        yourself when you resend after a call that failed (a timeout), so a proposal
        that was already applied is not applied twice: the server then answers REJECT
        with the current state and reason "This run has already made this state
        transition.". With `force` the server skips that check, so a forced proposal is
        retried only after ABORTED (nothing was applied).
        """
        proposed = _proposed_state(state, name, message)
        if transition_id is not None:
            proposed.state_details.transition_id = transition_id
        elif not proposed.state_details.transition_id:
            proposed.state_details.transition_id = str(uuid.uuid4())
        request = flow_run_service_pb2.SetFlowRunStateRequest(flow_run_id=flow_run_id, state=proposed, force=force)
        return await self._call(self._flow_runs.SetFlowRunState, request)

    async def heartbeat_flow_run(self, flow_run_id: str) -> flow_run_service_pb2.HeartbeatFlowRunResponse:
        """Tell the server the run's executor is alive; the answer holds the next deadline.
        FailedPreconditionError (metadata "state_type") when the run is not RUNNING."""
        request = flow_run_service_pb2.HeartbeatFlowRunRequest(flow_run_id=flow_run_id)
        return await self._call(self._flow_runs.HeartbeatFlowRun, request)

    def heartbeat(self, flow_run_id: str, *, interval: float | None = None) -> RunHeartbeat:
        """`async with client.heartbeat(run_id) as beat:` sends heartbeats for the run
        while the block runs: one on entering, then every third of the run's heartbeat
        timeout (or every `interval` seconds). `beat.lost` is set when the server says the
        run is no longer RUNNING; see client/heartbeat.py."""
        return RunHeartbeat(self.heartbeat_flow_run, flow_run_id, interval=interval)

    def watch_flow_runs(
        self,
        *,
        flow_run_filter: filters_pb2.FlowRunFilter | None = None,
        cursor: str = "",
        snapshot: bool = False,
        progress: bool = False,
    ) -> AsyncIterator[flow_run_service_pb2.WatchFlowRunsResponse]:
        """Yield the changes of the matching runs as they commit, forever (break out of
        the loop to stop): WatchFlowRunsResponse messages whose `event` is a
        FlowRunEvent (CREATED, STATE_CHANGED, UPDATED, DELETED, each with its `cursor`).

        The filter supports `id`, `flow_id`, `deployment_id`, `tags` and `state.type`.
        With `cursor`, start right after it; else with `snapshot`, first every matching
        run as it is now (`snapshot_run` messages, then a `progress` one with
        snapshot_complete); else from now. A broken stream (UNAVAILABLE: a server went
        away; RESOURCE_EXHAUSTED: this reader fell behind) is opened again from the last
        cursor, so nothing is missed or repeated (client/watch.py). `progress` also
        yields the heartbeats. No deadline applies.
        """
        start = flow_run_service_pb2.WATCH_START_SNAPSHOT if snapshot else flow_run_service_pb2.WATCH_START_NOW

        def open_stream(at: str) -> Any:
            # batch: busy streams send fewer messages; the iterator yields them one by one.
            request = flow_run_service_pb2.WatchFlowRunsRequest(
                flow_run_filter=flow_run_filter, cursor=at, start=start, batch=True
            )
            return self._flow_runs.WatchFlowRuns(request, metadata=self._metadata)

        return resuming(open_stream, cursor, self._retry, progress=progress)

    def watch_flow_run(
        self, flow_run_id: str, *, cursor: str = "", keep_going: bool = False, progress: bool = False
    ) -> AsyncIterator[flow_run_service_pb2.WatchFlowRunResponse]:
        """Yield one run as it is now (`snapshot_run`, unless `cursor` is given), then
        its changes (`event`) in the order of its history; the iterator ends after the
        run reaches a terminal state (unless `keep_going`) or is deleted. Resumes like
        watch_flow_runs."""

        def open_stream(at: str) -> Any:
            request = flow_run_service_pb2.WatchFlowRunRequest(
                flow_run_id=flow_run_id, cursor=at, keep_going=keep_going
            )
            return self._flow_runs.WatchFlowRun(request, metadata=self._metadata)

        return resuming(open_stream, cursor, self._retry, progress=progress)

    async def get_task_run_dependencies(self, flow_run_id: str) -> list[graph_pb2.TaskRunDependency]:
        """Return every task run of a flow run with the task runs it depends on."""
        request = flow_run_service_pb2.GetTaskRunDependenciesRequest(flow_run_id=flow_run_id)
        response = await self._call(self._flow_runs.GetTaskRunDependencies, request)
        return list(response.dependencies)

    async def get_flow_run_graph(self, flow_run_id: str, *, since: datetime | None = None) -> graph_pb2.FlowRunGraph:
        """Return a run's task-run and subflow graph, keeping nodes that ended at or after `since`.

        A naive `since` is taken as UTC.
        """
        request = flow_run_service_pb2.GetFlowRunGraphRequest(flow_run_id=flow_run_id, since=_timestamp_or_none(since))
        return (await self._call(self._flow_runs.GetFlowRunGraph, request)).graph

    async def get_flow_run_state(self, state_id: str) -> state_pb2.State:
        """Return one state of a run's history by its id."""
        request = flow_run_service_pb2.GetFlowRunStateRequest(state_id=state_id)
        return (await self._call(self._flow_runs.GetFlowRunState, request)).state

    async def list_flow_run_states(
        self, flow_run_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[state_pb2.State], str]:
        """Return one page of a run's state history, oldest first, and the next page token."""
        request = flow_run_service_pb2.ListFlowRunStatesRequest(
            flow_run_id=flow_run_id, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._flow_runs.ListFlowRunStates, request)
        return list(response.states), response.next_page_token

    def iter_flow_run_states(self, flow_run_id: str, *, page_size: int = 200) -> AsyncIterator[state_pb2.State]:
        """Yield a run's whole state history, oldest first, fetching pages lazily."""
        return _iter_pages(self.list_flow_run_states, flow_run_id, page_size=page_size)

    async def delete_flow_run_state(self, state_id: str) -> None:
        """Delete one state from a run's history."""
        request = flow_run_service_pb2.DeleteFlowRunStateRequest(state_id=state_id)
        await self._call(self._flow_runs.DeleteFlowRunState, request)

    # DeploymentService

    async def create_deployment(
        self,
        flow_id: str,
        name: str,
        *,
        version: str = "",
        work_pool_name: str = "",
        work_queue_name: str = "",
        paused: bool = False,
        tags: Iterable[str] = (),
        labels: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        job_variables: Mapping[str, Any] | None = None,
        concurrency_limit: int | None = None,
        collision_strategy: deployment_pb2.CollisionStrategy = deployment_pb2.COLLISION_STRATEGY_UNSPECIFIED,
        grace_period_seconds: int | None = None,
    ) -> deployment_pb2.Deployment:
        """Create a deployment of a flow and return it.

        Not idempotent: an existing (flow, name) raises. `concurrency_limit` None means
        unlimited; `collision_strategy` and `grace_period_seconds` (60 s to 24 h, None for
        the server default) tune how that limit behaves.
        """
        options = None
        if collision_strategy or grace_period_seconds is not None:
            options = deployment_pb2.ConcurrencyOptions(
                collision_strategy=collision_strategy,
                grace_period=(
                    None if grace_period_seconds is None else duration_pb2.Duration(seconds=grace_period_seconds)
                ),
            )
        request = deployment_service_pb2.CreateDeploymentRequest(
            flow_id=flow_id,
            name=name,
            version=version,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            paused=paused,
            tags=tags,
            labels=_struct_or_none(labels),
            parameters=_struct_or_none(parameters),
            job_variables=_struct_or_none(job_variables),
            concurrency_limit=concurrency_limit,
            concurrency_options=options,
        )
        return (await self._call(self._deployments.CreateDeployment, request)).deployment

    async def get_deployment(self, deployment_id: str) -> deployment_pb2.Deployment:
        """Return one deployment with its active slot count."""
        request = deployment_service_pb2.GetDeploymentRequest(deployment_id=deployment_id)
        return (await self._call(self._deployments.GetDeployment, request)).deployment

    async def list_deployments(
        self,
        *,
        deployment_filter: filters_pb2.DeploymentFilter | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[deployment_pb2.Deployment], str]:
        """Return one page of deployments, by name, and the next page token ("" on the last page)."""
        request = deployment_service_pb2.ListDeploymentsRequest(
            deployment_filter=deployment_filter, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._deployments.ListDeployments, request)
        return list(response.deployments), response.next_page_token

    def iter_deployments(
        self, *, deployment_filter: filters_pb2.DeploymentFilter | None = None, page_size: int = 200
    ) -> AsyncIterator[deployment_pb2.Deployment]:
        """Yield every matching deployment, by name, fetching pages lazily."""
        return _iter_pages(self.list_deployments, deployment_filter=deployment_filter, page_size=page_size)

    async def delete_deployment(self, deployment_id: str) -> None:
        """Delete a deployment and its slot leases; its runs are kept."""
        request = deployment_service_pb2.DeleteDeploymentRequest(deployment_id=deployment_id)
        await self._call(self._deployments.DeleteDeployment, request)

    async def renew_concurrency_lease(self, lease_id: str) -> deployment_service_pb2.RenewConcurrencyLeaseResponse:
        """Extend a concurrency slot's lease by its deployment's grace period.

        `lease_id` is a run state's state_details.deployment_concurrency_lease_id. The
        response holds the new `expiration` and the `ttl` applied. An expired or
        released lease raises NotFoundError: the slot is gone.
        """
        request = deployment_service_pb2.RenewConcurrencyLeaseRequest(lease_id=lease_id)
        return await self._call(self._deployments.RenewConcurrencyLease, request)

    # WorkPoolService

    async def create_work_pool(
        self,
        name: str,
        *,
        type: str = "",
        description: str = "",
        is_paused: bool = False,
        concurrency_limit: int | None = None,
    ) -> work_pool_pb2.WorkPool:
        """Create a work pool with its queue "default" and return it.

        Not idempotent: an existing name raises. An empty `type` means "process".
        """
        request = work_pool_service_pb2.CreateWorkPoolRequest(
            name=name,
            type=type,
            description=description,
            is_paused=is_paused,
            concurrency_limit=concurrency_limit,
        )
        return (await self._call(self._work_pools.CreateWorkPool, request)).work_pool

    async def get_work_pool(self, name: str) -> work_pool_pb2.WorkPool:
        """Return one work pool by name."""
        request = work_pool_service_pb2.GetWorkPoolRequest(name=name)
        return (await self._call(self._work_pools.GetWorkPool, request)).work_pool

    async def list_work_pools(
        self,
        *,
        work_pool_filter: filters_pb2.WorkPoolFilter | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[work_pool_pb2.WorkPool], str]:
        """Return one page of work pools, by name, and the next page token ("" on the last page)."""
        request = work_pool_service_pb2.ListWorkPoolsRequest(
            work_pool_filter=work_pool_filter, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._work_pools.ListWorkPools, request)
        return list(response.work_pools), response.next_page_token

    def iter_work_pools(
        self, *, work_pool_filter: filters_pb2.WorkPoolFilter | None = None, page_size: int = 200
    ) -> AsyncIterator[work_pool_pb2.WorkPool]:
        """Yield every matching work pool, by name, fetching pages lazily."""
        return _iter_pages(self.list_work_pools, work_pool_filter=work_pool_filter, page_size=page_size)

    async def delete_work_pool(self, name: str) -> None:
        """Delete a work pool and its queues; runs and deployments on them are kept."""
        request = work_pool_service_pb2.DeleteWorkPoolRequest(name=name)
        await self._call(self._work_pools.DeleteWorkPool, request)

    async def create_work_queue(
        self,
        work_pool_name: str,
        name: str,
        *,
        priority: int = 0,
        concurrency_limit: int | None = None,
        is_paused: bool = False,
        description: str = "",
    ) -> work_pool_pb2.WorkQueue:
        """Add a queue to a work pool and return it.

        Not idempotent: an existing name in the pool raises. `priority` 0 means 1 (highest).
        """
        request = work_pool_service_pb2.CreateWorkQueueRequest(
            work_pool_name=work_pool_name,
            name=name,
            priority=priority,
            concurrency_limit=concurrency_limit,
            is_paused=is_paused,
            description=description,
        )
        return (await self._call(self._work_pools.CreateWorkQueue, request)).work_queue

    async def get_work_queue(self, work_pool_name: str, name: str) -> work_pool_pb2.WorkQueue:
        """Return one work queue by pool name and queue name."""
        request = work_pool_service_pb2.GetWorkQueueRequest(work_pool_name=work_pool_name, name=name)
        return (await self._call(self._work_pools.GetWorkQueue, request)).work_queue

    async def list_work_queues(
        self,
        work_pool_name: str,
        *,
        work_queue_filter: filters_pb2.WorkQueueFilter | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[work_pool_pb2.WorkQueue], str]:
        """Return one page of a pool's queues, by priority then name, and the next page token."""
        request = work_pool_service_pb2.ListWorkQueuesRequest(
            work_pool_name=work_pool_name,
            work_queue_filter=work_queue_filter,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._call(self._work_pools.ListWorkQueues, request)
        return list(response.work_queues), response.next_page_token

    def iter_work_queues(
        self,
        work_pool_name: str,
        *,
        work_queue_filter: filters_pb2.WorkQueueFilter | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[work_pool_pb2.WorkQueue]:
        """Yield every matching queue of a pool, by priority then name, fetching pages lazily."""
        return _iter_pages(
            self.list_work_queues, work_pool_name, work_queue_filter=work_queue_filter, page_size=page_size
        )

    async def delete_work_queue(self, work_pool_name: str, name: str) -> None:
        """Delete a work queue (not the pool's default queue); runs on it are kept."""
        request = work_pool_service_pb2.DeleteWorkQueueRequest(work_pool_name=work_pool_name, name=name)
        await self._call(self._work_pools.DeleteWorkQueue, request)

    # TaskRunService

    async def create_task_run(
        self,
        flow_run_id: str,
        task_key: str,
        *,
        dynamic_key: str = "",
        name: str = "",
        task_inputs: Mapping[str, Iterable[task_run_pb2.TaskRunInput]] | None = None,
        tags: Iterable[str] = (),
        labels: Mapping[str, Any] | None = None,
        state: state_pb2.StateCreate | None = None,
        empirical_policy: task_run_pb2.TaskRunPolicy | None = None,
        cache_key: str = "",
        cache_expiration: datetime | None = None,
        task_version: str = "",
    ) -> tuple[task_run_pb2.TaskRun, bool]:
        """Get or create the task run for (flow_run_id, task_key, dynamic_key); the bool is
        True if this call created it.

        An existing task run is returned unchanged. `task_inputs` maps each argument name
        to the TaskRunInput messages its value came from. With no `state` the task run
        starts PENDING. A naive `cache_expiration` is taken as UTC.
        """
        inputs = {
            argument: task_run_pb2.TaskRunInputs(inputs=sources) for argument, sources in (task_inputs or {}).items()
        }
        request = task_run_service_pb2.CreateTaskRunRequest(
            flow_run_id=flow_run_id,
            task_key=task_key,
            dynamic_key=dynamic_key,
            name=name,
            task_inputs=inputs,
            tags=tags,
            labels=_struct_or_none(labels),
            state=state,
            empirical_policy=empirical_policy,
            cache_key=cache_key,
            cache_expiration=_timestamp_or_none(cache_expiration),
            task_version=task_version,
        )
        response = await self._call(self._task_runs.CreateTaskRun, request)
        return response.task_run, response.created

    async def get_task_run(self, task_run_id: str) -> task_run_pb2.TaskRun:
        """Return one task run with its current state."""
        request = task_run_service_pb2.GetTaskRunRequest(task_run_id=task_run_id)
        return (await self._call(self._task_runs.GetTaskRun, request)).task_run

    async def list_task_runs(
        self,
        *,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        sort: filters_pb2.TaskRunSort = filters_pb2.TASK_RUN_SORT_UNSPECIFIED,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[task_run_pb2.TaskRun], str]:
        """Return one page of task runs and the next page token ("" on the last page)."""
        request = task_run_service_pb2.ListTaskRunsRequest(
            task_run_filter=task_run_filter, sort=sort, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._task_runs.ListTaskRuns, request)
        return list(response.task_runs), response.next_page_token

    def iter_task_runs(
        self,
        *,
        task_run_filter: filters_pb2.TaskRunFilter | None = None,
        sort: filters_pb2.TaskRunSort = filters_pb2.TASK_RUN_SORT_UNSPECIFIED,
        page_size: int = 200,
    ) -> AsyncIterator[task_run_pb2.TaskRun]:
        """Yield every matching task run, fetching pages lazily by page token."""
        return _iter_pages(self.list_task_runs, task_run_filter=task_run_filter, sort=sort, page_size=page_size)

    async def set_task_run_state(
        self,
        task_run_id: str,
        state: state_pb2.StateCreate | state_pb2.StateType,
        *,
        force: bool = False,
        name: str = "",
        message: str = "",
    ) -> task_run_service_pb2.SetTaskRunStateResponse:
        """Record a new state for a task run and return the outcome.

        As with set_flow_run_state, the outcome (ACCEPT, or REJECT when persisted result
        data would be lost) is in the response's `status`, not raised, and `state` is a
        StateCreate or a StateType completed by `name` and `message`.
        """
        request = task_run_service_pb2.SetTaskRunStateRequest(
            task_run_id=task_run_id, state=_proposed_state(state, name, message), force=force
        )
        return await self._call(self._task_runs.SetTaskRunState, request)


async def _iter_pages(
    list_page: Callable[..., Awaitable[tuple[list[_Item], str]]], /, *positional: Any, **arguments: Any
) -> AsyncIterator[_Item]:
    """Yield every item of a paged list method, following next_page_token lazily.

    `list_page` is one of the client's list_* methods; `positional` and `arguments` are
    passed to every call along with the current page_token.
    """
    page_token = ""
    while True:
        items, page_token = await list_page(*positional, **arguments, page_token=page_token)
        for item in items:
            yield item
        if not page_token:
            return


def _proposed_state(
    state: state_pb2.StateCreate | state_pb2.StateType, name: str, message: str
) -> state_pb2.StateCreate:
    """A StateCreate to propose: a copy of `state`, or one built from a StateType."""
    if isinstance(state, state_pb2.StateCreate):
        if name or message:
            raise TypeError("name and message apply only when state is a StateType")
        proposed = state_pb2.StateCreate()
        proposed.CopyFrom(state)  # the caller's message is not ours to change
        return proposed
    return state_pb2.StateCreate(type=state, name=name, message=message)


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """Convert a JSON-like mapping; numbers become doubles, as Struct stores them."""
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(value), struct)
    return struct


def _struct_or_none(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    return None if value is None else _struct(value)


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def _timestamp_or_none(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromDatetime(value)
    return timestamp
