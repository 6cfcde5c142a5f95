"""Server reflection for grpcurl and other dynamic clients, v1 and v1alpha.

Three things grpcio-reflection (1.85) does not do, and that grpcurl users need:

- It ships only `grpc.reflection.v1alpha`. Tools that speak only `grpc.reflection.v1` get
  UNIMPLEMENTED. The v1 protocol is the v1alpha file with its package renamed (same messages,
  same field numbers, same wire bytes), so both are served by one implementation below; the v1
  file descriptor is derived from the installed v1alpha one, so `describe` works on it too.
- It looks symbols up with `DescriptorPool.FindFileContainingSymbol`, which misses methods, enum
  values and fields (grpc/grpc#34743): `describe flowrun.v1.FlowRunService.SetFlowRunState`
  answered "Symbol not found". Here every symbol of every served file is indexed: packages,
  services, methods, messages (nested too), fields, oneofs, enums and enum values (under both
  protobuf's scope `flowrun.v1.STATE_TYPE_RUNNING` and the enum-qualified
  `flowrun.v1.StateType.STATE_TYPE_RUNNING` that some tools ask for).
- It serves files rebuilt from the descriptor pool, which drops the comments. flowrun's own files
  are served exactly as protoc wrote them into the committed descriptor set, comments included, so
  `describe` prints every RPC's documentation.

The files served are flowrun's (with their imports), health, both reflection versions, and the
error-detail types the server sends in `grpc-status-details-bin` (`google.rpc.Status`,
`ErrorInfo`, `BadRequest`, `RetryInfo`, ... and flowrun's own `error_details.proto`), so
grpcurl decodes an error's details instead of printing bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from importlib import resources

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
REFLECTION_SERVICES = (V1_SERVICE, V1ALPHA_SERVICE)
_METHOD = "ServerReflectionInfo"


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    data = resources.files("flowrun.v1").joinpath("descriptor_set.binpb").read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _file_proto(file) -> descriptor_pb2.FileDescriptorProto:  # a google.protobuf FileDescriptor
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def _reflection_v1_file() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto: v1alpha's file under the v1 package name."""
    proto = _file_proto(reflection_pb2.DESCRIPTOR)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")  # v1alpha's java_package and the like
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    return proto


