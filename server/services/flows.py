"""FlowService: flows by id and name, lists, counts, tag updates and deletes."""

from __future__ import annotations

from flowrun.server import clock, errors
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.services import filters_from_proto, from_proto, to_proto
from flowrun.v1 import flow_service_pb2 as pb
from flowrun.v1 import flow_service_pb2_grpc

MAX_DELETE_IDS = 200
UPDATABLE_FLOW_FIELDS = frozenset({"tags"})


class FlowService(flow_service_pb2_grpc.FlowServiceServicer):
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def CreateFlow(self, request: pb.CreateFlowRequest, context) -> pb.CreateFlowResponse:
        new = from_proto.flow_create(request)
        async with self._db.unit_of_work(write=True) as uow:
            flow, created = await uow.repos.flows.get_or_create(new, clock.now())
        return pb.CreateFlowResponse(flow=to_proto.flow(flow), created=created)

    async def GetFlow(self, request: pb.GetFlowRequest, context) -> pb.GetFlowResponse:
        flow_id = from_proto.required_uuid(request.flow_id, "flow_id")
        async with self._db.unit_of_work(write=False) as uow:
            flow = await uow.repos.flows.get(flow_id)
        if flow is None:
            raise errors.flow_not_found(flow_id)
        return pb.GetFlowResponse(flow=to_proto.flow(flow))

    async def GetFlowByName(self, request: pb.GetFlowByNameRequest, context) -> pb.GetFlowByNameResponse:
        if not request.name:
            raise errors.InvalidArgument.field("name", "is required")
        async with self._db.unit_of_work(write=False) as uow:
            flow = await uow.repos.flows.get_by_name(request.name)
        if flow is None:
            raise errors.NotFound("FLOW_NOT_FOUND", f"Flow {request.name!r} not found", name=request.name)
        return pb.GetFlowByNameResponse(flow=to_proto.flow(flow))

    async def ListFlows(self, request: pb.ListFlowsRequest, context) -> pb.ListFlowsResponse:
        filters = filters_from_proto.list_filters(request)
        sort = filters_from_proto.flow_sort(request.sort)
        page = filters_from_proto.page_request(request, max_bytes=self._settings.page_max_bytes)
        async with self._db.unit_of_work(write=False) as uow:
            flows, token = await uow.repos.flows.list_page(
                filters, sort, page, secret=self._settings.resolved_page_token_secret
            )
        return pb.ListFlowsResponse(flows=[to_proto.flow(flow) for flow in flows], next_page_token=token)

    async def CountFlows(self, request: pb.CountFlowsRequest, context) -> pb.CountFlowsResponse:
        filters = filters_from_proto.list_filters(request)
        async with self._db.unit_of_work(write=False) as uow:
            count = await uow.repos.flows.count(filters)
        return pb.CountFlowsResponse(count=count)

    async def UpdateFlow(self, request: pb.UpdateFlowRequest, context) -> pb.UpdateFlowResponse:
        flow_id = from_proto.required_uuid(request.flow.id, "flow.id")
        paths = from_proto.update_mask_paths(request, "flow", UPDATABLE_FLOW_FIELDS)
        violations = from_proto.Violations()
        values = {}
        if "tags" in paths:
            values["tags"] = from_proto.check_tags(list(request.flow.tags), "flow.tags", violations)
        violations.raise_if_any()
        async with self._db.unit_of_work(write=True) as uow:
            flow = await uow.repos.flows.update(flow_id, values, clock.now())
        if flow is None:
            raise errors.flow_not_found(flow_id)
        return pb.UpdateFlowResponse(flow=to_proto.flow(flow))

    async def DeleteFlow(self, request: pb.DeleteFlowRequest, context) -> pb.DeleteFlowResponse:
        flow_id = from_proto.required_uuid(request.flow_id, "flow_id")
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.flows.delete(flow_id)
        if not deleted:
            raise errors.flow_not_found(flow_id)
        return pb.DeleteFlowResponse()

    async def DeleteFlows(self, request: pb.DeleteFlowsRequest, context) -> pb.DeleteFlowsResponse:
        if len(request.flow_ids) > MAX_DELETE_IDS:
            raise errors.InvalidArgument.field("flow_ids", f"must hold at most {MAX_DELETE_IDS} ids")
        violations = from_proto.Violations()
        ids = [
            flow_id
            for index, value in enumerate(request.flow_ids)
            if (flow_id := from_proto.uuid_text(value, f"flow_ids[{index}]", violations)) is not None
        ]
        violations.raise_if_any()
        async with self._db.unit_of_work(write=True) as uow:
            deleted = await uow.repos.flows.delete_many(ids)
        return pb.DeleteFlowsResponse(deleted_flow_ids=deleted)

    async def GetFlowLabels(self, request: pb.GetFlowLabelsRequest, context) -> pb.GetFlowLabelsResponse:
        flow_id = from_proto.required_uuid(request.flow_id, "flow_id")
        async with self._db.unit_of_work(write=False) as uow:
            exists, labels = await uow.repos.flows.get_labels(flow_id)
        if not exists:
            raise errors.flow_not_found(flow_id)
        return pb.GetFlowLabelsResponse(labels=to_proto.struct(labels))
