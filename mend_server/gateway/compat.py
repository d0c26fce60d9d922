"""Mend compatibility: how Mend's REST API differs from plain proto3 JSON, beyond the JSON
form of its messages (enum names, flat parameters, state-dependent fields), which is
`mend_client.rest_json`'s, shared with webhooks and the CLI. Everything else in the
gateway is generic.

- Jobs may be submitted in Mend's batch-item shape, `{type, source_bucket, ...,
  parameters{width, ...}, priority, webhook_url, ...}`, to POST /api/v1/jobs and as the
  items of POST /api/v1/jobs/batch; the proto shape (`parameters.image_resize`,
  `options{}`) is accepted too. OpenAPI documents both (`schema_override`).
- Submissions answer 202 Accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, MethodDescriptor

from mend.v1 import jobs_pb2 as pb
from mend_client import rest_json
from mend_core.errors import Violation
from mend_server.gateway.protojson import JsonStyle, SchemaRefs

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
# Queueing RPCs answer 202: SubmitJob, SubmitBatch and each operation's flat Submit RPC
# (its request is flat: it has the locations itself).
_QUEUEING = {"SubmitJob", "SubmitBatch"}


class MendRest(rest_json.MendJson, JsonStyle):
    """Mend's JSON, and the OpenAPI schemas of the shapes it reshapes."""

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


STYLE = MendRest()


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
