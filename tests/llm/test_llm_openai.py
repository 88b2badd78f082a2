"""The OpenAI-compatible provider over real HTTP.

- A real server: `envfactory llm serve` (our OpenAI-compatible server over the local provider,
  `llm.http_server`) on SmolLM2, started as a subprocess on a free loopback port; answers are compared
  with the in-process provider's.
- The suite's OpenAI-compatible stub (`openai_stub`, tests/conftest.py), scripted, for the error mapping
  (503 then success, 400) and for what the requests it receives hold: tools, tool_choice,
  response_format, seed, sampling, messages. The synthesis tests run a whole stage over the same stub.
- A port with nothing listening, for the unreachable endpoint.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ClientPolicy,
    EndpointUnreachableError,
    FunctionTool,
    LocalProvider,
    ManagedClient,
    NamedToolChoice,
    OpenAICompatibleProvider,
    OpenAIConfig,
    ResponseFormat,
    RetryPolicy,
    UsageLedger,
)
from envfactory.llm.schema import CompiledSchema
from envfactory.spec import ToolCall
from envfactory.store import KVStore
from openai_stub import OpenAIStub

WEATHER = FunctionTool(
    name="get_weather", description="Get the current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                "additionalProperties": False},
)
EMAIL = FunctionTool(
    name="send_email", description="Send an email.",
    parameters={"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                "required": ["to", "body"], "additionalProperties": False},
)
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(models_dir: Path) -> Iterator[str]:
    """`envfactory llm serve` on SmolLM2; yields the base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "envfactory", "llm", "serve", "--model", "smollm2-135m", "--port", str(port),
         "--models-dir", str(models_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"envfactory llm serve did not come up (exit {process.poll()}):\n{output}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def provider(base_url: str, **options: Any) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(OpenAIConfig(base_url=base_url, model="smollm2-135m", **options))


@pytest.mark.slow
def test_chat_tools_and_structured_output_over_http(served: str, tmp_path: Path) -> None:
    llm = provider(served, structured_output="json_object")
    plain = llm.chat(ChatRequest(messages=[ChatMessage.user("Say hello.")], max_tokens=12))
    assert plain.content and plain.usage.prompt_tokens > 0 and plain.model.startswith("openai/smollm2-135m@http")

    named = llm.chat(ChatRequest(messages=[ChatMessage.user("Weather in Rome?")], tools=[WEATHER, EMAIL],
                                 tool_choice=NamedToolChoice(name="get_weather"), max_tokens=48))
    (call,) = named.tool_calls
    assert call.tool == "get_weather" and isinstance(call.arguments["city"], str)
    assert named.finish_reason == "tool_calls" and call.id.startswith("call_")  # our deterministic id

    with KVStore(tmp_path / "c.sqlite") as cache:
        client = ManagedClient(llm, cache=cache)
        answer = client.complete_json([ChatMessage.user("Invent a person.")], PERSON, max_tokens=48)
        assert CompiledSchema(PERSON).problems(answer) == []
        assert client.complete_json([ChatMessage.user("Invent a person.")], PERSON, max_tokens=48) == answer
        assert client.usage().total().cached_calls == 1


@pytest.mark.slow
def test_required_tool_choice_through_structured_output(served: str) -> None:
    """llama-cpp-python's server ignores tool_choice="required"; forced_calls="schema" still gets a call."""
    llm = provider(served, structured_output="json_object", forced_calls="schema")
    request = ChatRequest(messages=[ChatMessage.user("Email bob@example.com that lunch is at noon.")],
                          tools=[WEATHER, EMAIL], tool_choice="required", max_tokens=64)
    call = ManagedClient(llm).chat(request).tool_calls[0]
    assert call.tool in {"get_weather", "send_email"}


@pytest.mark.slow
def test_the_served_model_answers_exactly_as_in_process(served: str, smol: LocalProvider) -> None:
    """`envfactory llm serve` serves our local provider: in the OpenAI forms vLLM and SGLang take (named,
    required and auto tool_choice, json_schema response_format, seed), every answer equals the in-process
    one, and a repeated prompt reports the tokens its prefix cache restored."""
    llm = provider(served)
    history = [ChatMessage.system("You help with weather and email. " * 30), ChatMessage.user("Weather in Rome?")]
    requests = [
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], tool_choice=NamedToolChoice(name="get_weather"),
                    max_tokens=40),
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], tool_choice="required", max_tokens=48,
                    temperature=0.8, seed=3),
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], max_tokens=32),
        ChatRequest(messages=history, response_format=ResponseFormat(name="person", json_schema=PERSON),
                    max_tokens=48, temperature=0.9, seed=4),
    ]
    for request in requests:
        remote, local = llm.chat(request), smol.chat(request)
        assert (remote.message, remote.finish_reason, remote.usage) == (local.message, local.finish_reason, local.usage)
    again = llm.chat(requests[0].model_copy(update={"seed": 9}))
    assert again.usage.reused_tokens > 0 and again.usage.reused_tokens % 128 == 0


def test_unreachable_endpoint_is_a_clear_error_after_retries() -> None:
    port = free_port()  # nothing listens there any more
    sleeps: list[float] = []
    client = ManagedClient(provider(f"http://127.0.0.1:{port}/v1", timeout_s=5), sleep=sleeps.append,
                           policy=ClientPolicy(retry=RetryPolicy(max_attempts=3)))
    with pytest.raises(EndpointUnreachableError, match=rf"cannot reach .*127\.0\.0\.1:{port}/v1.*gave up after 3"):
        client.chat(ChatRequest(messages=[ChatMessage.user("hi")]))
    assert len(sleeps) == 2


