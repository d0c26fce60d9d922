"""Server reflection under `grpc.reflection.v1` as well as `v1alpha`: grpcurl lists both,
and a client that speaks only v1 lists the services and fetches JobService's file, with no
API key (the server under test requires one for JobService)."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2

# v1 and v1alpha messages are the same fields under another package name, so the same
# bytes: what makes the calls below v1 calls is the method path.
from grpc_reflection.v1alpha import reflection_pb2 as wire

from mend_server.server import MendServer
from tests.test_grpcurl import grpcurl

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
REFLECTION_SERVICES = {
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


async def reflect_v1(
    server: MendServer, *requests: wire.ServerReflectionRequest
) -> list[wire.ServerReflectionResponse]:
    """One v1 ServerReflectionInfo stream, without metadata (no API key)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_stream(
            V1_METHOD,
            request_serializer=wire.ServerReflectionRequest.SerializeToString,
            response_deserializer=wire.ServerReflectionResponse.FromString,
        )
        return [response async for response in call(iter(requests), timeout=10)]


def files(response: wire.ServerReflectionResponse) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    out = {}
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        out[proto.name] = proto
    return out


async def test_grpcurl_lists_both_reflection_services(mend_server: MendServer) -> None:
    _, out, _ = await grpcurl(mend_server, "list")
    assert set(out.split()) >= REFLECTION_SERVICES
    _, out, _ = await grpcurl(mend_server, "describe", "grpc.reflection.v1.ServerReflection")
    assert (
        "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest ) "
        "returns ( stream .grpc.reflection.v1.ServerReflectionResponse )"
    ) in out


async def test_a_v1_client_lists_services_and_finds_job_service(mend_server: MendServer) -> None:
    listed, job_service, unknown = await reflect_v1(
        mend_server,
        wire.ServerReflectionRequest(list_services=""),
        wire.ServerReflectionRequest(file_containing_symbol="mend.v1.JobService"),
        wire.ServerReflectionRequest(file_containing_symbol="mend.v1.NoSuchService"),
    )
    names = {s.name for s in listed.list_services_response.service}
    assert {"mend.v1.JobService", "grpc.health.v1.Health"} | REFLECTION_SERVICES <= names

    found = files(job_service)
    jobs = found["mend/v1/jobs.proto"]
    assert jobs.package == "mend.v1"
    methods = {m.name for s in jobs.service if s.name == "JobService" for m in s.method}
    assert {"SubmitJob", "GetJob", "WatchJob"} <= methods
    # Its imports come along, so a client can resolve every type.
    assert set(jobs.dependency) <= set(found)

    assert unknown.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_v1_describes_itself_as_v1(mend_server: MendServer) -> None:
    [response] = await reflect_v1(
        mend_server,
        wire.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    )
    [proto] = files(response).values()
    assert proto.name == "grpc/reflection/v1/reflection.proto"
    assert proto.package == "grpc.reflection.v1"
    [method] = proto.service[0].method
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming
    fields = {
        f.name: f.type_name
        for m in proto.message_type
        if m.name == "ServerReflectionResponse"
        for f in m.field
    }
    assert fields["list_services_response"] == ".grpc.reflection.v1.ListServiceResponse"
    assert not proto.options.deprecated  # v1alpha's file is marked deprecated; v1 is not


async def test_served_descriptors_carry_json_names(mend_server: MendServer) -> None:
    """As protoc's descriptor sets do: a client reading them prints the proto3 JSON names,
    as it does from the .proto files."""
    [response] = await reflect_v1(
        mend_server, wire.ServerReflectionRequest(file_containing_symbol="mend.v1.JobService")
    )
    jobs = files(response)["mend/v1/jobs.proto"]

    def json_names(messages) -> dict[str, str]:
        out = {}
        for message in messages:
            out |= {f"{message.name}.{f.name}": f.json_name for f in message.field}
            out |= {f"{message.name}.{k}": v for k, v in json_names(message.nested_type).items()}
        return out

    names = json_names(jobs.message_type)
    assert names["SubmitJobResponse.job_id"] == "jobId"
    assert names["Job.estimated_wait_seconds"] == "estimatedWaitSeconds"
    assert names["QueueStats.ByTypeEntry.value"] == "value"
    assert all(names.values()), [k for k, v in names.items() if not v]
