"""Mend's REST JSON: how the API's messages look as JSON, in one place. The REST gateway
answers with it, webhook payloads carry it, and `mend --json` prints it, so a job reads
the same through curl, a webhook and the CLI.

It lives in the client package because everyone can import it from there: it needs only
protobuf and the generated stubs (what the client distribution ships), not the server's
dependencies; the gRPC server and the gateway import it from here.

On top of proto3 JSON (`json_format`, .proto field names, 64-bit integers as numbers):
- Enums are lowercase names without their prefix: JOB_STATUS_PENDING <-> "pending",
  JOB_TYPE_IMAGE_RESIZE <-> "image_resize", FIT_MODE_COVER <-> "cover", derived from the
  descriptors (`short_names`). Requests may also use the full proto names or numbers.
- A job's `parameters` is flat ({"width": 800, "height": 600, "quality": 85}): the oneof
  member (`image_resize`) is named by the job's `type` instead.
- Jobs show only what applies to their state: `result` once completed, `error` once
  failed or cancelled, `queue_position` and `estimated_wait_seconds` while pending.
"""

from __future__ import annotations

import math
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    EnumValueDescriptor,
    FieldDescriptor,
)
from google.protobuf.message import Message

from mend.v1 import jobs_pb2 as pb

F = FieldDescriptor
# Doubles this close to an integer print as one (30.0 -> 30), as Go's encoder does.
_EXACT_INT = 2**53


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def is_well_known(desc: Descriptor) -> bool:
    name: str = desc.full_name
    return name.startswith("google.protobuf.")


def enum_value_named(enum: EnumDescriptor, name: str) -> EnumValueDescriptor | None:
    """The value named exactly `name`. The descriptor's own map compares C strings,
    which end at a NUL: it finds JOB_STATUS_PENDING for "JOB_STATUS_PENDING\\x00x"."""
    value = enum.values_by_name.get(name)
    return value if value is not None and value.name == name else None


def enum_prefix(enum: EnumDescriptor) -> str:
    """JobStatus -> "JOB_STATUS_" (AIP-126: values are prefixed with the enum's name)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def short_name(enum: EnumDescriptor, name: str) -> str:
    return name.removeprefix(enum_prefix(enum)).lower()


def short_names(enum: EnumDescriptor) -> dict[int, str]:
    """Each value's number -> its short name, leaving out 0 (unspecified):
    {1: "pending", 2: "processing", ...} for JobStatus."""
    return {v.number: short_name(enum, v.name) for v in enum.values if v.number != 0}


class JsonStyle:
    """Plain proto3 JSON. Subclasses adapt it to an existing REST API's conventions."""

    def enum_to_json(self, enum: EnumDescriptor, number: int) -> str:
        value = enum.values_by_number.get(number)
        return value.name if value is not None else str(number)

    def enum_from_json(self, enum: EnumDescriptor, value: str | int) -> int | None:
        if isinstance(value, int):
            return value
        found = enum_value_named(enum, value)
        return found.number if found is not None else None

    def enum_names(self, enum: EnumDescriptor) -> list[str]:
        """The names a client may send (and will receive), for documentation."""
        return [v.name for v in enum.values if v.number != 0]

    def is_sparse(self, desc: Descriptor) -> bool:
        """Sparse messages omit fields at their default value; the others print them."""
        return False

    def reshape(self, message: Message, data: dict[str, Any]) -> Any:
        """A last change to a message's JSON once its fields are rendered."""
        return data


_JOB = pb.Job.DESCRIPTOR
_PARAMETERS = pb.JobParameters.DESCRIPTOR
_RESULT = pb.JobResult.DESCRIPTOR
_OPERATION = _PARAMETERS.oneofs_by_name["operation"]
# A job and its parameters show only the fields that were set.
_SPARSE = {d.full_name for d in (_JOB, _PARAMETERS, *(f.message_type for f in _OPERATION.fields))}
# Jobs whose state is terminal or pending carry these only in that state.
_ONLY_WHEN = {
    "result": ("completed",),
    "error": ("failed", "cancelled"),
    "queue_position": ("pending",),
    "estimated_wait_seconds": ("pending",),
    "progress": ("processing",),
}


class MendJson(JsonStyle):
    """Mend's REST conventions (see the module's docstring)."""

    def enum_to_json(self, enum: EnumDescriptor, number: int) -> str:
        value = enum.values_by_number.get(number)
        return short_name(enum, value.name) if value is not None else str(number)

    def enum_from_json(self, enum: EnumDescriptor, value: str | int) -> int | None:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)  # a number in a query string (`?status=3`)
        if isinstance(value, int):
            return value if value in enum.values_by_number else None
        found = enum_value_named(enum, value) or enum_value_named(
            enum, enum_prefix(enum) + value.upper()
        )
        return found.number if found is not None else None

    def enum_names(self, enum: EnumDescriptor) -> list[str]:
        return list(short_names(enum).values())

    def is_sparse(self, desc: Descriptor) -> bool:
        return desc.full_name in _SPARSE

    def reshape(self, message: Message, data: dict[str, Any]) -> Any:
        desc = message.DESCRIPTOR
        if desc is _PARAMETERS:
            # {"image_resize": {...}} -> {...}: the job's type names the operation.
            op = message.WhichOneof("operation")
            return data.get(op, {}) if op else {}
        if desc is _RESULT:
            # An operation's own repeated results show for its jobs only (no resize has
            # "colors": []); its message results are absent when unset already.
            return {k: v for k, v in data.items() if v != []}
        if desc is _JOB:
            status = data.get("status")
            for key, states in _ONLY_WHEN.items():
                if status not in states:
                    data.pop(key, None)
        return data


STYLE = MendJson()


def message_to_json(message: Message, style: JsonStyle = STYLE) -> Any:
    """The message as JSON-ready Python values (dicts, lists, str, numbers, bools)."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _shape(message, data, style)


def _shape(message: Message, data: Any, style: JsonStyle) -> Any:
    desc = message.DESCRIPTOR
    if is_well_known(desc):
        return data
    present = {f.name for f, _ in message.ListFields()}
    sparse = style.is_sparse(desc)
    for field in desc.fields:
        key = field.name
        if key not in data:
            continue
        value = getattr(message, key)
        if sparse and key not in present:
            del data[key]
        elif is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            data[key] = {
                _map_key(k): _value(value_field, v, data[key][_map_key(k)], style)
                for k, v in value.items()
            }
        elif is_repeated(field):
            data[key] = [_value(field, v, j, style) for v, j in zip(value, data[key], strict=True)]
        elif field.cpp_type == F.CPPTYPE_ENUM and value == 0:
            del data[key]  # "unspecified" is the absence of a value
        else:
            data[key] = _value(field, value, data[key], style)
    return style.reshape(message, data)


def _map_key(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _value(field: FieldDescriptor, value: Any, data: Any, style: JsonStyle) -> Any:
    cpp = field.cpp_type
    if cpp == F.CPPTYPE_MESSAGE:
        return _shape(value, data, style)
    if cpp == F.CPPTYPE_ENUM:
        return style.enum_to_json(field.enum_type, value)
    if cpp in (F.CPPTYPE_INT64, F.CPPTYPE_UINT64):
        return int(value)
    is_float = cpp in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT) and isinstance(data, float)
    if is_float and math.isfinite(data) and data.is_integer() and abs(data) < _EXACT_INT:
        return int(data)
    return data