COMPLETION = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "server-random-id", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
}


def test_server_errors_are_retried_and_bad_requests_are_not(openai_stub: OpenAIStub) -> None:
    base_url = openai_stub.base_url
    openai_stub.script = [(503, {"error": {"message": "overloaded"}}), (200, COMPLETION)]
    sleeps: list[float] = []
    client = ManagedClient(provider(base_url), sleep=sleeps.append)
    request = ChatRequest(messages=[ChatMessage.user("Weather in Oslo?")], tools=[WEATHER],
                          tool_choice=NamedToolChoice(name="get_weather"),
                          response_format=None, seed=5)
    response = client.chat(request)
    assert response.tool_calls[0].arguments == {"city": "Oslo"} and len(sleeps) == 1
    assert response.tool_calls[0].id != "server-random-id"
    sent = openai_stub.bodies[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["seed"] == 5 and sent["tools"][0]["function"]["name"] == "get_weather"

    openai_stub.script = [(400, {"error": {"message": "model not found"}})]
    with pytest.raises(ProviderError, match=r"refused the request \(400\).*model not found"):
        client.chat(ChatRequest(messages=[ChatMessage.user("other")]))
    assert len(sleeps) == 1


def test_structured_output_is_sent_in_the_openai_form(openai_stub: OpenAIStub) -> None:
    base_url = openai_stub.base_url
    answer = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "{\"name\": \"A\", \"age\": 1}"}}]}
    openai_stub.script = [(200, answer)]
    response = provider(base_url).chat(ChatRequest(messages=[ChatMessage.user("p")],
                                                   response_format=ResponseFormat(name="person", json_schema=PERSON)))
    assert response.parsed() == {"name": "A", "age": 1}
    assert openai_stub.bodies[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


def test_every_request_field_reaches_the_server_in_openai_form(openai_stub: OpenAIStub) -> None:
    """What an agent step sends (vLLM, SGLang and llama-cpp-python's server all take this form): the full
    tools, each `tool_choice`, both response-format forms, the forced call as a schema, the seed and the
    sampling settings, and a conversation with a tool call and its result."""
    base_url = openai_stub.base_url
    text = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "{\"name\": \"A\", \"age\": 1}"}}]}
    call = ChatMessage.assistant("", [ToolCall(id="call_1", tool="get_weather", arguments={"city": "Oslo"})])
    history = [ChatMessage.system("You help."), ChatMessage.user("Weather in Oslo?"), call,
               ChatMessage.tool(call.tool_calls[0], '{"sky": "clear"}')]
    requests = [
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], tool_choice="auto", seed=3, temperature=0.7,
                    top_p=0.9, max_tokens=33, stop=["\n\n"]),
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], tool_choice="required", seed=4),
        ChatRequest(messages=history, tools=[WEATHER, EMAIL], tool_choice="none", seed=5),
        ChatRequest(messages=history, response_format=ResponseFormat(name="person", json_schema=PERSON), seed=6),
    ]
    openai_stub.script = [(200, text)] * 4
    llm = provider(base_url)
    for request in requests:
        llm.chat(request)
    auto, required, none, structured = openai_stub.bodies
    assert [b["seed"] for b in openai_stub.bodies] == [3, 4, 5, 6]
    assert (auto["temperature"], auto["top_p"], auto["max_tokens"], auto["stop"]) == (0.7, 0.9, 33, ["\n\n"])
    assert auto["tools"] == [WEATHER.openai(), EMAIL.openai()]  # names, descriptions and full schemas
    assert (auto["tool_choice"], required["tool_choice"], none["tool_choice"]) == ("auto", "required", "none")
    assert "response_format" not in auto and "tools" not in structured
    assert structured["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    assert auto["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
    assert auto["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'}

    # the older form (llama-cpp-python's server): json_object with the schema, forced calls as a schema
    openai_stub.bodies.clear()
    call_text = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "{\"name\": \"send_email\", \"arguments\": {\"to\": \"a\", \"body\": \"b\"}}"}}]}
    openai_stub.script = [(200, text), (200, call_text)]
    old = provider(base_url, structured_output="json_object", forced_calls="schema", send_seed=False)
    old.chat(requests[3])
    forced = old.chat(requests[1])
    assert forced.tool_calls[0].tool == "send_email" and forced.finish_reason == "tool_calls"
    first, second = openai_stub.bodies
    assert first["response_format"] == {"type": "json_object", "schema": PERSON} and "seed" not in first
    assert second["tool_choice"] == "none" and second["response_format"]["type"] == "json_object"
    assert second["response_format"]["schema"]["anyOf"][0]["properties"]["name"] == {"const": "get_weather"}


def test_prompt_tokens_the_server_cached_are_counted_as_reused(openai_stub: OpenAIStub) -> None:
    """vLLM and SGLang report prefix-cache hits as `usage.prompt_tokens_details.cached_tokens`."""
    base_url = openai_stub.base_url
    cached = {**COMPLETION, "usage": {**COMPLETION["usage"], "prompt_tokens_details": {"cached_tokens": 8}}}
    openai_stub.script = [(200, cached), (200, COMPLETION)]
    ledger = UsageLedger()
    client = ManagedClient(provider(base_url), ledger=ledger)
    request = ChatRequest(messages=[ChatMessage.user("Weather in Oslo?")], tools=[WEATHER])
    assert client.chat(request).usage.reused_tokens == 8
    assert client.chat(request.model_copy(update={"seed": 1})).usage.reused_tokens == 0
    total = ledger.report().total()
    assert (total.prompt_tokens, total.reused_tokens, total.evaluated_tokens) == (20, 8, 12)
