"""The bad-input corpus (issue 8): every hostile or careless request in
tests/bad_input.json, sent over REST or gRPC to one real stack (MendServer with two
tenants and bucket grants, the uvicorn gateway, real Redis), answers its expected status
and names its fields; after each, the stack still accepts a good job.

The corpus format (see the README's Development section):
- `templates`: fragments a case (or any object in it) extends with `"$base": NAME`; the
  object's own keys are merged over the template's, objects recursively, and the value
  "$delete" removes a key.
- a case: `name`, `via` ("rest" | "grpc"), `key` ("acme" | "globex" | "none", default
  acme) and what to send:
  REST: `method`, `path` (sent as written: `%00` stays raw), `headers`, and a body as
  `json` (sent as application/json), `text` (times `repeat`) or `hex`, the last two
  with no Content-Type unless `headers` gives one.
  gRPC: `rpc` and `request` (JSON read by json_format into the request message) or
  `raw_hex` (the request's bytes as sent), `metadata` ([name, value] pairs).
- `before`: steps run first, each a request like a case (it must succeed) with
  `capture` {placeholder: response field}, or `{"do": "claim"}` (a worker takes the
  next pending job), `{"do": "expired_token", "job": ..., "as": NAME}`,
  `{"do": "forge", "token": ..., "changes": {...}, "as": NAME}` (a token's payload
  changed, its signature kept). `{name}` placeholders are replaced in every string.
- expected: `status` (REST) and/or `code` (the gRPC code's name; over REST, the
  error's `code`); `fields`, each named by the error (a google.rpc.BadRequest or
  `details` field, or a word of the error text); `contains`, substrings of the error
  text; `answer`, fields of the JSON answer (over gRPC, of the response message) and
  their values; `xfail`, the reason a known bug is not fixed yet.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format, message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer
from mend_server.stream_tokens import StreamTokens
from tests.conftest import API_KEY, OTHER_KEY
from tests.test_gateway_support import SEED_BODY, StackThread, Worker
from tests.test_stream_tokens import forged

CORPUS = Path(__file__).with_name("bad_input.json")
KEYS = {"acme": API_KEY, "globex": OTHER_KEY, "none": None}
BUCKETS = "acme=my-bucket|acme-assets,globex=globex-bucket"
TOKEN_SECRET = "bad-input-corpus-secret"
SERVICE = pb.DESCRIPTOR.services_by_name["JobService"]
DELETE = "$delete"
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


# ------------------------------------------------------------------------ the corpus


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value == DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def expand(value: Any, templates: dict[str, Any]) -> Any:
    """`{"$base": NAME, ...}` anywhere in `value` -> the template with the rest merged over."""
    if isinstance(value, list):
        return [expand(v, templates) for v in value]
    if not isinstance(value, dict):
        return value
    own = {k: expand(v, templates) for k, v in value.items() if k != "$base"}
    if "$base" not in value:
        return own
    return _merge(expand(templates[value["$base"]], templates), own)


def load_cases() -> list[dict[str, Any]]:
    corpus = json.loads(CORPUS.read_text())
    cases = [expand(case, corpus["templates"]) for case in corpus["cases"]]
    names = [case["name"] for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: names.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {substitute(k, names): substitute(v, names) for k, v in value.items()}
    return value


def _params(case: dict[str, Any]) -> Any:
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
    return pytest.param(case, id=case["name"], marks=marks)


CASES = load_cases()


# ------------------------------------------------------------------------- the stack


class Stack:
    def __init__(self, thread: StackThread, redis_url: str) -> None:
        self.redis_url = redis_url
        self.http = httpx.Client(base_url=thread.url, timeout=10)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{thread.grpc_port}")

    def close(self) -> None:
        self.http.close()
        self.channel.close()


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    storage = tmp_path_factory.mktemp("storage")
    with StackThread(
        redis_server.url,
        storage,
        tenant_buckets=BUCKETS,
        webhook_allow_private=False,
        stream_token_secret=TOKEN_SECRET,
    ) as thread:
        running = Stack(thread, redis_server.url)
        yield running
        running.close()


# --------------------------------------------------------------------------- calling


class Answer:
    """What came back: an HTTP status or gRPC code, the error text, the fields named by
    the error's details, and the body (JSON), for captures and failure messages."""

    def __init__(self, status: int | str, text: str, fields: list[str], body: Any) -> None:
        self.status = status
        self.text = text
        self.fields = fields
        self.body = body

    def __repr__(self) -> str:
        return f"{self.status} {self.body!r}"

    def names(self, field: str) -> bool:
        if field in self.fields:
            return True
        word = rf"(?<![A-Za-z0-9_]){re.escape(field)}(?![A-Za-z0-9_])"
        return re.search(word, self.text) is not None


