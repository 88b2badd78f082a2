"""Servers under abuse, part 3: property-based fuzzing (issue 17, deliverable 3).

- The HTTP API, from its own OpenAPI document (`/openapi.json`), with hypothesis: for every operation,
  bodies generated from the operation's request schema by the project's schema-guided generator
  (`spec.schema_sample.generate_value`, seeded by hypothesis), the same bodies mutated (a value replaced by
  arbitrary JSON or hostile text, a field dropped, an unknown field added), arbitrary JSON, raw bytes
  and wrong content types; path parameters are a live session (a fresh one per example, so closing it
  harms no other example), a served environment, or arbitrary text. Requests go to the real server
  (uvicorn, middleware, connection guard) on loopback. No answer may be a 5xx, and every JSON error
  body must carry an error code.
- The MCP tools, over streamable HTTP: for every tool, arguments generated from its `inputSchema` (the
  same generator, then mutated) and arbitrary JSON in their place, plus arbitrary tool names. No answer
  may be a 5xx; each is a JSON-RPC result or error, and the MCP session keeps serving.

schemathesis, the usual tool for the first half, cannot run against this project's pins: every
release that installs next to jsonschema-rs 0.61 calls the canonicalisation API 0.61 removed, and its
hypothesis-jsonschema fallback uses a hypothesis internal (`many.more`) that hypothesis 6.170 no longer
has. Hypothesis runs derandomized (the same examples in every run), `EXAMPLES` per operation; the
counts are printed.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import TOKEN, Running, running

from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.service import SessionTemplate
from envfactory.spec.schema_sample import generate_value

EXAMPLES = 100
AUTH = {"authorization": f"Bearer {TOKEN}"}
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck), print_blob=True)
HOSTILE_TEXT = st.sampled_from(["\ud800", "\udfff\ud800", "\x00", "\x1b[2J", "[/]", "%00", "../" * 20, "\u202e",
                                "a" * 5000, "cus_0001", "shop__get_customer", "", " ", "\n\r"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def fuzz(strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """Run `check` on examples of `strategy` under `FUZZ_SETTINGS` (hypothesis shrinks a failure)."""

    @FUZZ_SETTINGS
    @given(value=strategy)
    def run(value: Any) -> None:
        check(value)

    run()


def _containers(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair inside `value`, for mutations."""
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            _containers(item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            _containers(item, found)
    return found


@st.composite
def schema_values(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """A value generated from `schema`, then left alone or mutated (the negative half)."""
    value = generate_value(schema, random.Random(draw(st.integers(0, 2**32 - 1))))
    mode = draw(st.sampled_from(["valid", "valid", "replace", "drop", "extra", "any"]))
    if mode == "valid":
        return value
    if mode == "any":
        return draw(JSON_VALUES)
    value = copy.deepcopy(value)
    places = _containers(value, [])
    if not places:
        return draw(JSON_VALUES)
    container, key = draw(st.sampled_from(places))
    if mode == "replace":
        container[key] = draw(JSON_VALUES)
    elif mode == "drop" and isinstance(container, dict):
        del container[key]
    elif isinstance(container, dict):
        container[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return value


def _with_defs(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` from the OpenAPI document as a standalone JSON Schema (components become `$defs`)."""
    text = json.dumps({**schema, "$defs": doc.get("components", {}).get("schemas", {})})
    return dict(json.loads(text.replace("#/components/schemas/", "#/$defs/")))


@st.composite
def raw_bodies(draw: st.DrawFn, schema: dict[str, Any] | None) -> tuple[bytes, str]:
    """(body, content type): JSON of a (mutated) schema value, raw bytes, or the right bytes sent as
    another media type."""
    kind = draw(st.sampled_from(["json", "json", "json", "bytes", "media"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), "application/json"
    value = draw(schema_values(schema)) if schema is not None else draw(JSON_VALUES)
    body = json.dumps(value).encode()  # ensure_ascii: lone surrogates travel as escapes
    if kind == "media":
        return body, draw(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                           "application/xml", ""]))
    return body, "application/json"


def _segment(text: str) -> str:
    """A path segment; lone surrogates travel as the (invalid UTF-8) bytes of their code points."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@pytest.fixture(scope="module")
def fuzzed(catalog: EnvCatalog) -> Iterator[Running]:
    with running(catalog, token=TOKEN, mcp=SessionTemplate(envs=("shop",))) as srv:
        yield srv


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    operations = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = _with_defs(doc, content["schema"]) if "schema" in content else None
            operations.append((method.upper(), path, schema))
    return operations


def test_http_api_fuzzed_from_its_openapi_document(fuzzed: Running) -> None:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    with httpx.Client(base_url=fuzzed.url, headers=AUTH, timeout=30) as http:
        doc = http.get("/openapi.json").json()
        operations = _operations(doc)
        assert len(operations) >= 15

        def check(example: tuple[str, str, tuple[bytes, str] | None], label: str, method: str) -> None:
            session_choice, name_choice, body = example
            counts[label] += 1
            path = label.split(" ", 1)[1]
            if "{session_id}" in path:
                if session_choice == "live":
                    created = http.post("/v1/sessions", json={"envs": ["shop"]})
                    assert created.status_code == 201, created.text
                    session_choice = created.json()["id"]
                path = path.replace("{session_id}", _segment(session_choice))
            path = path.replace("{name}", _segment(name_choice))
            headers = {} if body is None or not body[1] else {"content-type": body[1]}
            answer = http.request(method, path, content=None if body is None else body[0], headers=headers)
            assert answer.status_code < 500, (label, answer.status_code, answer.text[:500], example)
            if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
                assert isinstance(answer.json().get("error", {}).get("code"), str), (label, answer.text[:500])

        for method, path, schema in operations:
            label = f"{method} {path}"
            strategy = st.tuples(
                st.sampled_from(["live", "live"]) | st.text(max_size=30) | HOSTILE_TEXT,
                st.sampled_from(["shop", "tracker", "calendar"]) | st.text(max_size=30) | HOSTILE_TEXT,
                raw_bodies(schema) if method in ("POST", "PUT", "PATCH") else st.none(),
            )
            try:
                fuzz(strategy, functools.partial(check, label=label, method=method))
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{label}: {exc!r}"[:3000])
        assert http.get("/v1/health").status_code == 200
    print("\nHTTP examples per operation: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    assert not failures, "\n".join(failures)
    assert all(counts[f"{method} {path}"] >= EXAMPLES for method, path, _ in operations), counts


def _mcp_client(url: str) -> tuple[httpx.Client, dict[str, str]]:
    headers = {**AUTH, "accept": "application/json, text/event-stream", "content-type": "application/json"}
    http = httpx.Client(base_url=url, headers=headers, timeout=30)
    init = http.post("/mcp", json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}})
    assert init.status_code == 200, init.text
    session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return http, session


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def test_mcp_tools_fuzzed_from_their_input_schemas(fuzzed: Running) -> None:
    http, session = _mcp_client(fuzzed.url)
    ids = itertools.count(1)
    counts: Counter[str] = Counter()

    def call(name: str, arguments: Any) -> dict[str, Any]:
        request = {"jsonrpc": "2.0", "id": next(ids), "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        answer = http.post("/mcp", headers=session, content=json.dumps(request).encode())  # surrogates as escapes
        assert answer.status_code < 500, (name, arguments, answer.status_code, answer.text[:500])
        if answer.status_code == 200:
            body = answer.json()
            assert ("result" in body) != ("error" in body), body
            return dict(body)
        return {}

    try:
        listed = http.post("/mcp", headers=session, json={"jsonrpc": "2.0", "id": 0, "method": "tools/list"})
        tools = listed.json()["result"]["tools"]
        assert len(tools) >= 10
        for tool in tools:
            name, schema = tool["name"], tool["inputSchema"]
            arguments = st.one_of(schema_values(schema), st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5),
                                  JSON_VALUES)

            def check(arguments: Any, name: str) -> None:
                counts[name] += 1
                call(name, arguments)

            fuzz(arguments, functools.partial(check, name=name))

        def unknown(pair: tuple[str, Any]) -> None:
            counts["(any name)"] += 1
            call(*pair)

        fuzz(st.tuples(st.text(max_size=80), JSON_VALUES), unknown)
        still = call("shop__get_customer", {"id": "cus_0001"})
        assert still["result"]["structuredContent"]["id"] == "cus_0001"
    finally:
        http.close()
    print("\nMCP examples per tool: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    assert all(n >= EXAMPLES for n in counts.values()), counts
