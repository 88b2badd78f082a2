"""`llm.http_server` (what `envfactory llm serve` runs) without a model: the OpenAI body our own
OpenAI-compatible provider sends parses back into the very request it was made from, and the server's
answers come back through that provider unchanged. A scripted client stands in for the model; the real
model behind the real server is tested in `test_llm_openai.py`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    NamedToolChoice,
    OpenAIConfig,
    ResponseFormat,
    ScriptedClient,
    Usage,
)
from envfactory.llm.http_server import BadRequest, completion_body, create_app, parse_request
from envfactory.llm.openai_compat import OpenAICompatibleProvider, request_body
from envfactory.spec import ToolCall

WEATHER = FunctionTool(name="get_weather", description="Weather for a city.",
                       parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
EMAIL = FunctionTool(name="send_email", description="Send an email.",
                     parameters={"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]})
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
CALL = ToolCall(id="call_7", tool="get_weather", arguments={"city": "Oslo"})
HISTORY = [ChatMessage.system("You help."), ChatMessage.user("Weather in Oslo?"), ChatMessage.assistant("", [CALL]),
           ChatMessage.tool(CALL, '{"sky": "clear"}'), ChatMessage.user("And now?")]
REQUESTS = [
    ChatRequest(messages=HISTORY, tools=[WEATHER, EMAIL], tool_choice="auto", temperature=0.7, top_p=0.9,
                max_tokens=33, seed=3, stop=["\n\n"]),
    ChatRequest(messages=HISTORY, tools=[WEATHER, EMAIL], tool_choice="required", seed=4),
    ChatRequest(messages=HISTORY, tools=[WEATHER, EMAIL], tool_choice=NamedToolChoice(name="send_email")),
    ChatRequest(messages=HISTORY, tools=[WEATHER], tool_choice="none", seed=5),
    ChatRequest(messages=HISTORY, response_format=ResponseFormat(name="thing", json_schema=SCHEMA), seed=6),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=["auto", "required", "named", "none", "schema"])
def test_the_body_our_provider_sends_parses_back_into_the_same_request(request_: ChatRequest) -> None:
    body = request_body(OpenAIConfig(base_url="http://x/v1", model="m"), request_)
    assert parse_request(body) == request_


def test_the_older_json_object_form_is_understood() -> None:
    config = OpenAIConfig(base_url="http://x/v1", model="m", structured_output="json_object")
    assert parse_request(request_body(config, REQUESTS[4])).response_format == ResponseFormat(json_schema=SCHEMA)


@pytest.mark.parametrize(("body", "problem"), [
    ([], "JSON object"),
    ({"messages": []}, "non-empty"),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": True}, "streaming"),
    ({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}, "not supported"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "not a valid request"),
])
def test_bad_bodies_are_refused_with_the_reason(body: Any, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        parse_request(body)


def _served(script: list[Any]) -> tuple[ScriptedClient, TestClient]:
    model = ScriptedClient(script, model_id="local/test@1")
    return model, TestClient(create_app(model, "test-model"))


def test_answers_come_back_through_the_openai_provider_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    call = ChatResponse(model="local/test@1", message=ChatMessage.assistant("", [ToolCall(
        id="call_x", tool="send_email", arguments={"to": "a@b.c"})]), finish_reason="tool_calls",
        usage=Usage(prompt_tokens=40, completion_tokens=9, reused_tokens=32))
    text = ChatResponse(model="local/test@1", message=ChatMessage.assistant('{"a": 1}'), finish_reason="length",
                        usage=Usage(prompt_tokens=30, completion_tokens=5))
    model, http = _served([call, text])
    assert http.get("/v1/models").json()["data"][0]["id"] == "test-model"
    provider = OpenAICompatibleProvider(OpenAIConfig(base_url="http://testserver/v1", model="test-model"))
    monkeypatch.setattr(provider, "_sdk", lambda: _sdk_over(http))
    got = provider.chat(REQUESTS[2])
    assert got.tool_calls[0].tool == "send_email" and got.tool_calls[0].arguments == {"to": "a@b.c"}
    assert got.finish_reason == "tool_calls" and got.usage == call.usage and got.usage.reused_tokens == 32
    got = provider.chat(REQUESTS[4])
    assert (got.content, got.finish_reason, got.usage) == ('{"a": 1}', "length", text.usage)
    assert model.requests == [REQUESTS[2], REQUESTS[4]]  # the server asked the model exactly what was sent


def test_provider_failures_map_to_http_errors_the_client_understands() -> None:
    from envfactory.llm.errors import ProviderTimeoutError

    _, http = _served([ProviderError("the prompt has 5000 tokens, more than the context window"),
                       ProviderTimeoutError("took longer than 600s")])
    body = request_body(OpenAIConfig(base_url="http://x/v1", model="m"), REQUESTS[3])
    refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and "context window" in refused.json()["error"]["message"]
    assert http.post("/v1/chat/completions", json=body).status_code == 503  # retried by ManagedClient
    assert http.post("/v1/chat/completions", content=b"not json").status_code == 400


def test_the_completion_body_is_deterministic() -> None:
    response = ChatResponse(model="m", message=ChatMessage.assistant("hi"), finish_reason="stop")
    assert completion_body(response, REQUESTS[0], "m") == completion_body(response, REQUESTS[0], "m")


def _sdk_over(http: TestClient) -> Any:
    """The openai SDK talking to the in-process app (its transport is the test client's)."""
    import openai

    return openai.OpenAI(base_url="http://testserver/v1", api_key="x", max_retries=0, http_client=http)
