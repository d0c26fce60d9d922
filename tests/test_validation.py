"""Every validation rule answers INVALID_ARGUMENT with a google.rpc.BadRequest that names
the bad field: by its nested path for SubmitJob, by its flat name for SubmitImageResize."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from mend.v1 import jobs_pb2 as pb
from tests.conftest import AUTH
from tests.helpers import (
    bad_request,
    queued,
    resize_params,
    resize_request,
    stored_jobs,
    submit_request,
    violated_fields,
)

RESIZE_FIELDS = ("width", "height", "quality", "fit", "format")
OPTION_FIELDS = (
    "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds"
)

# (case id, flat overrides on a valid request, the flat name of the field to blame).
# None removes a field.
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing source_bucket", {"source_bucket": ""}, "source_bucket"),
    ("missing source_key", {"source_key": ""}, "source_key"),
    ("missing dest_bucket", {"dest_bucket": ""}, "dest_bucket"),
    ("missing dest_key", {"dest_key": ""}, "dest_key"),
    ("dotdot segment", {"source_key": "images/../secret.jpg"}, "source_key"),
    ("dotdot prefix", {"dest_key": "../escape.jpg"}, "dest_key"),
    ("dot segment", {"source_key": "a/./b.jpg"}, "source_key"),
    ("leading slash", {"source_key": "/etc/passwd"}, "source_key"),
    ("leading slash dest", {"dest_key": "/out.jpg"}, "dest_key"),
    ("NUL in key", {"source_key": "a\x00b.jpg"}, "source_key"),
    ("control char in key", {"dest_key": "a\x01b.jpg"}, "dest_key"),
    ("newline in key", {"source_key": "a\nb.jpg"}, "source_key"),
    ("DEL in key", {"source_key": "a\x7fb.jpg"}, "source_key"),
    ("key over 1024 bytes", {"source_key": "k" * 1025}, "source_key"),
    ("bucket uppercase", {"source_bucket": "MyBucket"}, "source_bucket"),
    ("bucket too short", {"source_bucket": "ab"}, "source_bucket"),
    ("bucket too long", {"dest_bucket": "b" * 64}, "dest_bucket"),
    ("bucket IP address", {"source_bucket": "192.168.1.1"}, "source_bucket"),
    ("bucket underscore", {"dest_bucket": "my_bucket"}, "dest_bucket"),
    ("bucket leading hyphen", {"source_bucket": "-bucket"}, "source_bucket"),
    ("bucket double dot", {"source_bucket": "my..bucket"}, "source_bucket"),
    ("width negative", {"width": -1}, "width"),
    ("height negative", {"height": -600}, "height"),
    ("width above max", {"width": 10_001}, "width"),
    ("height above max", {"height": 10_001}, "height"),
    ("width and height missing", {"width": None, "height": None}, "width"),
    ("quality 0", {"quality": 0}, "quality"),
    ("quality 101", {"quality": 101}, "quality"),
    ("unknown fit", {"fit": 99}, "fit"),
    ("unknown format", {"format": 99}, "format"),
    ("unknown webhook_style", {"webhook_style": 99}, "webhook_style"),
    ("cover needs both sides", {"fit": pb.FIT_MODE_COVER, "height": None}, "fit"),
    ("priority -1", {"priority": -1}, "priority"),
    ("priority 10", {"priority": 10}, "priority"),
    ("max_attempts 0", {"max_attempts": 0}, "max_attempts"),
    ("max_attempts above limit", {"max_attempts": 11}, "max_attempts"),
    ("timeout_seconds 0", {"timeout_seconds": 0}, "timeout_seconds"),
    ("timeout_seconds above limit", {"timeout_seconds": 3601}, "timeout_seconds"),
    ("request_id with space", {"request_id": "has space"}, "request_id"),
    ("request_id too long", {"request_id": "r" * 129}, "request_id"),
    ("webhook_url not http", {"webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ("webhook_url relative", {"webhook_url": "/hook"}, "webhook_url"),
]


def nested_path(flat: str) -> str:
    if flat in RESIZE_FIELDS:
        return f"parameters.image_resize.{flat}"
    if flat in OPTION_FIELDS:
        return f"options.{flat}"
    return flat


def nested_request(overrides: dict[str, Any]) -> pb.SubmitJobRequest:
    """The SubmitJobRequest equivalent of resize_request(**overrides)."""
    flat = resize_request(**overrides)
    request = submit_request(
        source_bucket=flat.source_bucket,
        source_key=flat.source_key,
        dest_bucket=flat.dest_bucket,
        dest_key=flat.dest_key,
    )
    resize = request.parameters.image_resize
    resize.Clear()
    for name in RESIZE_FIELDS:
        if flat.HasField(name) if name == "quality" else getattr(flat, name):
            setattr(resize, name, getattr(flat, name))
    request.parameters.image_resize.SetInParent()
    for name in OPTION_FIELDS:
        optional = name in ("priority", "max_attempts", "timeout_seconds")
        if flat.HasField(name) if optional else getattr(flat, name):
            setattr(request.options, name, getattr(flat, name))
    return request


async def rejected(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def test_nested_request_builder_matches_flat() -> None:
    # Guards the table-driven tests below: the nested twin carries the same values.
    request = nested_request({"quality": 0, "priority": 0, "fit": 99, "request_id": "r"})
    resize = request.parameters.image_resize
    assert resize.HasField("quality") and resize.quality == 0
    assert (resize.width, resize.height, resize.fit) == (800, 600, 99)
    assert request.options.HasField("priority") and request.options.priority == 0
    assert request.options.request_id == "r"
    assert not request.options.HasField("max_attempts")


@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_flat_submit_names_field(stub, redis_client, overrides, field) -> None:
    err = await rejected(stub.SubmitImageResize(resize_request(**overrides), metadata=AUTH))
    assert violated_fields(err) == [field]
    assert all(v.description for v in bad_request(err).field_violations)
    assert queued(redis_client) == set()


@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_nested_submit_names_field_path(stub, redis_client, overrides, field) -> None:
    err = await rejected(stub.SubmitJob(nested_request(overrides), metadata=AUTH))
    assert violated_fields(err) == [nested_path(field)]
    assert queued(redis_client) == set()


async def test_every_bad_field_is_named_at_once(stub) -> None:
    err = await rejected(
        stub.SubmitImageResize(
            resize_request(source_bucket="", dest_key="/x", width=-1, quality=101, priority=10),
            metadata=AUTH,
        )
    )
    assert sorted(violated_fields(err)) == sorted(
        ["source_bucket", "dest_key", "width", "quality", "priority"]
    )


async def test_submit_job_without_operation_names_parameters(stub) -> None:
    request = submit_request()
    request.ClearField("parameters")
    err = await rejected(stub.SubmitJob(request, metadata=AUTH))
    assert "parameters" in violated_fields(err)


async def test_oversized_flat_request_names_source_key(stub, redis_client) -> None:
    # Beyond max_request_bytes (64 KiB) but under gRPC's own message limit, so the
    # server's size check is what answers.
    err = await rejected(
        stub.SubmitImageResize(resize_request(source_key="k" * 70_000), metadata=AUTH)
    )
    assert violated_fields(err) == ["source_key"]
    assert "limit" in bad_request(err).field_violations[0].description
    assert queued(redis_client) == set()


async def test_oversized_nested_request_names_source_key(stub, redis_client) -> None:
    err = await rejected(stub.SubmitJob(submit_request(source_key="k" * 70_000), metadata=AUTH))
    assert violated_fields(err) == ["source_key"]
    assert queued(redis_client) == set()


async def test_oversized_request_names_the_big_field(stub) -> None:
    err = await rejected(
        stub.SubmitImageResize(resize_request(dest_key="k" * 70_000), metadata=AUTH)
    )
    assert violated_fields(err) == ["dest_key"]


async def test_batch_over_request_limit_is_rejected(stub, redis_client) -> None:
    # 100 valid jobs with 1000-byte keys: each job is fine, the request is ~200 KB.
    jobs = [submit_request(source_key="s" * 1000, dest_key=f"{i}" + "d" * 990) for i in range(100)]
    err = await rejected(stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH))
    assert violated_fields(err) == ["jobs"]
    assert queued(redis_client) == set()


@pytest.mark.parametrize("count", [0, 101])
async def test_batch_size_limits(stub, redis_client, count) -> None:
    jobs = [submit_request() for _ in range(count)]
    err = await rejected(stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH))
    assert violated_fields(err) == ["jobs"]
    assert queued(redis_client) == set()


async def test_batch_names_bad_job_by_index_and_stores_nothing(stub, redis_client) -> None:
    jobs = [submit_request() for _ in range(5)]
    jobs[2].parameters.image_resize.width = -5
    jobs[2].source_key = "../x"
    err = await rejected(stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH))
    assert sorted(violated_fields(err)) == ["jobs[2].parameters.image_resize.width",
                                            "jobs[2].source_key"]
    # All or nothing: the four good jobs were not stored either.
    assert queued(redis_client) == set()
    assert stored_jobs(redis_client) == []


async def test_batch_names_bad_options_of_several_jobs(stub) -> None:
    jobs = [submit_request() for _ in range(3)]
    jobs[0].options.priority = 42
    jobs[1].parameters.image_resize.quality = 0
    err = await rejected(stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH))
    assert sorted(violated_fields(err)) == [
        "jobs[0].options.priority",
        "jobs[1].parameters.image_resize.quality",
    ]


BAD_IDS = ["", "not-a-uuid", str(uuid.uuid1()), "12345678-1234-1234-1234-1234567890ab", "../x"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_get_and_cancel_reject_bad_id(stub, bad_id) -> None:
    err = await rejected(stub.GetJob(pb.GetJobRequest(id=bad_id), metadata=AUTH))
    assert violated_fields(err) == ["id"]
    err = await rejected(stub.CancelJob(pb.CancelJobRequest(id=bad_id), metadata=AUTH))
    assert violated_fields(err) == ["id"]


async def test_watch_rejects_bad_id(stub) -> None:
    call = stub.WatchJob(pb.WatchJobRequest(id="nope"), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert violated_fields(info.value) == ["id"]


async def test_watch_rejects_negative_from_version(stub) -> None:
    job_id = (await stub.SubmitImageResize(resize_request(), metadata=AUTH)).job_id
    call = stub.WatchJob(pb.WatchJobRequest(id=job_id, from_version=-1), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert violated_fields(info.value) == ["from_version"]


async def test_unknown_but_wellformed_id_is_not_found(stub) -> None:
    err = await rejected(stub.GetJob(pb.GetJobRequest(id=str(uuid.uuid4())), metadata=AUTH))
    assert err.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_token": "!!!"}, "page_token"),
        ({"page_token": "abc"}, "page_token"),
        ({"page_token": "bm90LWEtbnVtYmVy"}, "page_token"),  # base64 of "not-a-number"
        ({"status": 99}, "status"),
        ({"type": 99}, "type"),
    ],
    ids=["size-1", "size101", "token-junk", "token-padding", "token-not-int", "status", "type"],
)
async def test_list_rejects_bad_arguments(stub, request_fields, field) -> None:
    err = await rejected(stub.ListJobs(pb.ListJobsRequest(**request_fields), metadata=AUTH))
    assert violated_fields(err) == [field]


async def test_a_batch_of_bad_items_gets_a_readable_error(stub, redis_client) -> None:
    """100 items, each with several bad fields: the status must still fit gRPC's default
    metadata limits (8 KiB soft, 16 KiB hard, trailers included), or a client with default
    options reads RESOURCE_EXHAUSTED "metadata size exceeds hard limit" instead of the
    fields. The first violations are named; the error says how many more there were."""
    jobs = [
        submit_request(source_key="../" + "s" * 200, dest_bucket="x", dest_key="/" + "d" * 200,
                       params=resize_params(width=-1, quality=101))
        for _ in range(100)
    ]
    err = await rejected(stub.SubmitBatch(pb.SubmitBatchRequest(jobs=jobs), metadata=AUTH))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violated_fields(err)
    assert fields[:5] == sorted(fields[:5], key=fields.index)  # in the batch's order
    assert {f.partition(".")[0] for f in fields[:5]} == {"jobs[0]"}
    assert 5 <= len(fields) < 500
    assert "more" in err.details()
    trailers = sum(len(k) + len(v) for k, v in (await_trailers(err)))
    assert trailers < 8192, trailers
    assert queued(redis_client) == set()


def await_trailers(err: grpc.aio.AioRpcError) -> list[tuple[str, bytes | str]]:
    return list(err.trailing_metadata() or ())
