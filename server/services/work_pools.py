"""WorkPoolService: work pools and their work queues, addressed by name."""

from __future__ import annotations

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.services import filters_from_proto, from_proto, to_proto
from flowrun.v1 import work_pool_service_pb2 as pb
from flowrun.v1 import work_pool_service_pb2_grpc


class WorkPoolService(work_pool_service_pb2_grpc.WorkPoolServiceServicer):
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def CreateWorkPool(self, request: pb.CreateWorkPoolRequest, context) -> pb.CreateWorkPoolResponse:
        new = from_proto.work_pool_create(request)
        async with self._db.unit_of_work(write=True) as uow:
            pool = await uow.repos.work_pools.create(new, clock.now())
        return pb.CreateWorkPoolResponse(work_pool=to_proto.work_pool(pool))

    async def GetWorkPool(self, request: pb.GetWorkPoolRequest, context) -> pb.GetWorkPoolResponse:
        name = from_proto.required_text(request.name, "name")
        async with self._db.unit_of_work(write=False) as uow:
            pool = await uow.repos.work_pools.get(name)
        if pool is None:
            raise errors.work_pool_not_found(name)
        return pb.GetWorkPoolResponse(work_pool=to_proto.work_pool(pool))

    async def ListWorkPools(self, request: pb.ListWorkPoolsRequest, context) -> pb.ListWorkPoolsResponse:
        work_pool_filter = filters_from_proto.work_pool_filter(request, "work_pool_filter")
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            pools, token = await uow.repos.work_pools.list_page(
                work_pool_filter, page, secret=self._settings.resolved_page_token_secret
            )
        return pb.ListWorkPoolsResponse(work_pools=[to_proto.work_pool(pool) for pool in pools], next_page_token=token)

    async def DeleteWorkPool(self, request: pb.DeleteWorkPoolRequest, context) -> pb.DeleteWorkPoolResponse:
        name = from_proto.required_text(request.name, "name")
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.work_pools.delete(name)
        if not deleted:
            raise errors.work_pool_not_found(name)
        return pb.DeleteWorkPoolResponse()

    async def CreateWorkQueue(self, request: pb.CreateWorkQueueRequest, context) -> pb.CreateWorkQueueResponse:
        new = from_proto.work_queue_create(request)
        async with self._db.unit_of_work(write=True) as uow:
            queue = await uow.repos.work_pools.create_queue(new, clock.now())
        return pb.CreateWorkQueueResponse(work_queue=to_proto.work_queue(queue))

    async def GetWorkQueue(self, request: pb.GetWorkQueueRequest, context) -> pb.GetWorkQueueResponse:
        pool_name, name = _queue_names(request)
        async with self._db.unit_of_work(write=False) as uow:
            queue = await uow.repos.work_pools.get_queue(pool_name, name)
        return pb.GetWorkQueueResponse(work_queue=to_proto.work_queue(queue))

    async def ListWorkQueues(self, request: pb.ListWorkQueuesRequest, context) -> pb.ListWorkQueuesResponse:
        pool_name = from_proto.required_text(request.work_pool_name, "work_pool_name")
        work_queue_filter = filters_from_proto.work_queue_filter(request, "work_queue_filter")
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            queues, token = await uow.repos.work_pools.list_queues(
                pool_name, work_queue_filter, page, secret=self._settings.resolved_page_token_secret
            )
        return pb.ListWorkQueuesResponse(
            work_queues=[to_proto.work_queue(queue) for queue in queues], next_page_token=token
        )

    async def DeleteWorkQueue(self, request: pb.DeleteWorkQueueRequest, context) -> pb.DeleteWorkQueueResponse:
        pool_name, name = _queue_names(request)
        async with self._db.unit_of_work(write=True) as uow:
            await uow.repos.work_pools.delete_queue(pool_name, name)
        return pb.DeleteWorkQueueResponse()


def _queue_names(request) -> tuple[str, str]:
    """(work_pool_name, name) of a request that addresses one queue; both required."""
    violations = from_proto.Violations()
    for field in ("work_pool_name", "name"):
        if not getattr(request, field):
            violations.add(field, "is required")
    violations.raise_if_any()
    return request.work_pool_name, request.name
