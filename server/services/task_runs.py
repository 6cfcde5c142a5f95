"""TaskRunService: task runs of flow runs and their orchestrated state changes
(SetTaskRunState's transaction, lock and policy come from the orchestration
interceptor, as SetFlowRunState's do)."""

from __future__ import annotations

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.states import State, StateType
from flowrun.server.orchestration.interceptor import transition_result
from flowrun.server.orchestration.task_runs import TASK_RUNS
from flowrun.server.orchestration.transitions import set_state
from flowrun.server.services import filters_from_proto, from_proto, to_proto
from flowrun.v1 import task_run_service_pb2 as pb
from flowrun.v1 import task_run_service_pb2_grpc


class TaskRunService(task_run_service_pb2_grpc.TaskRunServiceServicer):
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def CreateTaskRun(self, request: pb.CreateTaskRunRequest, context) -> pb.CreateTaskRunResponse:
        now = clock.now()
        new = from_proto.task_run_create(request, now)
        async with self._db.unit_of_work(write=True) as uow:
            run, created = await uow.repos.task_runs.create(new, now)
            if created:
                initial = new.state or State(type=StateType.PENDING, name=StateType.PENDING.default_name, timestamp=now)
                await set_state(
                    uow.repos, TASK_RUNS, run.id, initial, now, force=True, settings=self._settings, created=run
                )
        return pb.CreateTaskRunResponse(task_run=to_proto.task_run(run, now), created=created)

    async def GetTaskRun(self, request: pb.GetTaskRunRequest, context) -> pb.GetTaskRunResponse:
        task_run_id = from_proto.required_uuid(request.task_run_id, "task_run_id")
        async with self._db.unit_of_work(write=False) as uow:
            run = await uow.repos.task_runs.get(task_run_id)
        if run is None:
            raise errors.task_run_not_found(task_run_id)
        return pb.GetTaskRunResponse(task_run=to_proto.task_run(run, clock.now()))

    async def ListTaskRuns(self, request: pb.ListTaskRunsRequest, context) -> pb.ListTaskRunsResponse:
        task_run_filter = filters_from_proto.task_run_filter(request, "task_run_filter")
        sort = filters_from_proto.task_run_sort(request.sort)
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            runs, token = await uow.repos.task_runs.list_page(
                task_run_filter, sort, page, secret=self._settings.resolved_page_token_secret
            )
        now = clock.now()
        return pb.ListTaskRunsResponse(task_runs=[to_proto.task_run(run, now) for run in runs], next_page_token=token)

    async def SetTaskRunState(self, request: pb.SetTaskRunStateRequest, context) -> pb.SetTaskRunStateResponse:
        """The orchestration interceptor has already set the state and committed: describe
        the result."""
        return to_proto.set_state_response(transition_result(), pb.SetTaskRunStateResponse)
