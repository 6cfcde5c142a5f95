"""FlowRunService: runs, their state histories, and SetFlowRunState (whose transaction,
lock and policy the orchestration interceptor provides; the servicer only describes the
result)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.flow_runs import FlowRun, FlowRunCreate
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.interceptor import transition_result
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.orchestration.unlocked import create_flow_run_unlocked
from flowrun.server.repositories import Repositories
from flowrun.server.services import filters_from_proto, from_proto, to_proto, watch
from flowrun.server.services.write_size import check_result_size
from flowrun.server.watch.hub import EventHub
from flowrun.v1 import flow_run_pb2, flow_run_service_pb2_grpc, state_pb2
from flowrun.v1 import flow_run_service_pb2 as pb

UPDATABLE_FLOW_RUN_FIELDS = frozenset(
    {"name", "flow_version", "parameters", "empirical_policy", "tags", "infrastructure_pid", "job_variables"}
)
STATE_PAGE_DEFAULT = 200
STATE_PAGE_MAX = 1_000


class FlowRunService(flow_run_service_pb2_grpc.FlowRunServiceServicer):
    def __init__(self, database: Database, settings: Settings, hub: EventHub | None = None) -> None:
        self._db = database
        self._settings = settings
        # The app passes the hub it starts and stops (server/watch/hub.py).
        self._watcher = watch.Watcher(database, settings, hub or EventHub(database, settings))

    async def CreateFlowRun(self, request: pb.CreateFlowRunRequest, context) -> pb.CreateFlowRunResponse:
        now = clock.now()
        new = from_proto.flow_run_create(request, now, self._settings.max_parameter_bytes)
        # One round trip where it can (PostgreSQL, a plain run); it uses `new` up.
        done = await create_flow_run_unlocked(self._db, new, _initial_state(new, now), now, self._settings)
        if done is not None:
            run, created = done
        else:
            run, created = await self._create_in_transaction(request, now)
        response = pb.CreateFlowRunResponse(created=created)
        to_proto.write_flow_run(response.flow_run, run, now)  # in place: no copy of the run
        return response

    async def _create_in_transaction(self, request: pb.CreateFlowRunRequest, now: datetime) -> tuple[FlowRun, bool]:
        new = from_proto.flow_run_create(request, now, self._settings.max_parameter_bytes)
        settings = self._settings

        async def create(repos: Repositories) -> tuple[FlowRun, bool]:  # one write transaction
            work_queue_id = None
            if new.work_pool_name is not None:
                work_queue_id = await repos.work_pools.queue_id_for_run(new.work_pool_name, new.work_queue_name)
            run, created = await repos.flow_runs.create(
                new,
                now,
                work_queue_id=work_queue_id,
                default_heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
            )
            if created:
                initial = _initial_state(new, now)
                await set_state(repos, FLOW_RUNS, run.id, initial, now, force=True, settings=settings, created=run)
            return run, created

        return await self._db.write(create)

    async def GetFlowRun(self, request: pb.GetFlowRunRequest, context) -> pb.GetFlowRunResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        async with self._db.unit_of_work(write=False) as uow:
            run = await uow.repos.flow_runs.get(flow_run_id)
        if run is None:
            raise errors.flow_run_not_found(flow_run_id)
        response = pb.GetFlowRunResponse()
        to_proto.write_flow_run(response.flow_run, run, clock.now())
        return response

    async def ListFlowRuns(self, request: pb.ListFlowRunsRequest, context) -> pb.ListFlowRunsResponse:
        filters = filters_from_proto.list_filters(request)
        sort = filters_from_proto.flow_run_sort(request.sort)
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            runs, token = await uow.repos.flow_runs.list_page(
                filters, sort, page, secret=self._settings.resolved_page_token_secret
            )
        now = clock.now()
        response = pb.ListFlowRunsResponse(next_page_token=token)
        for run in runs:
            to_proto.write_flow_run(response.flow_runs.add(), run, now)
        return response

    async def CountFlowRuns(self, request: pb.CountFlowRunsRequest, context) -> pb.CountFlowRunsResponse:
        filters = filters_from_proto.list_filters(request)
        async with self._db.unit_of_work(write=False) as uow:
            count = await uow.repos.flow_runs.count(filters)
        return pb.CountFlowRunsResponse(count=count)

    async def UpdateFlowRun(self, request: pb.UpdateFlowRunRequest, context) -> pb.UpdateFlowRunResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run.id, "flow_run.id")
        paths = from_proto.update_mask_paths(request, "flow_run", UPDATABLE_FLOW_RUN_FIELDS)
        values = from_proto.flow_run_update(request.flow_run, paths, self._settings.max_parameter_bytes)
        now = clock.now()
        async with self._db.unit_of_work(write=True) as uow:
            if "job_variables" in values and values["job_variables"] is not None:
                current = await uow.repos.flow_runs.get(flow_run_id)
                if current is None:
                    raise errors.flow_run_not_found(flow_run_id)
                check_job_variables_updatable(current.state_type, current.deployment_id)
            run = await uow.repos.flow_runs.update(flow_run_id, values, now)
            if run is None:
                raise errors.flow_run_not_found(flow_run_id)
            response = pb.UpdateFlowRunResponse()
            to_proto.write_flow_run(response.flow_run, run, now)
            check_updated_run_size(response.flow_run, self._settings)  # raising rolls the update back
        return response

    async def DeleteFlowRun(self, request: pb.DeleteFlowRunRequest, context) -> pb.DeleteFlowRunResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.flow_runs.delete(flow_run_id)
        if not deleted:
            raise errors.flow_run_not_found(flow_run_id)
        return pb.DeleteFlowRunResponse()

    async def WatchFlowRuns(
        self, request: pb.WatchFlowRunsRequest, context
    ) -> AsyncIterator[pb.WatchFlowRunsResponse | bytes]:
        async for response in watch.watch_flow_runs(self._watcher, request):
            yield response

    async def WatchFlowRun(
        self, request: pb.WatchFlowRunRequest, context
    ) -> AsyncIterator[pb.WatchFlowRunResponse | bytes]:
        async for response in watch.watch_flow_run(self._watcher, request):
            yield response

    async def SetFlowRunState(self, request: pb.SetFlowRunStateRequest, context) -> pb.SetFlowRunStateResponse:
        """The orchestration interceptor has already set the state and committed: describe
        the result."""
        return to_proto.set_state_response(transition_result(), pb.SetFlowRunStateResponse)

    async def HeartbeatFlowRun(self, request: pb.HeartbeatFlowRunRequest, context) -> pb.HeartbeatFlowRunResponse:
        """Records that the run's executor is alive and moves its heartbeat deadline; a
        run that is not RUNNING is left alone and answered FAILED_PRECONDITION."""
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        async with self._db.unit_of_work(write=True) as uow:
            outcome = await uow.repos.liveness.heartbeat(flow_run_id, clock.now())
        if not outcome.found:
            raise errors.flow_run_not_found(flow_run_id)
        if not outcome.recorded:
            state_type = outcome.state_type.value if outcome.state_type else ""
            raise errors.FailedPrecondition(
                f"Flow run {flow_run_id} is not RUNNING (state type {state_type or 'none'}): no heartbeat recorded",
                metadata={"flow_run_id": flow_run_id, "state_type": state_type},
            )
        return to_proto.heartbeat_response(outcome.deadline, outcome.heartbeat_timeout_seconds)

    async def GetTaskRunDependencies(
        self, request: pb.GetTaskRunDependenciesRequest, context
    ) -> pb.GetTaskRunDependenciesResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        limit = self._settings.graph_max_nodes
        async with self._db.unit_of_work(write=False) as uow:
            if await uow.repos.flow_runs.get(flow_run_id) is None:
                raise errors.flow_run_not_found(flow_run_id)
            # Built as the task runs are read, so a map past the response limit stops the read.
            answer = to_proto.DependencyMap(
                clock.now(), max_bytes=self._settings.send_limit_bytes, flow_run_id=flow_run_id
            )
            async with aclosing(uow.repos.task_runs.of_flow_run(flow_run_id, limit=limit + 1)) as task_runs:
                async for task_run in task_runs:
                    if len(answer) == limit:
                        raise errors.TooLarge(
                            f"Flow run {flow_run_id} has more than {limit} task runs.",
                            metadata={"flow_run_id": flow_run_id},
                        )
                    answer.add(task_run)
        return answer.response

    async def GetFlowRunGraph(self, request: pb.GetFlowRunGraphRequest, context) -> pb.GetFlowRunGraphResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        since = from_proto.optional_utc(request, "since")
        async with self._db.unit_of_work(write=False) as uow:
            graph = await uow.repos.graphs.read(
                flow_run_id,
                since,
                self._settings.graph_max_nodes,
                self._settings.graph_max_states,
                count_edge=to_proto.graph_edge_counter(
                    max_bytes=self._settings.send_limit_bytes, flow_run_id=flow_run_id
                ),
            )
        return to_proto.graph_response(graph, max_bytes=self._settings.send_limit_bytes, flow_run_id=flow_run_id)

    async def GetFlowRunState(self, request: pb.GetFlowRunStateRequest, context) -> pb.GetFlowRunStateResponse:
        state_id = from_proto.required_uuid(request.state_id, "state_id")
        async with self._db.unit_of_work(write=False) as uow:
            state = await uow.repos.states.get(state_id)
        if state is None:
            raise errors.state_not_found(state_id)
        response = pb.GetFlowRunStateResponse()
        to_proto.write_state(response.state, state)
        return response

    async def ListFlowRunStates(self, request: pb.ListFlowRunStatesRequest, context) -> pb.ListFlowRunStatesResponse:
        flow_run_id = from_proto.required_uuid(request.flow_run_id, "flow_run_id")
        page = filters_from_proto.page_request(
            request, max_bytes=self._settings.page_max_bytes, default_size=STATE_PAGE_DEFAULT, max_size=STATE_PAGE_MAX
        )
        async with self._db.unit_of_work(write=False) as uow:
            states, token = await uow.repos.states.list_for_run(
                flow_run_id, page, secret=self._settings.resolved_page_token_secret
            )
        response = pb.ListFlowRunStatesResponse(next_page_token=token)
        for state in states:
            to_proto.write_state(response.states.add(), state)
        return response

    async def DeleteFlowRunState(self, request: pb.DeleteFlowRunStateRequest, context) -> pb.DeleteFlowRunStateResponse:
        state_id = from_proto.required_uuid(request.state_id, "state_id")
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.states.delete(state_id)
        if not deleted:
            raise errors.state_not_found(state_id)
        return pb.DeleteFlowRunStateResponse()


def check_job_variables_updatable(state_type: StateType | None, deployment_id: Any) -> None:
    """Job variables only change while the run waits for its infrastructure."""
    if state_type is None:
        raise errors.FailedPrecondition("Flow run state is required to update job variables but none exists")
    if state_type != StateType.SCHEDULED:
        raise errors.FailedPrecondition(f"Job variables for a flow run in state {state_type.value} cannot be updated")
    if deployment_id is None:
        raise errors.FailedPrecondition("A deployment for the flow run could not be found")


def check_updated_run_size(run: flow_run_pb2.FlowRun, settings: Settings) -> None:
    """Refuses an update after which the run, with the largest state a SetFlowRunState
    may write, could not be sent back: updates of different fields each fit a write but
    could add up (server/config.py, Settings.run_without_state_max_bytes)."""
    if not run.HasField("state"):
        check_result_size("flow_run", run, settings.run_without_state_max_bytes, "the run without its state")
        return
    state = state_pb2.State()
    state.CopyFrom(run.state)  # not the hot path: an update is rare, and this is a copy in C
    run.ClearField("state")
    check_result_size("flow_run", run, settings.run_without_state_max_bytes, "the run without its state")
    run.state.CopyFrom(state)


def _initial_state(new: FlowRunCreate, now: datetime) -> State:
    """The state a new run is created in: the one asked for, else PENDING."""
    return new.state or State(type=StateType.PENDING, name=StateType.PENDING.default_name, timestamp=now)
