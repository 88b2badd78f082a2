"""An OpenAI-compatible HTTP server over any `LLMClient` (`envfactory llm serve`): several evaluation or
synthesis processes share one loaded model, its prefix cache and its determinism.

Contract:
- `POST /v1/chat/completions` takes the OpenAI chat-completion body that `openai_compat.request_body`
  sends (and vLLM, SGLang and llama-cpp-python's server take): `messages` (with tool calls and tool
  results), `tools`, `tool_choice` (`auto`, `none`, `required` or a named function), `response_format`
  (`json_schema`, or `json_object` with or without a `schema`), `temperature`, `top_p`, `max_tokens`
  (or `max_completion_tokens`), `seed` and `stop`. It answers with one choice: content and/or
  `tool_calls` (arguments as JSON text), `finish_reason`, and `usage` with
  `prompt_tokens_details.cached_tokens` (the prompt tokens restored from the prefix cache).
  `GET /v1/models` lists the one model.
- A body that is not a valid request is a 400 naming the problem; a provider failure caused by the
  request (e.g. a prompt longer than the context) a 400 with its message; a timeout a 503 (clients retry).
- Answers are the client's: the same request gives the same bytes as in-process (tool-call ids
  included). Streaming is not supported (`stream: true` is a 400).
- The provider serialises calls itself (the local provider holds a lock); the server runs each request
  in a worker thread.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request  # module level: FastAPI resolves the endpoint's annotations here

from envfactory.errors import ProviderError
from envfactory.llm.errors import ProviderTimeoutError
from envfactory.llm.protocols import LLMClient
from envfactory.llm.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    NamedToolChoice,
    ResponseFormat,
)
from envfactory.spec import JSONObject, ToolCall, content_hash


class BadRequest(ValueError):
    """The body is not a chat-completion request we can answer."""


def _tool_call(item: Any) -> ToolCall:
    function = item.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = None
    ok = isinstance(arguments, dict)
    return ToolCall(id=str(item.get("id") or ""), tool=str(function.get("name") or ""),
                    arguments=arguments if ok else {}, raw_arguments=None if ok else str(raw))


def _messages(items: Any) -> list[ChatMessage]:
    if not isinstance(items, list) or not items:
        raise BadRequest("messages must be a non-empty list")
    names: dict[str, str] = {}
    messages: list[ChatMessage] = []
    for item in items:
        role, content = item.get("role"), item.get("content") or ""
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if role == "assistant" and item.get("tool_calls"):
            calls = [_tool_call(call) for call in item["tool_calls"]]
            names.update({call.id: call.tool for call in calls})
            messages.append(ChatMessage.assistant(content, calls))
        elif role == "tool":
            call_id = str(item.get("tool_call_id") or "")
            messages.append(ChatMessage(role="tool", content=content, tool_call_id=call_id,
                                        name=item.get("name") or names.get(call_id)))
        else:
            messages.append(ChatMessage(role=role, content=content))
    return messages


def _response_format(value: Any) -> ResponseFormat | None:
    if not value or value.get("type") == "text":
        return None
    if value.get("type") == "json_schema":
        spec = value.get("json_schema") or {}
        return ResponseFormat(name=spec.get("name") or "response", json_schema=spec.get("schema") or {})
    if value.get("type") == "json_object":
        return ResponseFormat(json_schema=value.get("schema") or {"type": "object"})
    raise BadRequest(f"response_format type {value.get('type')!r} is not supported")


def parse_request(body: Any) -> ChatRequest:
    """The `ChatRequest` an OpenAI chat-completion body asks for (`BadRequest` when it is not one)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("streaming is not supported")
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported")
    try:
        return ChatRequest.model_validate(_fields(body))
    except (ValidationError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(f"not a valid request: {exc}") from exc


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        choice = NamedToolChoice(name=(choice.get("function") or {}).get("name", ""))
    stop = body.get("stop") or []
    fields: dict[str, Any] = {
        "messages": _messages(body.get("messages")),
        "tools": [FunctionTool(name=t["function"]["name"], description=t["function"].get("description") or "",
                               parameters=t["function"].get("parameters") or {"type": "object", "properties": {}})
                  for t in body.get("tools") or []],
        "tool_choice": choice if body.get("tools") else "auto",
        "response_format": _response_format(body.get("response_format")),
        "stop": [stop] if isinstance(stop, str) else list(stop),
    }
    for name, wire in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                       ("max_tokens", "max_completion_tokens"), ("max_tokens", "max_tokens")):
        if body.get(wire) is not None:
            fields[name] = body[wire]
    return fields


def completion_body(response: ChatResponse, request: ChatRequest, model: str) -> JSONObject:
    """The OpenAI chat-completion JSON of `response`."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content or None}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {
                "name": call.tool,
                "arguments": call.raw_arguments if call.raw_arguments is not None else json.dumps(call.arguments),
            }}
            for call in response.tool_calls
        ]
    usage = response.usage
    return {
        "id": "chatcmpl-" + content_hash({"request": request.model_dump(mode="json"), "model": model})[:24],
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": response.finish_reason}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.reused_tokens},
        },
    }


def create_app(client: LLMClient, model_name: str) -> Any:
    """The FastAPI application serving `client` under the model name `model_name`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="envfactory model server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})

    @app.get("/v1/models")
    def models() -> JSONObject:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "envfactory",
                                            "created": 0, "root": client.model_id}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        try:
            parsed = parse_request(await request.json())
        except (BadRequest, ValueError) as exc:
            return error(400, str(exc), "invalid_request_error")
        try:
            response = await run_in_threadpool(client.chat, parsed)
        except ProviderTimeoutError as exc:
            return error(503, str(exc), "timeout")
        except ProviderError as exc:
            return error(400, str(exc), "invalid_request_error")
        return JSONResponse(completion_body(response, parsed, model_name))

    return app
