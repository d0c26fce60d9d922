"""Generic proto3 JSON requests for the gateway, on top of `google.protobuf.json_format`.

A JSON value is checked against the message descriptor first, so that every problem
(unknown field, wrong type, out-of-range number, unknown enum name) is reported with its
field path instead of as one opaque parse error; json_format then builds the message.
Responses are rendered by `mend_client.rest_json`, whose `JsonStyle` names enums for both.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from mend_client import rest_json
from mend_client.rest_json import is_map, is_repeated, is_well_known
from mend_core.errors import Violation
from mend_server.gateway.errors import invalid

F = FieldDescriptor
_INT_RANGES = {
    F.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    F.CPPTYPE_UINT32: (0, 2**32 - 1),
    F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    F.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only (\d would take "١٢" as 12)


def field_named(desc: Descriptor, name: str) -> FieldDescriptor | None:
    """The field whose proto or JSON name is exactly `name`. The descriptor's own maps
    compare C strings, which end at a NUL: they find `width` for "width\\x00x"."""
    field = desc.fields_by_name.get(name)
    if field is not None and field.name == name:
        return field
    return next((f for f in desc.fields if f.json_name == name), None)


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class JsonStyle(rest_json.JsonStyle):
    """A JSON style (mend_client.rest_json) as the gateway uses it: also for OpenAPI."""

    def schema_override(self, desc: Descriptor, schemas: SchemaRefs) -> dict[str, Any] | None:
        """The OpenAPI schema of a message whose JSON `reshape` (or a request adapter)
        changes; None for the schema derived from its descriptor."""
        return None


class SchemaRefs(Protocol):
    """What a schema override may ask of the OpenAPI builder."""

    def ref(self, desc: Descriptor) -> dict[str, Any]: ...

    def field_schema(self, field: FieldDescriptor) -> dict[str, Any]: ...


# ----------------------------------------------------------------------------- requests


class _Reader:
    def __init__(self, style: JsonStyle) -> None:
        self.style = style
        self.violations: list[Violation] = []

    def bad(self, path: str, description: str) -> None:
        self.violations.append(Violation(path or "(body)", description))

    def message(self, desc: Descriptor, data: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            self.bad(path, "must be a JSON object")
            return None
        out: dict[str, Any] = {}
        for key, value in data.items():
            field = field_named(desc, key)
            if field is None:
                self.bad(join(path, key), "unknown field")
                continue
            where = join(path, field.name)
            if field.name in out:
                self.bad(where, "given twice (as its proto name and its JSON name)")
                continue
            if value is None:  # proto3 JSON: null is the default value
                continue
            converted = self.field(field, value, where)
            if converted is not None:
                out[field.name] = converted
        return out

    def field(self, field: FieldDescriptor, value: Any, path: str) -> Any:
        if is_map(field):
            if not isinstance(value, dict):
                self.bad(path, "must be a JSON object")
                return None
            value_field = field.message_type.fields_by_name["value"]
            return {k: self.single(value_field, v, f"{path}[{k}]") for k, v in value.items()}
        if is_repeated(field):
            if not isinstance(value, list):
                self.bad(path, "must be a JSON array")
                return None
            return [self.single(field, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return self.single(field, value, path)

    def single(self, field: FieldDescriptor, value: Any, path: str) -> Any:
        cpp = field.cpp_type
        if cpp == F.CPPTYPE_MESSAGE:
            if is_well_known(field.message_type):
                return value  # json_format knows their JSON forms (Timestamp strings, ...)
            return self.message(field.message_type, value, path)
        if cpp == F.CPPTYPE_ENUM:
            number = None
            if isinstance(value, str | int) and not isinstance(value, bool):
                number = self.style.enum_from_json(field.enum_type, value)
            if number is None:
                expected = ", ".join(self.style.enum_names(field.enum_type))
                self.bad(path, f"unknown value {value!r}; expected one of {expected}")
            return number
        if cpp in _INT_RANGES:
            return self.integer(cpp, value, path)
        if cpp in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            self.bad(path, "must be a number")
            return None
        if cpp == F.CPPTYPE_BOOL:
            if isinstance(value, bool):
                return value
            if value in ("true", "false"):
                return value == "true"
            self.bad(path, "must be true or false")
            return None
        if not isinstance(value, str):
            self.bad(path, "must be a string")
            return None
        try:
            value.encode()
        except UnicodeEncodeError:  # JSON's "\ud800": a lone surrogate is not text
            self.bad(path, "must be valid Unicode text (it has an unpaired surrogate)")
            return None
        return value

    def integer(self, cpp: int, value: Any, path: str) -> int | None:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and _INTEGER.fullmatch(value)
        ):
            number = int(value)
        if number is None:
            self.bad(path, "must be an integer")
            return None
        low, high = _INT_RANGES[cpp]
        if not low <= number <= high:
            self.bad(path, f"must be between {low} and {high}")
            return None
        return number


def message_from_json(
    message_class: type[Message], data: Any, style: JsonStyle
) -> tuple[Message, list[Violation]]:
    """The message built from `data`, and every problem found, each named by its field
    path. Fields with a problem are left out of the message, so that the rest of it can
    still be checked further (the server's validate_only)."""
    reader = _Reader(style)
    clean = reader.message(message_class.DESCRIPTOR, data, "") or {}
    try:
        return json_format.ParseDict(clean, message_class()), reader.violations
    except json_format.ParseError as exc:  # e.g. a malformed Timestamp string
        violation = Violation("(body)", str(exc).split("\n")[0])
        return message_class(), [*reader.violations, violation]


def resolve_path(desc: Descriptor, dotted: str) -> list[FieldDescriptor] | None:
    """The fields along `a.b.c` (proto or JSON names); None when a name does not exist
    or a non-final segment is not a singular message."""
    fields = []
    for i, name in enumerate(dotted.split(".")):
        if desc is None:
            return None
        field = field_named(desc, name)
        if field is None:
            return None
        last = i == dotted.count(".")
        if not last and (field.message_type is None or is_repeated(field)):
            return None
        fields.append(field)
        desc = field.message_type
    return fields


def set_path(data: dict[str, Any], fields: list[FieldDescriptor], value: Any) -> None:
    for field in fields[:-1]:
        data = data.setdefault(field.name, {})
    data[fields[-1].name] = value


def query_to_json(
    desc: Descriptor, items: list[tuple[str, str]], bound: set[str]
) -> dict[str, Any]:
    """Query parameters as a JSON object for `message_from_json`: `a.b=1` sets field a.b;
    a repeated field may be given several times."""
    out: dict[str, Any] = {}
    bad: list[Violation] = []
    for key, value in items:
        fields = resolve_path(desc, key)
        if fields is None or (fields[-1].message_type is not None):
            bad.append(Violation(key, "unknown query parameter"))
            continue
        if value == "":
            continue  # `?page_size=&page_token=`: an empty value means the default
        dotted = ".".join(f.name for f in fields)
        if dotted in bound:
            bad.append(Violation(key, "is set by the path or the body, not the query"))
            continue
        if is_repeated(fields[-1]):
            parent = out
            for field in fields[:-1]:
                parent = parent.setdefault(field.name, {})
            parent.setdefault(fields[-1].name, []).append(value)
            continue
        parent = out
        for field in fields[:-1]:
            parent = parent.setdefault(field.name, {})
        if fields[-1].name in parent:
            bad.append(Violation(key, "given more than once"))
            continue
        parent[fields[-1].name] = value
    if bad:
        raise invalid(bad)
    return out
