"""The domain names each enum once (mend_core.job); the server, the gateway and the
client derive theirs from the proto descriptors. These tests hold the two together."""

from __future__ import annotations

from typing import get_args

import pytest
from google.protobuf.descriptor import EnumDescriptor

import mend_client
from mend.v1 import jobs_pb2 as pb
from mend_client import _types
from mend_client.rest_json import short_names
from mend_core import job
from mend_core.operations import OPERATIONS, image_resize

DOMAIN_AND_PROTO: list[tuple[object, EnumDescriptor]] = [
    ([s.value for s in job.JobStatus], pb.JobStatus.DESCRIPTOR),
    (list(OPERATIONS), pb.JobType.DESCRIPTOR),
    (list(image_resize.FIT_MODES), pb.FitMode.DESCRIPTOR),
    (list(image_resize.IMAGE_FORMATS), pb.ImageFormat.DESCRIPTOR),
    (list(job.WEBHOOK_STYLES), pb.WebhookStyle.DESCRIPTOR),
]


@pytest.mark.parametrize(("names", "enum"), DOMAIN_AND_PROTO, ids=lambda v: getattr(v, "name", ""))
def test_the_domain_names_every_proto_value(names: list[str], enum: EnumDescriptor) -> None:
    assert names == list(short_names(enum).values())


def test_short_names_drop_the_prefix_and_unspecified() -> None:
    assert short_names(pb.JobStatus.DESCRIPTOR) == {
        1: "pending",
        2: "processing",
        3: "completed",
        4: "failed",
        5: "cancelled",
    }
    assert short_names(pb.FitMode.DESCRIPTOR)[pb.FIT_MODE_COVER] == "cover"


def test_the_client_types_name_the_same_values() -> None:
    assert [s.value for s in mend_client.JobStatus] == [s.value for s in job.JobStatus]
    assert list(get_args(_types.Fit)) == list(image_resize.FIT_MODES)
    assert list(get_args(_types.ImageFormat)) == list(image_resize.IMAGE_FORMATS)
    assert list(get_args(_types.WebhookStyle)) == list(job.WEBHOOK_STYLES)
