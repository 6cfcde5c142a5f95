"""Server reflection that carries the RPC documentation.

grpcio's reflection servicer rebuilds each file from the descriptor pool, which drops the
comments (source_code_info). flowrun serves its own files exactly as protoc wrote them
into the committed descriptor set, comments included, so that grpcurl's `describe`
prints every RPC's documentation; other files (health, reflection, well-known types)
are served as grpcio builds them."""

from __future__ import annotations

from importlib import resources

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    data = resources.files("flowrun.v1").joinpath("descriptor_set.binpb").read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _pool(descriptor_set: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set.file:  # dependencies first (protoc --include_imports)
        pool.Add(file)
    for module in (health_pb2, reflection_pb2):
        file = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        pool.Add(file)
    return pool


class DocumentedReflectionServicer(reflection.aio.ReflectionServicer):
    def __init__(self, service_names: tuple[str, ...]) -> None:
        descriptor_set = _descriptor_set()
        super().__init__(service_names, pool=_pool(descriptor_set))
        self._documented = {
            file.name: file.SerializeToString() for file in descriptor_set.file if file.name.startswith("flowrun/")
        }

    def _with_comments(self, response: reflection_pb2.ServerReflectionResponse):
        if response.HasField("file_descriptor_response"):
            files = response.file_descriptor_response.file_descriptor_proto
            for index, data in enumerate(files):
                name = descriptor_pb2.FileDescriptorProto.FromString(data).name
                if name in self._documented:
                    files[index] = self._documented[name]
        return response

    # These override grpc_reflection's private lookup hooks, which its stubs do not declare.
    def _file_by_filename(self, request, filename):
        return self._with_comments(super()._file_by_filename(request, filename))  # type: ignore[misc]

    def _file_containing_symbol(self, request, fully_qualified_name):
        return self._with_comments(super()._file_containing_symbol(request, fully_qualified_name))  # type: ignore[misc]


def enable_reflection(service_names: tuple[str, ...], server: grpc.aio.Server) -> None:
    names = (*service_names, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(DocumentedReflectionServicer(names), server)