def rest_call(stack: Stack, spec: dict[str, Any]) -> Answer:
    headers = dict(spec.get("headers", {}))
    key = KEYS[spec.get("key", "acme")]
    if key is not None:
        headers.setdefault("X-API-Key", key)
    content: bytes | None = None
    if "hex" in spec:
        content = bytes.fromhex(spec["hex"])
    elif "text" in spec:
        content = spec["text"].encode() * spec.get("repeat", 1)
    elif "json" in spec:
        content = json.dumps(spec["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    request = stack.http.build_request(
        spec["method"], spec["path"], content=content, headers=headers
    )
    response = stack.http.send(request, stream=True)
    try:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            # An open stream: its status is the answer; it would not end by itself.
            return Answer(response.status_code, "", [], "(event stream)")
        response.read()
    finally:
        response.close()
    try:
        body = response.json()
    except ValueError:
        return Answer(response.status_code, response.text, [], response.text)
    text, fields = "", []
    if isinstance(body, dict) and "error" in body:
        text = str(body["error"])
        fields = [d.get("field", "") for d in body.get("details", [])]
    return Answer(response.status_code, text, fields, body)


def _violations(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is None:
        return []
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def grpc_call(stack: Stack, spec: dict[str, Any]) -> Answer:
    method = SERVICE.methods_by_name[spec["rpc"]]
    path = f"/{SERVICE.full_name}/{method.name}"
    metadata = [tuple(pair) for pair in spec.get("metadata", [])]
    key = KEYS[spec.get("key", "acme")]
    if key is not None:
        metadata.append(("x-api-key", key))
    if "raw_hex" in spec:
        request = bytes.fromhex(spec["raw_hex"])
    else:
        message = message_factory.GetMessageClass(method.input_type)()
        json_format.Parse(json.dumps(spec.get("request", {})), message)
        request = message.SerializeToString()
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            call = stack.channel.unary_stream(path)(request, metadata=metadata, timeout=10)
            try:
                raw = next(call)
            finally:
                call.cancel()
        else:
            raw = stack.channel.unary_unary(path)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as err:
        details = err.details() or ""  # type: ignore[attr-defined]
        code = err.code().name  # type: ignore[attr-defined]
        return Answer(code, details, _violations(err), f"{details} {_violations(err)}")
    body = json_format.MessageToDict(
        response_class.FromString(raw), preserving_proto_field_name=True
    )
    return Answer("OK", "", [], body)


def call(stack: Stack, spec: dict[str, Any]) -> Answer:
    return rest_call(stack, spec) if spec["via"] == "rest" else grpc_call(stack, spec)


def succeeded(answer: Answer) -> bool:
    return answer.status == "OK" or (isinstance(answer.status, int) and answer.status < 300)


def run_before(stack: Stack, case: dict[str, Any], names: dict[str, str]) -> None:
    for number, raw_step in enumerate(case.get("before", []), 1):
        step = substitute(raw_step, names)
        where = f"case {case['name']}, before step {number}"
        do = step.get("do")
        if do == "claim":
            asyncio.run(_claim(stack.redis_url))
        elif do == "expired_token":
            tokens = StreamTokens(TOKEN_SECRET.encode(), 300, clock=lambda: time.time() - 3600)
            names[step["as"]] = tokens.issue(step["job"], step.get("tenant", "acme"))[0]
        elif do == "forge":
            names[step["as"]] = forged(step["token"], **step["changes"])
        else:
            assert do is None, f"{where}: unknown step {do!r}"
            answer = call(stack, step)
            assert succeeded(answer), f"{where} answered {answer!r}"
            for name, response_field in step.get("capture", {}).items():
                names[name] = answer.body[response_field]


async def _claim(redis_url: str) -> None:
    worker = Worker(redis_url)
    try:
        await worker.claim()
    finally:
        await worker.close()


def assert_still_healthy(stack: Stack, name: str) -> None:
    submitted = stack.http.post(
        "/api/v1/jobs/image/resize", json=SEED_BODY, headers={"X-API-Key": API_KEY}
    )
    assert submitted.status_code == 202, (
        f"case {name}: afterwards a good submit answered {submitted.status_code} {submitted.text}"
    )
    stats = grpc_call(stack, {"rpc": "GetQueueStats", "request": {}})
    assert stats.status == "OK", f"case {name}: afterwards GetQueueStats answered {stats!r}"


# ------------------------------------------------------------------------------ test


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_bad_input(stack: Stack, redis_server: RedisServer, case: dict[str, Any]) -> None:
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    names: dict[str, str] = {}
    run_before(stack, case, names)
    spec = substitute(case, names)
    answer = call(stack, spec)

    name = case["name"]
    expected = spec["status"] if spec["via"] == "rest" else spec["code"]
    assert answer.status == expected, f"case {name}: expected {expected}, got {answer!r}"
    if spec["via"] == "rest" and "code" in spec:
        code = answer.body.get("code") if isinstance(answer.body, dict) else None
        assert code == spec["code"], f"case {name}: expected code {spec['code']}, got {answer!r}"
    missing = [f for f in spec.get("fields", []) if not answer.names(f)]
    assert not missing, f"case {name}: the error does not name {missing}: {answer!r}"
    absent = [s for s in spec.get("contains", []) if s not in answer.text]
    assert not absent, f"case {name}: the error does not say {absent}: {answer!r}"
    for key, value in spec.get("answer", {}).items():
        got = answer.body.get(key, "(missing)") if isinstance(answer.body, dict) else answer.body
        assert got == value, f"case {name}: expected {key} = {value!r}, got {answer!r}"
    assert_still_healthy(stack, name)


def test_the_corpus_is_large_and_covers_both_transports() -> None:
    vias = [case["via"] for case in CASES]
    assert len(CASES) >= 60
    assert vias.count("rest") >= 20 and vias.count("grpc") >= 20
