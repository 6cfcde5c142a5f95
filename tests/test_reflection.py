"""What grpcurl users rely on, proven without our stubs: discover the services through
server reflection alone, read the RPC documentation, and make JSON calls
(`grpcurl -plaintext HOST:PORT list`, `describe`, and `grpcurl -d '{...}' ... Method`)."""

from __future__ import annotations

import asyncio
import json

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from server.app import FLOWRUN_SERVICES


class ReflectionClient:
    """A tiny grpcurl: everything it knows comes from the server's reflection service."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.database = ProtoReflectionDescriptorDatabase(self.channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def list(self) -> list[str]:
        return sorted(self.database.get_services())

    def describe(self, symbol: str):
        return self.pool.FindServiceByName(symbol)

    def call(self, full_method: str, body: dict) -> dict:
        service_name, method_name = full_method.rsplit(".", 1)
        method = self.pool.FindServiceByName(service_name).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.ParseDict(body, request_class())
        stub = self.channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        response = stub(request, timeout=10)
        return json.loads(json_format.MessageToJson(response, preserving_proto_field_name=True))

    def close(self) -> None:
        self.channel.close()


async def run_in_thread(app, work):
    """The server shares this event loop; a blocking client must run beside it."""
    client = ReflectionClient(f"127.0.0.1:{app.port}")
    try:
        return await asyncio.to_thread(work, client)
    finally:
        client.close()


async def test_list_shows_flowrun_health_and_reflection(app):
    services = await run_in_thread(app, ReflectionClient.list)
    assert services == sorted([*FLOWRUN_SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"])
    assert {
        "flowrun.v1.FlowService",
        "flowrun.v1.FlowRunService",
        "flowrun.v1.TaskRunService",
        "flowrun.v1.DeploymentService",
        "flowrun.v1.WorkPoolService",
    } <= set(services)


async def test_describe_resolves_every_method_and_its_documentation(app):
    def describe(client: ReflectionClient):
        result = {}
        for name in FLOWRUN_SERVICES:
            service = client.describe(name)
            for method in service.methods:
                # Resolving input and output types pulls every imported file through
                # reflection: a missing import would fail here ("Symbol not found").
                result[method.full_name] = (method.input_type.full_name, method.output_type.full_name)
        comments = client.database.FindFileContainingSymbol("flowrun.v1.FlowRunService")
        return result, comments

    methods, file_proto = await run_in_thread(app, describe)
    assert methods["flowrun.v1.FlowRunService.SetFlowRunState"] == (
        "flowrun.v1.SetFlowRunStateRequest",
        "flowrun.v1.SetFlowRunStateResponse",
    )
    # Every method of every served service, as the generated code declares them.
    pool = descriptor_pool.Default()
    assert len(methods) == sum(len(pool.FindServiceByName(name).methods) for name in FLOWRUN_SERVICES)
    assert sum(name.startswith("flowrun.v1.DeploymentService.") for name in methods) == 5
    assert sum(name.startswith("flowrun.v1.WorkPoolService.") for name in methods) == 8
    # grpcurl prints the RPC comments from the served file's source_code_info.
    assert file_proto.name == "flowrun/v1/flow_run_service.proto"
    comments = " ".join(location.leading_comments for location in file_proto.source_code_info.location)
    assert "SetFlowRunState proposes a new state for a run" in comments
    assert "INVALID_ARGUMENT" in comments


async def test_json_calls_through_reflection_only(app, unique):
    def lifecycle(client: ReflectionClient):
        flow = client.call("flowrun.v1.FlowService.CreateFlow", {"name": f"grpcurl-{unique}", "tags": ["cli"]})
        run = client.call("flowrun.v1.FlowRunService.CreateFlowRun", {"flow_id": flow["flow"]["id"]})
        outcome = client.call(
            "flowrun.v1.FlowRunService.SetFlowRunState",
            {"flow_run_id": run["flow_run"]["id"], "state": {"type": "STATE_TYPE_RUNNING"}},
        )
        health = client.call("grpc.health.v1.Health.Check", {"service": "flowrun.v1.FlowRunService"})
        return flow, run, outcome, health

    flow, run, outcome, health = await run_in_thread(app, lifecycle)
    assert flow["created"] is True and flow["flow"]["tags"] == ["cli"]
    assert run["flow_run"]["state"]["type"] == "STATE_TYPE_PENDING"
    assert outcome["status"] == "SET_STATE_STATUS_ACCEPT"
    assert outcome["state"]["type"] == "STATE_TYPE_RUNNING"
    assert health == {"status": "SERVING"}
