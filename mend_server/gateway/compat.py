"""Mend compatibility: the one place that knows how Mend's REST API differs from plain
proto3 JSON. Everything else in the gateway is generic.

- Enums are lowercase names without their prefix: JOB_STATUS_PENDING <-> "pending",
  JOB_TYPE_IMAGE_RESIZE <-> "image_resize", FIT_MODE_COVER <-> "cover". Requests may also
  use the full proto names or numbers.
- A job's `parameters` is flat ({"width": 800, "height": 600, "quality": 85}): the oneof
  member (`image_resize`) is named by the job's `type` instead.
- Jobs show only what applies to their state: `result` once completed, `error` once
  failed or cancelled, `queue_position` and `estimated_wait_seconds` while pending.
- Jobs may be submitted in Mend's batch-item shape, `{type, source_bucket, ...,
  parameters{width, ...}, priority, webhook_url, ...}`, to POST /api/v1/jobs and as the
  items of POST /api/v1/jobs/batch; the proto shape (`parameters.image_resize`,
  `options{}`) is accepted too.
- Submissions answer 202 Accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, MethodDescriptor
from google.protobuf.message import Message

from mend.v1 import jobs_pb2 as pb
from mend_server.gateway.errors import Violation
from mend_server.gateway.protojson import JsonStyle, SchemaRefs, enum_value_named

Renamer = Callable[[str], str]

_JOB = pb.Job.DESCRIPTOR
_PARAMETERS = pb.JobParameters.DESCRIPTOR
_OPERATION = _PARAMETERS.oneofs_by_name["operation"]
OPERATIONS = tuple(f.name for f in _OPERATION.fields)  # ("image_resize",)
_SUBMIT = pb.SubmitJobRequest.DESCRIPTOR
_OPTIONS = pb.SubmitOptions.DESCRIPTOR
_RESULT = pb.JobResult.DESCRIPTOR
_LOCATION_FIELDS = ("source_bucket", "source_key", "dest_bucket", "dest_key")
OPTION_FIELDS = tuple(f.name for f in _OPTIONS.fields)
# Every operation's parameters message shows only what was set, as Mend's REST API does.
_SPARSE = {
    _JOB.full_name,
    _PARAMETERS.full_name,
    *(f.message_type.full_name for f in _OPERATION.fields),
}
# Queueing RPCs answer 202: SubmitJob, SubmitBatch and each operation's flat Submit RPC
# (its request is flat: it has the locations itself).
_QUEUEING = {"SubmitJob", "SubmitBatch"}
# Jobs whose state is terminal or pending carry these only in that state.
_ONLY_WHEN = {
    "result": ("completed",),
    "error": ("failed", "cancelled"),
    "queue_position": ("pending",),
    "estimated_wait_seconds": ("pending",),
    "progress": ("processing",),
}


def enum_prefix(enum: EnumDescriptor) -> str:
    """JobStatus -> "JOB_STATUS_" (AIP-126: values are prefixed with the enum's name)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def short_name(enum: EnumDescriptor, name: str) -> str:
    return name.removeprefix(enum_prefix(enum)).lower()


class MendJson(JsonStyle):
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
        return [short_name(enum, v.name) for v in enum.values if v.number != 0]

    def is_sparse(self, desc: Descriptor) -> bool:
        return desc.full_name in _SPARSE

    def reshape(self, message: Message, data: dict[str, Any]) -> Any:
        desc = message.DESCRIPTOR
        if desc is _PARAMETERS:
            # {"image_resize": {...}} -> {...}: the job's type names the operation.
            op = message.WhichOneof("operation")  # type: ignore[attr-defined]
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


    def schema_override(self, desc: Descriptor, schemas: SchemaRefs) -> dict[str, Any] | None:
        if desc is _PARAMETERS:
            return {"anyOf": [schemas.ref(f.message_type) for f in _OPERATION.fields]}
        if desc is _SUBMIT:
            return _submission_schema(schemas)
        return None


def _submission_schema(schemas: SchemaRefs) -> dict[str, Any]:
    """A job in Mend's batch-item shape (what adapt_request accepts)."""
    props: dict[str, Any] = {"type": {"type": "string", "enum": list(OPERATIONS)}}
    for name in _LOCATION_FIELDS:
        props[name] = schemas.field_schema(_SUBMIT.fields_by_name[name])
    props["parameters"] = schemas.ref(_PARAMETERS)
    for option in _OPTIONS.fields:
        props[option.name] = schemas.field_schema(option)
    props["options"] = schemas.ref(_OPTIONS)
    return {
        "type": "object",
        "properties": props,
        "required": ["type", *_LOCATION_FIELDS, "parameters"],
        "additionalProperties": False,
    }


STYLE = MendJson()


def success_status(method: MethodDescriptor) -> int:
    queues = method.name in _QUEUEING or (
        method.name.startswith("Submit") and "source_bucket" in method.input_type.fields_by_name
    )
    return 202 if queues else 200


# ------------------------------------------------------------- Mend-shaped submissions


class _Adapted:
    """The translation of one request: field renames back to the client's names, and the
    problems found on the way (every one, so a batch names all of its bad items)."""

    def __init__(self) -> None:
        self._pairs: list[tuple[str, str]] = []
        self.violations: list[Violation] = []

    def rename_prefix(self, proto_prefix: str, client_prefix: str) -> None:
        self._pairs.append((proto_prefix, client_prefix))

    def __call__(self, path: str) -> str:
        for proto, client in self._pairs:
            if path.startswith(proto):
                return client + path[len(proto) :]
        return path


def _item_to_proto(item: Any, prefix: str, adapted: _Adapted) -> Any:
    """One job in Mend's shape -> SubmitJobRequest's JSON. Items already in the proto
    shape (no `type`) pass through; their problems are reported by the generic check."""
    if not isinstance(item, dict) or "type" not in item:
        return item
    out = dict(item)
    job_type = out.pop("type")
    params = out.pop("parameters", {})
    if job_type not in OPERATIONS:
        problem = f"unknown job type {job_type!r}; expected one of {', '.join(OPERATIONS)}"
        adapted.violations.append(Violation(f"{prefix}type", problem))
        # Without an operation the server would call `parameters` missing: it is `type`.
        adapted.rename_prefix(f"{prefix}parameters", f"{prefix}type")
    elif isinstance(params, dict) and set(params) == {job_type}:
        out["parameters"] = params  # already nested under the operation's name
    else:
        out["parameters"] = {job_type: params}
        adapted.rename_prefix(f"{prefix}parameters.{job_type}.", f"{prefix}parameters.")
    flat = {k: out.pop(k) for k in OPTION_FIELDS if k in out}
    if flat:
        options = out.setdefault("options", {})
        if isinstance(options, dict):
            for key, value in flat.items():
                if key in options and options[key] != value:
                    adapted.violations.append(
                        Violation(
                            f"{prefix}{key}",
                            f"is given both here ({value!r}) and as options.{key} "
                            f"({options[key]!r}) with different values",
                        )
                    )
                options[key] = value
                adapted.rename_prefix(f"{prefix}options.{key}", f"{prefix}{key}")
    return out


def adapt_request(method: MethodDescriptor, data: Any) -> tuple[Any, Renamer, list[Violation]]:
    """A request body in Mend's shape -> the request message's JSON, a function that
    renames field paths of errors back to the client's names, and what was wrong."""
    adapted = _Adapted()
    if method.name == "SubmitJob":
        data = _item_to_proto(data, "", adapted)
    elif method.name == "SubmitBatch" and isinstance(data, dict):
        jobs = data.get("jobs")
        if isinstance(jobs, list):
            data = dict(data)
            data["jobs"] = [_item_to_proto(j, f"jobs[{i}].", adapted) for i, j in enumerate(jobs)]
    return data, adapted, adapted.violations
