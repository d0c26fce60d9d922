"""Server reflection under both of its names: `grpc.reflection.v1alpha`, which
grpcio-reflection ships, and `grpc.reflection.v1`, which it does not yet (clients that
speak only v1 would find no reflection at all).

v1 is the same protocol: the same messages and method under another package, hence the
same bytes on the wire. So one reflection servicer answers on both method paths, and the
v1 file descriptor is derived at start from v1alpha's (package and file renamed), so that
reflection can describe the v1 service too.

The files it serves carry each field's `json_name`, as protoc's own descriptor sets do when
asked: the descriptors compiled into `_pb2` modules leave it out, and then a client that
reads descriptors from reflection (grpcurl) prints `job_id` where one that reads the .proto
files prints `jobId`, the proto3 JSON name. With it, both print `jobId`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

V1ALPHA_SERVICE = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
SERVICE_NAMES = (V1_SERVICE, V1ALPHA_SERVICE)
_METHOD = "ServerReflectionInfo"


def _renamed(type_name: str) -> str:
    """.grpc.reflection.v1alpha.X -> .grpc.reflection.v1.X (other types stay)."""
    old = f".{v1alpha_pb2.DESCRIPTOR.package}."
    if not type_name.startswith(old):
        return type_name
    return f".{V1_PACKAGE}.{type_name.removeprefix(old)}"


def _rename_types(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            if field.HasField("type_name"):  # set only on message and enum fields
                field.type_name = _renamed(field.type_name)
        _rename_types(message.nested_type)


def v1_file_descriptor() -> FileDescriptor:
    """grpc/reflection/v1/reflection.proto, added to the default descriptor pool (the one
    reflection answers from) unless something registered v1 already (another server in
    this process, or a grpcio-reflection that ships v1: then its servicer should replace
    this module)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileContainingSymbol(V1_SERVICE)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = V1_FILE
    proto.package = V1_PACKAGE
    # v1alpha's options name v1alpha's packages for other languages and mark it deprecated.
    proto.ClearField("options")
    _rename_types(proto.message_type)
    for service in proto.service:
        for method in service.method:
            method.input_type = _renamed(method.input_type)
            method.output_type = _renamed(method.output_type)
    return pool.AddSerializedFile(proto.SerializeToString())


def _fill_json_names(
    messages: Iterable[descriptor_pb2.DescriptorProto],
    scope: str,
    pool: descriptor_pool.DescriptorPool,
) -> None:
    for message in messages:
        name = f"{scope}.{message.name}" if scope else message.name
        fields = pool.FindMessageTypeByName(name).fields_by_name
        for field in message.field:
            field.json_name = fields[field.name].json_name
        _fill_json_names(message.nested_type, name, pool)


@functools.cache
def with_json_names(serialized: bytes) -> bytes:
    """A serialized FileDescriptorProto of the default pool, with every field's json_name."""
    proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    _fill_json_names(proto.message_type, proto.package, descriptor_pool.Default())
    return proto.SerializeToString()


class _Reflection(reflection.aio.ReflectionServicer):
    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterable[v1alpha_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[v1alpha_pb2.ServerReflectionResponse]:
        async for response in super().ServerReflectionInfo(request_iterator, context):
            if response.HasField("file_descriptor_response"):
                files = response.file_descriptor_response.file_descriptor_proto
                files[:] = [with_json_names(raw) for raw in files]
            yield response


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serves reflection for `service_names` and for itself, under v1alpha and v1."""
    v1_file_descriptor()
    servicer = _Reflection((*service_names, *SERVICE_NAMES))
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(name, {_METHOD: handler}) for name in SERVICE_NAMES]
    )
