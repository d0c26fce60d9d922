"""The OpenAPI 3 document of the gateway, generated from the same descriptors as the
routes: paths and parameters from the google.api.http annotations, schemas from the
message descriptors, in the JSON shape the `JsonStyle` produces."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from mend_server.gateway.protojson import (
    F,
    JsonStyle,
    is_map,
    is_repeated,
    is_well_known,
    join,
    resolve_path,
)
from mend_server.gateway.routes import HttpRoute

ERROR_STATUSES = {
    "400": "Invalid request: malformed JSON, unknown or invalid fields",
    "401": "Missing or invalid API key",
    "403": "Not allowed",
    "404": "No such job (or not the caller's)",
    "409": "Conflicts with the job's state (e.g. cancelling a finished job)",
    "413": "Request body too large",
    "415": "Content-Type is not application/json",
    "429": "Too many requests",
    "500": "Internal error",
    "503": "A dependency (the job server, Redis) is unavailable",
    "504": "The job server did not answer in time",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for humans."},
        "code": {"type": "string", "description": "The gRPC status code name."},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "description"],
                "properties": {
                    "field": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
        },
    },
}
_INTS = {
    F.CPPTYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    F.CPPTYPE_UINT32: ("int32", 0, 2**32 - 1),
    F.CPPTYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    F.CPPTYPE_UINT64: ("int64", 0, 2**64 - 1),
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object"},
}


def _behaviors(field: FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


class SchemaBuilder:
    def __init__(self, style: JsonStyle) -> None:
        self._style = style
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
        self._names: dict[str, str] = {}

    def ref(self, desc: Descriptor) -> dict[str, Any]:
        name = self._names.get(desc.full_name)
        if name is None:
            name = desc.name if desc.name not in self.schemas else desc.full_name
            self._names[desc.full_name] = name
            self.schemas[name] = {}  # placeholder: recursive messages refer to it
            self.schemas[name] = self.message_schema(desc)
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(
        self, desc: Descriptor, omit: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, Any]:
        override = self._style.schema_override(desc, self)
        if override is not None:
            return override
        props: dict[str, Any] = {}
        required = []
        for field in desc.fields:
            if field.name in omit:
                continue
            props[field.name] = self.field_schema(field)
            behaviors = _behaviors(field)
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(field.name)
            if field_behavior_pb2.OUTPUT_ONLY in behaviors and "$ref" not in props[field.name]:
                props[field.name]["readOnly"] = True
        schema: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        return schema

    def field_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        if is_map(field):
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        if is_repeated(field):
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        cpp = field.cpp_type
        if cpp == F.CPPTYPE_MESSAGE:
            if is_well_known(field.message_type):
                return dict(_WELL_KNOWN.get(field.message_type.full_name, {}))
            return self.ref(field.message_type)
        if cpp == F.CPPTYPE_ENUM:
            return {"type": "string", "enum": self._style.enum_names(field.enum_type)}
        if cpp in _INTS:
            fmt, low, high = _INTS[cpp]
            return {"type": "integer", "format": fmt, "minimum": low, "maximum": high}
        if cpp in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
            return {"type": "number", "format": "double" if cpp == F.CPPTYPE_DOUBLE else "float"}
        if cpp == F.CPPTYPE_BOOL:
            return {"type": "boolean"}
        if field.type == F.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        return {"type": "string"}


def _query_parameters(
    builder: SchemaBuilder, desc: Descriptor, bound: set[str], prefix: str = "", depth: int = 0
) -> list[dict[str, Any]]:
    params = []
    for field in desc.fields:
        name = join(prefix, field.name)
        if name in bound:
            continue
        if field.message_type is not None and not is_well_known(field.message_type):
            if not is_repeated(field) and depth < 3:
                params += _query_parameters(builder, field.message_type, bound, name, depth + 1)
            continue
        params.append(
            {
                "name": name,
                "in": "query",
                "required": field_behavior_pb2.REQUIRED in _behaviors(field),
                "schema": builder.field_schema(field),
                **({"explode": True, "style": "form"} if is_repeated(field) else {}),
            }
        )
    return params


def build_openapi(
    routes: list[HttpRoute],
    style: JsonStyle,
    *,
    title: str,
    version: str,
    success_status: Callable[[MethodDescriptor], int],
    extra_parameters: dict[str, list[dict[str, Any]]] | None = None,
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    builder = SchemaBuilder(style)
    paths: dict[str, Any] = {}
    error_ref = {"$ref": "#/components/schemas/Error"}
    for route in routes:
        method = route.method
        params: list[dict[str, Any]] = []
        for field_path in route.path_fields.values():
            fields = resolve_path(method.input_type, field_path) or []
            schema = builder.single(fields[-1]) if fields else {"type": "string"}
            params.append({"name": field_path, "in": "path", "required": True, "schema": schema})
        if route.body != "*":
            params += _query_parameters(builder, method.input_type, route.bound_fields)
        params += (extra_parameters or {}).get(method.name, [])
        operation: dict[str, Any] = {
            "operationId": method.name,
            "summary": f"{method.containing_service.name}.{method.name}",
            "security": [{"ApiKeyAuth": []}, {"BearerAuth": []}],
            "parameters": params,
        }
        if route.body == "*":
            bound = set(route.path_fields.values())
            schema = builder.ref(method.input_type) if not bound else builder.message_schema(
                method.input_type, bound
            )
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": schema}},
            }
        elif route.body:
            body_field = method.input_type.fields_by_name[route.body]
            operation["requestBody"] = {
                "content": {"application/json": {"schema": builder.field_schema(body_field)}}
            }
        if route.streaming:
            content = {"text/event-stream": {"schema": {"type": "string"}}}
            success = {"description": "Server-Sent Events", "content": content}
        else:
            schema = builder.ref(method.output_type)
            if route.response_body:
                out_field = method.output_type.fields_by_name[route.response_body]
                schema = builder.field_schema(out_field)
            success = {
                "description": method.output_type.name,
                "content": {"application/json": {"schema": schema}},
            }
        responses: dict[str, Any] = {str(success_status(method)): success}
        if route.streaming:
            responses["204"] = {"description": "Nothing after Last-Event-ID: the job is over"}
        for status, text in ERROR_STATUSES.items():
            responses[status] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        operation["responses"] = responses
        # OpenAPI templates name the variable only: {name=**} -> {name}.
        template = re.sub(r"\{([^}=]+)=[^}]*\}", r"{\1}", route.template)
        paths.setdefault(template, {})[route.http_method.lower()] = operation
    for path, item in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": builder.schemas,
            "securitySchemes": {
                "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }
