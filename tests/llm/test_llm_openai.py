"""The OpenAI-compatible provider over real HTTP.

- A real server: `envfactory llm serve` (llama-cpp-python's OpenAI-compatible server) over SmolLM2,
  started as a subprocess on a free loopback port.
- A tiny scripted HTTP server (standard library) for the error mapping: 503 then success, 400.
- A port with nothing listening, for the unreachable endpoint.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
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
    ManagedClient,
    NamedToolChoice,
    OpenAICompatibleProvider,
    OpenAIConfig,
    ResponseFormat,
    RetryPolicy,
)
from envfactory.llm.schema import CompiledSchema
from envfactory.store import KVStore

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


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers POSTs with the next (status, body) of the server's script and keeps the request bodies."""

    def do_POST(self) -> None:
        server: Any = self.server
        server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        status, body = server.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def scripted_server() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.bodies = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_server_errors_are_retried_and_bad_requests_are_not(scripted_server: Any) -> None:
    base_url = f"http://127.0.0.1:{scripted_server.server_address[1]}/v1"
    scripted_server.script = [(503, {"error": {"message": "overloaded"}}), (200, COMPLETION)]
    sleeps: list[float] = []
    client = ManagedClient(provider(base_url), sleep=sleeps.append)
    request = ChatRequest(messages=[ChatMessage.user("Weather in Oslo?")], tools=[WEATHER],
                          tool_choice=NamedToolChoice(name="get_weather"),
                          response_format=None, seed=5)
    response = client.chat(request)
    assert response.tool_calls[0].arguments == {"city": "Oslo"} and len(sleeps) == 1
    assert response.tool_calls[0].id != "server-random-id"
    sent = scripted_server.bodies[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["seed"] == 5 and sent["tools"][0]["function"]["name"] == "get_weather"

    scripted_server.script = [(400, {"error": {"message": "model not found"}})]
    with pytest.raises(ProviderError, match=r"refused the request \(400\).*model not found"):
        client.chat(ChatRequest(messages=[ChatMessage.user("other")]))
    assert len(sleeps) == 1


def test_structured_output_is_sent_in_the_openai_form(scripted_server: Any) -> None:
    base_url = f"http://127.0.0.1:{scripted_server.server_address[1]}/v1"
    answer = {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "{\"name\": \"A\", \"age\": 1}"}}]}
    scripted_server.script = [(200, answer)]
    response = provider(base_url).chat(ChatRequest(messages=[ChatMessage.user("p")],
                                                   response_format=ResponseFormat(name="person", json_schema=PERSON)))
    assert response.parsed() == {"name": "A", "age": 1}
    assert scripted_server.bodies[-1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
