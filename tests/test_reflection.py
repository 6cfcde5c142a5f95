"""What grpcurl users rely on, proven without our stubs: discover the services through
server reflection alone (v1 and v1alpha), describe any symbol, read the RPC documentation,
make JSON calls, and decode an error's details (`grpcurl -plaintext HOST:PORT list`,
`describe SYMBOL`, `grpcurl -d '{...}' ... Method`).

Everything the client below knows about flowrun comes from the server: its descriptor pool is
filled by reflection requests only, and every request, response and error detail is a dynamic
message built from those descriptors. The reflection protocol's own messages come from
grpcio-reflection (v1 and v1alpha are the same messages on the wire, as grpcurl relies on)."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2

from flowrun.server.app import FLOWRUN_SERVICES

pytestmark = pytest.mark.parametrize("version", ["v1", "v1alpha"])

HEALTH = "grpc.health.v1.Health"
REFLECTION = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]


class ReflectionError(LookupError):
    pass


class ReflectionDatabase:
    """A descriptor database (what DescriptorPool asks for files) backed by server reflection."""

    def __init__(self, channel: grpc.Channel, version: str) -> None:
        self._call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self.requests = 0

    def ask(self, **request) -> reflection_pb2.ServerReflectionResponse:
        self.requests += 1
        (response,) = list(self._call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
        if response.HasField("error_response"):
            raise ReflectionError(response.error_response.error_code, request)
        return response

    def ask_many(self, requests: list[dict]) -> list[reflection_pb2.ServerReflectionResponse]:
        """One stream, many requests, answered in order (as grpcurl reuses its stream)."""
        self.requests += len(requests)
        messages = [reflection_pb2.ServerReflectionRequest(**request) for request in requests]
        return list(self._call(iter(messages), timeout=30))

    def services(self) -> list[str]:
        return [service.name for service in self.ask(list_services="").list_services_response.service]

    def _files_from(self, response) -> descriptor_pb2.FileDescriptorProto:
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(data)
            for data in response.file_descriptor_response.file_descriptor_proto
        ]
        for file in files:
            self._files.setdefault(file.name, file)
        return files[0]  # the one asked for; its dependencies follow

    # DescriptorPool(descriptor_db=...) calls these two.
    def FindFileByName(self, name: str) -> descriptor_pb2.FileDescriptorProto:
        if name not in self._files:
            self._files_from(self.ask(file_by_filename=name))
        return self._files[name]

    def FindFileContainingSymbol(self, symbol: str) -> descriptor_pb2.FileDescriptorProto:
        try:
            return self._files_from(self.ask(file_containing_symbol=symbol))
        except ReflectionError as error:
            raise KeyError(symbol) from error


class ReflectionClient:
    """A tiny grpcurl: everything it knows comes from the server's reflection service."""

    def __init__(self, target: str, version: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.database = ReflectionDatabase(self.channel, version)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def list(self) -> list[str]:
        return sorted(self.database.services())

    def message_class(self, full_name: str):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def _stub(self, full_method: str):
        service_name, method_name = full_method.rsplit(".", 1)
        method = self.pool.FindServiceByName(service_name).methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        stub = self.channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        return request_class, stub

    def call(self, full_method: str, body: dict) -> dict:
        request_class, stub = self._stub(full_method)
        response = stub(json_format.ParseDict(body, request_class()), timeout=10)
        return json.loads(json_format.MessageToJson(response, preserving_proto_field_name=True))

    def failing_call(self, full_method: str, body: dict) -> tuple[grpc.StatusCode, dict]:
        """The status and its details, decoded the way grpcurl does: google.rpc.Status and
        every Any inside it resolved through reflection."""
        request_class, stub = self._stub(full_method)
        with pytest.raises(grpc.RpcError) as caught:
            stub(json_format.ParseDict(body, request_class()), timeout=10)
        trailers = dict(caught.value.trailing_metadata())
        status = self.message_class("google.rpc.Status").FromString(trailers["grpc-status-details-bin"])
        decoded = json_format.MessageToDict(status, descriptor_pool=self.pool, preserving_proto_field_name=True)
        return caught.value.code(), decoded

    def close(self) -> None:
        self.channel.close()


async def run_in_thread(app, version, work):
    """The server shares this event loop; a blocking client must run beside it."""
    client = ReflectionClient(f"127.0.0.1:{app.port}", version)
    try:
        return await asyncio.to_thread(work, client)
    finally:
        client.close()


async def test_list_shows_flowrun_health_and_both_reflection_versions(app, version):
    services = await run_in_thread(app, version, ReflectionClient.list)
    assert services == sorted([*FLOWRUN_SERVICES, HEALTH, *REFLECTION])
    assert {
        "flowrun.v1.FlowService",
        "flowrun.v1.FlowRunService",
        "flowrun.v1.TaskRunService",
        "flowrun.v1.DeploymentService",
        "flowrun.v1.WorkPoolService",
    } <= set(services)


def _every_symbol(service) -> set[str]:
    """What `describe` may be asked about, from a service down: the service, its methods,
    every message and enum they reach (nested ones too), fields, oneofs and enum values,
    the values under both names tools use (protobuf scope and enum-qualified)."""
    symbols = {service.full_name, *(method.full_name for method in service.methods)}
    seen: set[str] = set()

    def enum(descriptor) -> None:
        symbols.add(descriptor.full_name)
        scope = descriptor.full_name.rsplit(".", 1)[0]
        for value in descriptor.values:
            symbols.update({f"{scope}.{value.name}", f"{descriptor.full_name}.{value.name}"})

    def message(descriptor) -> None:
        if descriptor.full_name in seen:
            return
        seen.add(descriptor.full_name)
        symbols.add(descriptor.full_name)
        symbols.update(field.full_name for field in descriptor.fields)
        symbols.update(oneof.full_name for oneof in descriptor.oneofs)
        for nested in descriptor.nested_types:
            message(nested)
        for nested in descriptor.enum_types:
            enum(nested)
        for field in descriptor.fields:
            if field.message_type is not None:
                message(field.message_type)
            if field.enum_type is not None:
                enum(field.enum_type)

    for method in service.methods:
        message(method.input_type)
        message(method.output_type)
    return symbols


@pytest.mark.slow  # every symbol of every served file: about 800 lookups
async def test_describe_resolves_any_symbol(app, version):
    """grpc/grpc#34743: methods, enum values and fields were "Symbol not found"."""

    def describe(client: ReflectionClient):
        symbols: set[str] = set()
        for name in (*FLOWRUN_SERVICES, HEALTH, *REFLECTION):
            symbols |= _every_symbol(client.pool.FindServiceByName(name))
        answers = {symbol: client.database.FindFileContainingSymbol(symbol).name for symbol in sorted(symbols)}
        return answers

    answers = await run_in_thread(app, version, describe)
    assert len(answers) > 800  # every reachable symbol of every service, each asked once
    assert answers["flowrun.v1.FlowRunService.SetFlowRunState"] == "flowrun/v1/flow_run_service.proto"
    assert answers["grpc.health.v1.Health.Check"].endswith("health.proto")
    assert answers["flowrun.v1.STATE_TYPE_RUNNING"] == "flowrun/v1/state.proto"
    assert answers["flowrun.v1.StateType.STATE_TYPE_RUNNING"] == "flowrun/v1/state.proto"
    assert answers["flowrun.v1.SetFlowRunStateRequest.flow_run_id"] == "flowrun/v1/flow_run_service.proto"
    assert answers["grpc.reflection.v1.ServerReflection.ServerReflectionInfo"] == "grpc/reflection/v1/reflection.proto"
    assert answers["google.protobuf.Timestamp"] == "google/protobuf/timestamp.proto"
    assert any(symbol.count(".") >= 3 and symbol.split(".")[-2][0].isupper() for symbol in answers)  # nested


async def test_a_file_comes_with_its_imports_once_per_stream(app, version):
    def ask(client: ReflectionClient):
        first, again, other = client.database.ask_many(
            [
                {"file_containing_symbol": "flowrun.v1.FlowRunService"},
                {"file_containing_symbol": "flowrun.v1.FlowRunService.SetFlowRunState"},
                {"file_containing_symbol": "google.rpc.Status"},
            ]
        )
        names = lambda response: [  # noqa: E731
            descriptor_pb2.FileDescriptorProto.FromString(data).name
            for data in response.file_descriptor_response.file_descriptor_proto
        ]
        return names(first), names(again), names(other)

    first, again, other = await run_in_thread(app, version, ask)
    assert first[0] == "flowrun/v1/flow_run_service.proto"
    assert {"flowrun/v1/state.proto", "flowrun/v1/filters.proto", "google/protobuf/timestamp.proto"} <= set(first[1:])
    assert len(first) == len(set(first))
    assert again == ["flowrun/v1/flow_run_service.proto"]  # its imports were sent on this stream already
    assert other == ["google/rpc/status.proto", "google/protobuf/any.proto"]


async def test_unknown_symbols_and_empty_requests_are_error_responses(app, version):
    def ask(client: ReflectionClient):
        codes = []
        for request in (
            {"file_containing_symbol": "flowrun.v1.NoSuchThing"},
            {"file_containing_symbol": "flowrun.v1.FlowRunService.NoSuchMethod"},
            {"file_by_filename": "flowrun/v1/nope.proto"},
            {"all_extension_numbers_of_type": "flowrun.v1.Nope"},
            {},
        ):
            with pytest.raises(ReflectionError) as caught:
                client.database.ask(**request)
            codes.append(
                grpc.StatusCode(next(code for code in grpc.StatusCode if code.value[0] == caught.value.args[0]))
            )
        extensions = client.database.ask(
            all_extension_numbers_of_type="flowrun.v1.FlowRun"
        ).all_extension_numbers_response
        return codes, extensions

    codes, extensions = await run_in_thread(app, version, ask)
    assert codes == [grpc.StatusCode.NOT_FOUND] * 4 + [grpc.StatusCode.INVALID_ARGUMENT]
    assert extensions.base_type_name == "flowrun.v1.FlowRun" and list(extensions.extension_number) == []


ERROR_DETAIL_TYPES = [
    "google.rpc.Status",
    "google.rpc.ErrorInfo",
    "google.rpc.BadRequest",
    "google.rpc.BadRequest.FieldViolation",
    "google.rpc.RetryInfo",
    "google.rpc.PreconditionFailure",
    "google.rpc.ResourceInfo",
    "flowrun.v1.ErrorReason",
]


async def test_every_response_and_error_detail_type_resolves(app, version):
    def resolve(client: ReflectionClient):
        found = {}
        for name in ERROR_DETAIL_TYPES:
            found[name] = client.database.FindFileContainingSymbol(name).name
        # flowrun's own error detail file, whole: every type in it resolves too.
        details = client.pool.FindFileByName("flowrun/v1/error_details.proto")
        for name in (*details.message_types_by_name, *details.enum_types_by_name):
            found[f"flowrun.v1.{name}"] = client.database.FindFileContainingSymbol(f"flowrun.v1.{name}").name
        outputs = set()
        for service in FLOWRUN_SERVICES:
            for method in client.pool.FindServiceByName(service).methods:
                outputs.add(method.output_type.full_name)
        return found, outputs

    found, outputs = await run_in_thread(app, version, resolve)
    assert found["google.rpc.Status"] == "google/rpc/status.proto"
    assert {found[name] for name in ERROR_DETAIL_TYPES[1:-1]} == {"google/rpc/error_details.proto"}
    assert found["flowrun.v1.ErrorReason"] == "flowrun/v1/error_details.proto"
    assert "flowrun.v1.SetFlowRunStateResponse" in outputs


async def test_error_details_decode_through_reflection_only(app, version):
    def fail(client: ReflectionClient):
        malformed = client.failing_call("flowrun.v1.FlowRunService.GetFlowRun", {"flow_run_id": "not-a-uuid"})
        missing = client.failing_call(
            "flowrun.v1.FlowRunService.GetFlowRun", {"flow_run_id": "00000000-0000-4000-8000-000000000000"}
        )
        return malformed, missing

    (code, status), (missing_code, missing) = await run_in_thread(app, version, fail)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    by_type = {detail["@type"]: detail for detail in status["details"]}
    assert set(by_type) == {"type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.BadRequest"}
    assert by_type["type.googleapis.com/google.rpc.ErrorInfo"]["domain"] == "flowrun.dev"
    assert by_type["type.googleapis.com/google.rpc.ErrorInfo"]["reason"] == "INVALID_ARGUMENT"
    assert by_type["type.googleapis.com/google.rpc.BadRequest"]["field_violations"][0]["field"] == "flow_run_id"
    assert missing_code == grpc.StatusCode.NOT_FOUND
    (info,) = missing["details"]
    assert info["reason"] == "FLOW_RUN_NOT_FOUND"
    assert info["metadata"] == {"flow_run_id": "00000000-0000-4000-8000-000000000000"}


async def test_v1_is_v1alpha_under_another_package(app, version):
    """The derived v1 file has the same messages, fields and numbers as v1alpha."""

    def both(client: ReflectionClient):
        v1 = client.database.FindFileContainingSymbol("grpc.reflection.v1.ServerReflection")
        v1alpha = client.database.FindFileContainingSymbol("grpc.reflection.v1alpha.ServerReflection")
        return v1, v1alpha

    v1, v1alpha = await run_in_thread(app, version, both)
    assert (v1.package, v1alpha.package) == ("grpc.reflection.v1", "grpc.reflection.v1alpha")
    shape = lambda file: [  # noqa: E731
        (m.name, [(f.name, f.number, f.type, f.label, f.type_name.rsplit(".", 1)[-1]) for f in m.field])
        for m in file.message_type
    ]
    assert shape(v1) == shape(v1alpha) and len(shape(v1)) == 8
    assert v1.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"


async def test_describe_carries_the_rpc_documentation(app, version):
    def describe(client: ReflectionClient):
        methods = {}
        for name in FLOWRUN_SERVICES:
            for method in client.pool.FindServiceByName(name).methods:
                methods[method.full_name] = (method.input_type.full_name, method.output_type.full_name)
        return methods, client.database.FindFileContainingSymbol("flowrun.v1.FlowRunService.SetFlowRunState")

    methods, file_proto = await run_in_thread(app, version, describe)
    assert methods["flowrun.v1.FlowRunService.SetFlowRunState"] == (
        "flowrun.v1.SetFlowRunStateRequest",
        "flowrun.v1.SetFlowRunStateResponse",
    )
    assert sum(name.startswith("flowrun.v1.DeploymentService.") for name in methods) == 5
    assert sum(name.startswith("flowrun.v1.WorkPoolService.") for name in methods) == 8
    # grpcurl prints the RPC comments from the served file's source_code_info.
    assert file_proto.name == "flowrun/v1/flow_run_service.proto"
    comments = " ".join(location.leading_comments for location in file_proto.source_code_info.location)
    assert "SetFlowRunState proposes a new state for a run" in comments
    assert "INVALID_ARGUMENT" in comments


async def test_json_calls_through_reflection_only(app, unique, version):
    def lifecycle(client: ReflectionClient):
        flow = client.call(
            "flowrun.v1.FlowService.CreateFlow", {"name": f"grpcurl-{unique}-{version}", "tags": ["cli"]}
        )
        run = client.call("flowrun.v1.FlowRunService.CreateFlowRun", {"flow_id": flow["flow"]["id"]})
        outcome = client.call(
            "flowrun.v1.FlowRunService.SetFlowRunState",
            {"flow_run_id": run["flow_run"]["id"], "state": {"type": "STATE_TYPE_RUNNING"}},
        )
        health = client.call("grpc.health.v1.Health.Check", {"service": "flowrun.v1.FlowRunService"})
        return flow, run, outcome, health

    flow, run, outcome, health = await run_in_thread(app, version, lifecycle)
    assert flow["created"] is True and flow["flow"]["tags"] == ["cli"]
    assert run["flow_run"]["state"]["type"] == "STATE_TYPE_PENDING"
    assert outcome["status"] == "SET_STATE_STATUS_ACCEPT"
    assert outcome["state"]["type"] == "STATE_TYPE_RUNNING"
    assert health == {"status": "SERVING"}
