"""DeploymentService: deployments of flows and renewal of their concurrency leases."""

from __future__ import annotations

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.services import filters_from_proto, from_proto, to_proto
from flowrun.v1 import deployment_service_pb2 as pb
from flowrun.v1 import deployment_service_pb2_grpc


class DeploymentService(deployment_service_pb2_grpc.DeploymentServiceServicer):
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def CreateDeployment(self, request: pb.CreateDeploymentRequest, context) -> pb.CreateDeploymentResponse:
        new = from_proto.deployment_create(request, self._settings.max_parameter_bytes)
        now = clock.now()
        async with self._db.unit_of_work(write=True) as uow:
            queue_id, queue_name = None, new.work_queue_name
            if new.work_pool_name is not None:
                queue_id, queue_name = await uow.repos.work_pools.resolve_queue(new.work_pool_name, new.work_queue_name)
            deployment = await uow.repos.deployments.create(
                new, now, work_queue_id=queue_id, work_queue_name=queue_name
            )
        return pb.CreateDeploymentResponse(deployment=to_proto.deployment(deployment))

    async def GetDeployment(self, request: pb.GetDeploymentRequest, context) -> pb.GetDeploymentResponse:
        deployment_id = from_proto.required_uuid(request.deployment_id, "deployment_id")
        async with self._db.unit_of_work(write=False) as uow:
            deployment = await uow.repos.deployments.get(deployment_id, clock.now())
        if deployment is None:
            raise errors.deployment_not_found(deployment_id)
        return pb.GetDeploymentResponse(deployment=to_proto.deployment(deployment))

    async def ListDeployments(self, request: pb.ListDeploymentsRequest, context) -> pb.ListDeploymentsResponse:
        deployment_filter = filters_from_proto.deployment_filter(request, "deployment_filter")
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            deployments, token = await uow.repos.deployments.list_page(
                deployment_filter, page, clock.now(), secret=self._settings.resolved_page_token_secret
            )
        return pb.ListDeploymentsResponse(
            deployments=[to_proto.deployment(deployment) for deployment in deployments], next_page_token=token
        )

    async def DeleteDeployment(self, request: pb.DeleteDeploymentRequest, context) -> pb.DeleteDeploymentResponse:
        deployment_id = from_proto.required_uuid(request.deployment_id, "deployment_id")
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.deployments.delete(deployment_id)
        if not deleted:
            raise errors.deployment_not_found(deployment_id)
        return pb.DeleteDeploymentResponse()

    async def RenewConcurrencyLease(
        self, request: pb.RenewConcurrencyLeaseRequest, context
    ) -> pb.RenewConcurrencyLeaseResponse:
        lease_id = from_proto.required_uuid(request.lease_id, "lease_id")
        async with self._db.unit_of_work(write=True) as uow:
            renewal = await uow.repos.leases.renew_by_id(lease_id, clock.now(), self._settings.deployment_lease_seconds)
        if renewal is None:
            raise errors.lease_not_found(lease_id)
        return to_proto.lease_renewal(renewal)
