"""HTTP routes read from the `google.api.http` annotations of a gRPC service.

Nothing here is specific to Mend: any service whose methods carry annotations gets one
route per binding (the main rule and its additional_bindings)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

# `{field.path}` or `{field.path=pattern}` inside a path template.
_VARIABLE = re.compile(r"\{([A-Za-z_][\w.]*)(?:=([^}]*))?\}")
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpRoute:
    method: MethodDescriptor
    http_method: str  # "GET", "POST", ...
    template: str  # as annotated, e.g. "/api/v1/jobs/{id}"
    path: str  # the Starlette path, e.g. "/api/v1/jobs/{id}"
    path_fields: dict[str, str]  # Starlette parameter name -> request field path
    body: str  # "" (no body), "*" (the whole request) or one top-level field name
    response_body: str  # "" (the whole response) or one top-level field name

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def bound_fields(self) -> set[str]:
        """Request fields (dotted paths) that the path or the body set."""
        bound = set(self.path_fields.values())
        if self.body and self.body != "*":
            bound.add(self.body)
        return bound


def _starlette_path(template: str) -> tuple[str, dict[str, str]]:
    fields: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        field, pattern = match.group(1), match.group(2) or "*"
        name = field.replace(".", "__")
        fields[name] = field
        if pattern == "*":
            return "{" + name + "}"
        if pattern == "**":
            return "{" + name + ":path}"
        raise ValueError(f"unsupported path pattern {{{field}={pattern}}} in {template!r}")

    return _VARIABLE.sub(replace, template), fields


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule) -> HttpRoute:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise ValueError(f"{method.full_name}: google.api.http rule without a path")
    if kind == "custom":
        verb, template = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, template = kind.upper(), getattr(rule, kind)
    if rule.body and rule.body != "*" and rule.body not in method.input_type.fields_by_name:
        raise ValueError(f"{method.full_name}: body field {rule.body!r} does not exist")
    path, fields = _starlette_path(template)
    return HttpRoute(
        method=method,
        http_method=verb,
        template=template,
        path=path,
        path_fields=fields,
        body=rule.body,
        response_body=rule.response_body,
    )


def routes_from_service(service: ServiceDescriptor) -> list[HttpRoute]:
    """One route per annotated binding; methods without an annotation are not exposed."""
    routes = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        routes.append(_route(method, rule))
        routes.extend(_route(method, extra) for extra in rule.additional_bindings)
    return routes
