"""OpenTelemetry tracing (issue 11, item 2): one job's spans — gateway, gRPC server, the
Redis submit, the worker's attempt, the executor child's storage calls — form one trace
with the expected parents.

The gateway and the server run in this process with the SDK's InMemorySpanExporter. The
worker and its executor child are other processes: they export over real OTLP/HTTP
(configured by the standard OTEL_* variables, as users do) to a small receiver on loopback
in the test (tests/telemetry.py), since an in-memory exporter cannot be read across
processes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mend.v1 import jobs_pb2 as pb
from mend.v1 import jobs_pb2_grpc
from mend_core.telemetry.tracing import (
    TRACEPARENT,
    TRACING_OFF,
    OtelTracing,
    exporter_names,
    tracing_from_env,
)
from mend_devkit.redis_server import RedisServer
from mend_devkit.sample import photo
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH, make_settings
from tests.helpers import job_field, resize_request
from tests.images import encode
from tests.telemetry import OtlpReceiver
from tests.test_gateway_support import SEED_BODY, gateway_settings, start_gateway
from tests.workers import wait_terminal, worker_pool

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


async def test_one_jobs_spans_form_one_trace(
    redis_server: RedisServer, redis_client, tmp_path: Path, otlp: OtlpReceiver
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "mend-server"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing = OtelTracing(provider)
    server = MendServer(make_settings(redis_server.url), tracing=tracing)
    await server.start()
    gateway = await start_gateway(
        gateway_settings(server.settings, server.port, tmp_path), tracing=tracing
    )
    root = tmp_path / "storage"
    source = root / SEED_BODY["source_bucket"] / str(SEED_BODY["source_key"])
    source.parent.mkdir(parents=True)
    source.write_bytes(encode(photo(400, 300), "JPEG"))
    otel_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,  # alone, it turns tracing on (otlp)
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    try:
        async with worker_pool(
            redis_server.url, MEND_STORAGE="file", MEND_STORAGE_ROOT=str(root), **otel_env
        ) as workers:
            workers.start()
            async with httpx.AsyncClient(base_url=gateway.url) as http:
                response = await http.post(
                    "/api/v1/jobs/image/resize",
                    json=SEED_BODY,
                    headers={
                        "X-API-Key": API_KEY,
                        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                    },
                )
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                job = await wait_terminal(jobs_pb2_grpc.JobServiceStub(channel), job_id)
            assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
            for _ in range(200):  # the worker processes export in batches
                if {"storage put", "job image_resize"} <= {s.name for s in otlp.spans}:
                    break
                await asyncio.sleep(0.05)
            stored_context = job_field(redis_client, job_id, "traceparent")
    finally:
        await gateway.stop()
        await server.stop(grace=0)

    local = {s.name: s for s in memory.get_finished_spans()}
    http_span = local["POST /api/v1/jobs/image/resize"]
    rpc_span = local["mend.v1.JobService/SubmitImageResize"]
    submit_span = local["JobStore.submit"]

    def ids(span) -> tuple[str, str, str]:  # trace, span, parent (hex)
        parent = span.parent.span_id if span.parent else 0
        ctx = span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{parent:016x}"

    # gateway (continues the caller's traceparent) -> server RPC -> the Redis submit
    assert ids(http_span) == (CALLER_TRACE, ids(http_span)[1], CALLER_SPAN)
    assert ids(rpc_span)[::2] == (CALLER_TRACE, ids(http_span)[1])
    assert ids(submit_span)[::2] == (CALLER_TRACE, ids(rpc_span)[1])
    assert rpc_span.attributes["rpc.grpc.status_code"] == 0
    # The job carries the submit span's context in its hash.
    assert stored_context == f"00-{CALLER_TRACE}-{ids(submit_span)[1]}-01"

    # -> the worker's attempt (worker process) -> the executor child's work and storage.
    remote = {s.name: s for s in otlp.spans if s.trace_id == CALLER_TRACE}
    assert set(remote) == {"job image_resize", "execute image_resize", "storage get",
                           "storage put"}, otlp.spans
    attempt, execute = remote["job image_resize"], remote["execute image_resize"]
    assert (attempt.service, attempt.parent_id) == ("mend-worker", ids(submit_span)[1])
    assert (execute.service, execute.parent_id) == ("mend-worker", attempt.span_id)
    assert remote["storage get"].parent_id == execute.span_id
    assert remote["storage put"].parent_id == execute.span_id


async def test_untraced_jobs_carry_no_trace_context(stub, redis_client) -> None:
    """Off by default: no field in the job hash."""
    response = await stub.SubmitImageResize(resize_request(), metadata=AUTH)
    assert job_field(redis_client, response.job_id, "traceparent") is None


def memory_tracing(sampler: sampling.Sampler) -> tuple[OtelTracing, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return OtelTracing(provider), memory


def parse(traceparent: str) -> tuple[int, bool]:
    """(trace id, sampled flag)"""
    _, trace_id, _, flags = traceparent.split("-")
    return int(trace_id, 16), bool(int(flags, 16) & 1)


@pytest.mark.parametrize(
    ("sampler", "both"),
    [
        (sampling.ParentBasedTraceIdRatio(0.5), True),
        (sampling.TraceIdRatioBased(0.5), True),
        (sampling.ALWAYS_OFF, False),
        (sampling.DEFAULT_ON, True),  # roots sampled, remote parents followed
        # Not a standard one (the SDK decides every span): sampled whatever the parent.
        (sampling.ParentBased(sampling.ALWAYS_ON, remote_parent_not_sampled=sampling.ALWAYS_ON),
         False),
    ],
    ids=["parentbased_traceidratio", "traceidratio", "always_off", "parentbased_always_on",
         "custom"],
)
def test_spans_are_sampled_as_the_sdk_sampler_decides(
    sampler: sampling.Sampler, both: bool
) -> None:
    """Mend decides sampling itself for the SDK's standard samplers (a dropped span is
    then only its context, made without the SDK); the decisions are the sampler's, for
    roots, remote parents (sampled or not) and children, and a dropped trace stays
    dropped inside (its context is what jobs carry)."""
    tracing, memory = memory_tracing(sampler)
    rng = random.Random(11)
    seen: list[tuple[int, bool, bool]] = []  # trace id, sampled inside, sampled inside child
    for i in range(300):
        if i % 3 == 0:
            parent: dict[str, str] = {}
        else:
            flags = "01" if i % 3 == 1 else "00"
            parent = {TRACEPARENT: f"00-{rng.getrandbits(128):032x}-{1 + i:016x}-{flags}"}
        span = tracing.start("rpc", kind="server", parent=parent)
        outer = parse(tracing.traceparent())
        with tracing.span("child", kind="client"):
            inner = parse(tracing.traceparent())
        span.end()
        assert inner[0] == outer[0], "one trace"
        if parent:
            assert outer[0] == parse(parent[TRACEPARENT])[0], "the caller's trace continues"
            carrier = tracing._propagator.extract(parent)  # as the SDK would see the caller
        else:
            carrier = None
        expected = sampler.should_sample(carrier, outer[0], "rpc").decision.is_sampled()
        assert outer[1] == expected, (i, parent)
        seen.append((outer[0], outer[1], inner[1]))
    exported: dict[int, set[str]] = {}
    for s in memory.get_finished_spans():
        exported.setdefault(s.context.trace_id, set()).add(s.name)
    for trace_id, sampled, child_sampled in seen:
        assert child_sampled == sampled
        assert exported.get(trace_id, set()) == ({"rpc", "child"} if sampled else set())
    assert len({sampled for _, sampled, _ in seen}) == (2 if both else 1)


async def test_an_unsampled_call_stores_an_unsampled_context(
    redis_server: RedisServer, redis_client
) -> None:
    """A root call the sampler drops records no span, and its job carries the trace's
    context unsampled, so the workers do not start a trace of their own."""
    tracing, memory = memory_tracing(sampling.ParentBasedTraceIdRatio(0))
    server = MendServer(make_settings(redis_server.url), tracing=tracing)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            response = await stub.SubmitImageResize(resize_request(), metadata=AUTH)
            sampled_parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
            traced = await stub.SubmitImageResize(
                resize_request(), metadata=(*AUTH, (TRACEPARENT, sampled_parent))
            )
    finally:
        await server.stop(grace=0)
    stored = job_field(redis_client, response.job_id, "traceparent")
    assert stored is not None and parse(stored)[1] is False
    names = {s.name for s in memory.get_finished_spans()}
    assert names == {"mend.v1.JobService/SubmitImageResize", "JobStore.submit"}
    assert {f"{s.context.trace_id:032x}" for s in memory.get_finished_spans()} == {CALLER_TRACE}
    assert parse(job_field(redis_client, traced.job_id, "traceparent")) == (
        int(CALLER_TRACE, 16), True
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
    ],
)
def test_tracing_is_on_only_when_the_otel_variables_ask(env: dict, names: list) -> None:
    assert exporter_names(env) == names


def test_an_unknown_exporter_stops_the_process_with_its_name() -> None:
    with pytest.raises(SystemExit, match="'zipkin_json'"):
        tracing_from_env("mend-server", {"OTEL_TRACES_EXPORTER": "zipkin_json"})
    assert tracing_from_env("mend-server", {}) is TRACING_OFF
