"""The operations the server's proto declares, read from its descriptors: every member
of `JobParameters.operation` is one (image_resize, ...). The CLI's `submit` subcommands
and `JobRequest` come from here, so a new operation needs no change in the client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from mend.v1 import jobs_pb2 as pb
from mend_client.rest_json import enum_prefix, enum_value_named, short_names


@dataclass(frozen=True)
class OperationInfo:
    type: str  # "image_resize"
    params: Descriptor  # its parameters message

    @property
    def command(self) -> str:
        """The CLI's name: the type without its media family, image_resize -> resize."""
        return self.type.split("_", 1)[-1]

    @property
    def family(self) -> str:
        return self.type.split("_", 1)[0]

    @property
    def dest_optional(self) -> bool:
        """Whether a job may leave out its destination (image_colors): the flat request's
        dest_bucket is not marked REQUIRED."""
        rpc = "Submit" + "".join(part.title() for part in self.type.split("_"))
        method = pb.DESCRIPTOR.services_by_name["JobService"].methods_by_name[rpc]
        options = method.input_type.fields_by_name["dest_bucket"].GetOptions()
        behaviors = options.Extensions[field_behavior_pb2.field_behavior]
        return field_behavior_pb2.REQUIRED not in behaviors


OPERATIONS: dict[str, OperationInfo] = {
    f.name: OperationInfo(f.name, f.message_type)
    for f in pb.JobParameters.DESCRIPTOR.oneofs_by_name["operation"].fields
}


def enum_names(enum: EnumDescriptor) -> list[str]:
    """The values' short names, as the REST API writes them: FIT_MODE_COVER -> "cover"."""
    return list(short_names(enum).values())


def enum_number(enum: EnumDescriptor, name: str, what: str) -> int:
    """A value's number from its short name ("cover", or "COVER")."""
    value = enum_value_named(enum, enum_prefix(enum) + name.upper())
    if value is None:
        expected = ", ".join(enum_names(enum))
        raise ValueError(f"unknown {what} {name!r}: expected one of {expected}")
    number: int = value.number
    return number


def parameters(job_type: str, values: Mapping[str, Any]) -> pb.JobParameters:
    """JobParameters for an operation from its parameters by name (enums by short name;
    None leaves a parameter unset)."""
    try:
        info = OPERATIONS[job_type]
    except KeyError:
        raise ValueError(
            f"unknown job type {job_type!r}: expected one of {', '.join(OPERATIONS)}"
        ) from None
    result = pb.JobParameters()
    message = getattr(result, job_type)
    message.SetInParent()
    for name, value in values.items():
        field: FieldDescriptor | None = info.params.fields_by_name.get(name)
        if field is None:
            raise ValueError(f"{job_type} has no parameter {name!r}")
        if value is None:
            continue
        if field.enum_type is not None:
            value = enum_number(field.enum_type, value, name)
        setattr(message, name, value)
    return result