def served_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """Every file reflection serves, each after its dependencies."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for proto in _descriptor_set().file:  # protoc --include_imports: dependencies first
        files[proto.name] = proto

    def add(file) -> None:  # a google.protobuf FileDescriptor from an imported module
        if file.name in files:
            return
        for dependency in file.dependencies:
            add(dependency)
        files[file.name] = _file_proto(file)

    for module in (health_pb2, reflection_pb2, status_pb2, error_details_pb2):
        add(module.DESCRIPTOR)
    v1 = _reflection_v1_file()
    files[v1.name] = v1
    return list(files.values())


def _symbols(file: descriptor_pb2.FileDescriptorProto) -> Iterable[str]:
    prefix = f"{file.package}." if file.package else ""

    def enums(scope: str, items: Iterable[descriptor_pb2.EnumDescriptorProto]) -> Iterable[str]:
        for enum in items:
            yield f"{scope}{enum.name}"
            for value in enum.value:
                yield f"{scope}{value.name}"  # protobuf's scope: beside the enum
                yield f"{scope}{enum.name}.{value.name}"  # the enum-qualified form

    def messages(scope: str, items: Iterable[descriptor_pb2.DescriptorProto]) -> Iterable[str]:
        for message in items:
            name = f"{scope}{message.name}"
            yield name
            yield from (f"{name}.{field.name}" for field in message.field)
            yield from (f"{name}.{field.name}" for field in message.extension)
            yield from (f"{name}.{oneof.name}" for oneof in message.oneof_decl)
            yield from enums(f"{name}.", message.enum_type)
            yield from messages(f"{name}.", message.nested_type)

    yield from messages(prefix, file.message_type)
    yield from enums(prefix, file.enum_type)
    yield from (f"{prefix}{extension.name}" for extension in file.extension)
    for service in file.service:
        yield f"{prefix}{service.name}"
        yield from (f"{prefix}{service.name}.{method.name}" for method in service.method)


class Reflection:
    """Answers reflection requests from a fixed set of files (v1 and v1alpha share it)."""

    def __init__(self, service_names: Iterable[str], files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self._service_names = tuple(sorted({*service_names, *REFLECTION_SERVICES}))
        pool = descriptor_pool.DescriptorPool()
        for file in files:
            pool.Add(file)  # fails at startup, not on a client's request, if a dependency is missing
        self._files = {file.name: file for file in files}
        self._serialized = {file.name: file.SerializeToString() for file in files}
        self._symbol_files: dict[str, str] = {}
        self._extensions: dict[str, dict[int, str]] = {}
        for file in files:
            for symbol in _symbols(file):
                self._symbol_files.setdefault(symbol, file.name)
            for extension in self._all_extensions(file):
                number_files = self._extensions.setdefault(extension.extendee.lstrip("."), {})
                number_files[extension.number] = file.name
        missing = [name for name in service_names if name not in self._symbol_files]
        if missing:
            raise ValueError(f"reflection has no file for {missing}")

    @staticmethod
    def _all_extensions(file: descriptor_pb2.FileDescriptorProto) -> Iterable[descriptor_pb2.FieldDescriptorProto]:
        yield from file.extension
        stack = list(file.message_type)
        while stack:
            message = stack.pop()
            yield from message.extension
            stack.extend(message.nested_type)

    def _files_response(self, request, name: str | None, sent: set[str]) -> reflection_pb2.ServerReflectionResponse:
        """The file asked for, then the files it imports (transitively) that this stream has
        not sent yet: a client keeps what it received, so a stream of lookups (grpcurl
        describing many symbols) does not carry the same imports again and again."""
        if name is None or name not in self._files:
            return _error(request, grpc.StatusCode.NOT_FOUND)
        order = [name]
        for file_name in order:  # grows while it is walked: breadth first
            order.extend(dependency for dependency in self._files[file_name].dependency if dependency not in order)
        chosen = [order[0], *(file_name for file_name in order[1:] if file_name not in sent)]
        sent.update(chosen)
        return reflection_pb2.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=[self._serialized[file_name] for file_name in chosen]
            ),
        )

    def answer(
        self, request: reflection_pb2.ServerReflectionRequest, sent: set[str] | None = None
    ) -> reflection_pb2.ServerReflectionResponse:
        """One response per request; `sent` holds the file names this stream already carried."""
        sent = set() if sent is None else sent
        kind = request.WhichOneof("message_request")
        if kind == "file_by_filename":
            return self._files_response(request, request.file_by_filename, sent)
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol.lstrip(".")
            return self._files_response(request, self._symbol_files.get(symbol), sent)
        if kind == "file_containing_extension":
            wanted = request.file_containing_extension
            numbers = self._extensions.get(wanted.containing_type.lstrip("."), {})
            return self._files_response(request, numbers.get(wanted.extension_number), sent)
        if kind == "all_extension_numbers_of_type":
            base = request.all_extension_numbers_of_type.lstrip(".")
            if base not in self._symbol_files:
                return _error(request, grpc.StatusCode.NOT_FOUND)
            return reflection_pb2.ServerReflectionResponse(
                original_request=request,
                all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                    base_type_name=base, extension_number=sorted(self._extensions.get(base, {}))
                ),
            )
        if kind == "list_services":
            services = [reflection_pb2.ServiceResponse(name=name) for name in self._service_names]
            return reflection_pb2.ServerReflectionResponse(
                original_request=request,
                list_services_response=reflection_pb2.ListServiceResponse(service=services),
            )
        return _error(request, grpc.StatusCode.INVALID_ARGUMENT)

    async def info(self, requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], context) -> AsyncIterator:
        sent: set[str] = set()
        async for request in requests:
            yield self.answer(request, sent)


def _error(request, code: grpc.StatusCode) -> reflection_pb2.ServerReflectionResponse:
    return reflection_pb2.ServerReflectionResponse(
        original_request=request,
        error_response=reflection_pb2.ErrorResponse(error_code=code.value[0], error_message=code.value[1]),
    )


def enable_reflection(service_names: tuple[str, ...], server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha; both answer from the same files (the wire format is one)."""
    reflection = Reflection(service_names, served_files())
    for service in REFLECTION_SERVICES:
        handler = grpc.stream_stream_rpc_method_handler(
            reflection.info,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {_METHOD: handler}),))
