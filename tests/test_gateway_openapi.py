"""Schemathesis against the served OpenAPI document: generated requests (valid and
invalid) to every operation of a real stack find no server error and no response that
breaks the document. Kept small: a few examples per operation and mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mend_core.settings import Settings
from mend_devkit.redis_server import RedisServer
from mend_server.gateway import Gateway
from tests.conftest import API_KEY
from tests.test_gateway_support import StackThread

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The operations, for test ids: the document is built from descriptors, without I/O.
# (schemathesis' own lazy pytest loader does not run on pytest 9, hence this.)
_DOC = Gateway(Settings(api_keys="unused")).openapi

# Invalid input can only be made for operations that take some input.
def _modes(operation: dict) -> list[GenerationMode]:  # type: ignore[type-arg]
    takes_input = operation.get("parameters") or operation.get("requestBody")
    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if takes_input else [
        GenerationMode.POSITIVE
    ]


CASES = [
    pytest.param(path, verb.upper(), mode, id=f"{verb.upper()} {path} {mode.value}")
    for path, item in _DOC["paths"].items()
    for verb, operation in item.items()
    for mode in _modes(operation)
]


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackThread]:
    with StackThread(redis_server.url, tmp_path_factory.mktemp("storage")) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(stack: StackThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.url}/api/v1/openapi.json")


def test_served_document_is_the_generated_one(api_schema: schemathesis.BaseSchema) -> None:
    assert api_schema.raw_schema == _DOC


@pytest.mark.parametrize(("path", "verb", "mode"), CASES)
def test_operation_conforms_to_the_document(
    api_schema: schemathesis.BaseSchema,
    stack: StackThread,
    path: str,
    verb: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][verb]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=6,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=stack.url, headers={"X-API-Key": API_KEY}, checks=CHECKS, timeout=10
        )

    run()
