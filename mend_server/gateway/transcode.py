"""HTTP request -> gRPC request message, following the route's google.api.http rule:
path variables set their fields, the body sets the `body` field (or, for "*", the whole
message), and query parameters set the remaining fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.requests import Request

from mend_core.errors import Violation
from mend_server.gateway.body import read_json
from mend_server.gateway.errors import GatewayError, invalid
from mend_server.gateway.protojson import (
    JsonStyle,
    message_from_json,
    query_to_json,
    resolve_path,
    set_path,
)
from mend_server.gateway.routes import HttpRoute
from mend_server.gateway.upstream import TOKEN_QUERY

Renamer = Callable[[str], str]
# A request body in an API's own shape -> the request message's JSON, a renamer of field
# paths back to the client's names, and the problems found while translating.
Adapter = Callable[[MethodDescriptor, Any], tuple[Any, Renamer, list[Violation]]]


def unchanged(method: MethodDescriptor, data: Any) -> tuple[Any, Renamer, list[Violation]]:
    return data, lambda name: name, []


@dataclass(frozen=True)
class Transcoded:
    """A request message, and what was wrong with the HTTP request it came from (the
    message then holds only the fields that were fine)."""

    message: Message
    rename: Renamer
    violations: list[Violation]

    def checked(self) -> Message:
        """The message, or a 400 naming every problem in the client's terms."""
        if self.violations:
            raise invalid([Violation(self.rename(v.field), v.description) for v in self.violations])
        return self.message


def renamed(err: GatewayError, rename: Renamer) -> GatewayError:
    if not err.details:
        return err
    details = [Violation(rename(v.field), v.description) for v in err.details]
    return invalid(details) if err.status == 400 else err


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


async def request_message(
    route: HttpRoute,
    request: Request,
    *,
    style: JsonStyle,
    adapt: Adapter,
    max_body_bytes: int,
    path_params: dict[str, str] | None = None,
) -> Transcoded:
    desc = route.method.input_type
    data: Any = {}
    if route.body:
        body = await read_json(request, max_body_bytes)
        data = body if route.body == "*" else {route.body: body}
    data, rename, violations = adapt(route.method, data)
    if not isinstance(data, dict):
        raise invalid([Violation("(body)", "must be a JSON object")])
    try:
        if len(request.query_params.getlist(TOKEN_QUERY)) > 1:
            raise invalid([Violation(TOKEN_QUERY, "given more than once")])
        if route.body != "*":
            # The token is a credential (see upstream.TOKEN_QUERY), not a request field.
            items = [kv for kv in request.query_params.multi_items() if kv[0] != TOKEN_QUERY]
            _merge(data, query_to_json(desc, items, route.bound_fields))
    except GatewayError as err:
        raise renamed(err, rename) from None
    params = request.path_params if path_params is None else path_params
    for name, field_path in route.path_fields.items():
        fields = resolve_path(desc, field_path)
        if fields is None:
            raise ValueError(f"{route.template}: no field {field_path!r}")
        set_path(data, fields, params[name])  # the path wins over the body
    message_class = message_factory.GetMessageClass(desc)
    message, problems = message_from_json(message_class, data, style)
    return Transcoded(message, rename, [*violations, *problems])
