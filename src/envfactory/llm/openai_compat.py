"""The OpenAI-compatible HTTP provider (the `openai` SDK): vLLM, SGLang, Ollama, llama-cpp-python's
server (`envfactory llm serve`), hosted APIs.

Contract:
- Configuration is explicit (`OpenAIConfig`: base URL, model, key, timeout); the CLI fills it from
  flags or environment variables, this module reads none.
- The SDK's own retries are off: `ManagedClient` retries. Connection failures raise
  `EndpointUnreachableError` naming the URL, timeouts `ProviderTimeoutError`, 429 and 5xx
  `TransientProviderError` (all retried); other HTTP errors a `ProviderError` with the server's message.
- Structured output is sent as OpenAI's `{"type": "json_schema", ...}`, or, for servers that only know
  the older form (llama-cpp-python's server), as `{"type": "json_object", "schema": ...}`
  (`structured_output="json_object"`). The answer is validated by `ManagedClient` either way.
- A forced tool call (`tool_choice` required or named) is sent as OpenAI's `tool_choice`, or, for servers
  that do not honour it (llama-cpp-python's server ignores "required"), as structured output of
  `{"name", "arguments"}` (`forced_calls="schema"`), turned back into a tool call here.
- Tool-call ids are replaced by deterministic ones (same request, same response bytes). When a server
  returns calls as text instead of `tool_calls`, they are parsed from the text like the local model's.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

from envfactory.errors import ProviderError
from envfactory.llm.errors import (
    DependencyMissingError,
    EndpointUnreachableError,
    ProviderTimeoutError,
    TransientProviderError,
)
from envfactory.llm.parsing import call_id, extract_tool_calls, to_tool_calls, tool_call_schema
from envfactory.llm.types import ChatMessage, ChatRequest, ChatResponse, FinishReason, NamedToolChoice, Usage
from envfactory.spec import JSONObject, ToolCall


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """An OpenAI-compatible endpoint: base URL, model name, key (local servers take any), timeout, how
    structured answers are asked for (`json_schema` or `json_object`), how forced calls are made
    (`native` tool choice or a `schema` answer) and whether the request's seed is sent."""

    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout_s: float = 120.0
    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    forced_calls: Literal["native", "schema"] = "native"
    send_seed: bool = True


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        item["content"] = message.content or None
        item["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.tool,
                    "arguments": call.raw_arguments if call.raw_arguments is not None else json.dumps(call.arguments),
                },
            }
            for call in message.tool_calls
        ]
    return item


def _response_format(config: OpenAIConfig, name: str, schema: JSONObject) -> dict[str, Any]:
    if config.structured_output == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    return {"type": "json_object", "schema": schema}


def _forced_as_schema(config: OpenAIConfig, request: ChatRequest) -> bool:
    return config.forced_calls == "schema" and request.forces_tool_call()


def request_body(config: OpenAIConfig, request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for `request`."""
    body: dict[str, Any] = {
        "model": config.model,
        "messages": [_wire_message(m) for m in request.messages],
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
    }
    if config.send_seed:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [tool.openai() for tool in request.tools]
        choice = request.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}} if isinstance(choice, NamedToolChoice) else choice
        )
    if _forced_as_schema(config, request):
        body["tool_choice"] = "none"
        body["response_format"] = _response_format(config, "tool_call", tool_call_schema(request.offered_tools()))
    elif request.response_format is not None:
        body["response_format"] = _response_format(
            config, request.response_format.name, request.response_format.json_schema
        )
    return body


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens the server says it served from its prefix cache (`prompt_tokens_details`; vLLM and
    SGLang fill it when prefix caching is on), 0 when it does not say."""
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    cached = getattr(details, "cached_tokens", None) if details else None
    return int(cached) if isinstance(cached, int) and cached >= 0 else 0


class OpenAICompatibleProvider:
    """`LLMClient` over any OpenAI-compatible `/v1/chat/completions` endpoint."""

    def __init__(self, config: OpenAIConfig) -> None:
        """A provider for `config`; the SDK client is created on the first call."""
        self.config = config
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """`openai/<model>@<base url>`."""
        return f"openai/{self.config.model}@{self.config.base_url.rstrip('/')}"

    def _sdk(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import openai
                except ImportError as exc:
                    raise DependencyMissingError(f"the openai SDK is not installed ({exc}): pip install 'envfactory[llm]'") from exc
                self._client = openai.OpenAI(
                    base_url=self.config.base_url,
                    api_key=self.config.api_key,
                    timeout=self.config.timeout_s,
                    max_retries=0,
                )
            return self._client

    def close(self) -> None:
        """Close the SDK client (idempotent); a later call opens a new one."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request over HTTP. Raises `ProviderError` subclasses: transient ones (timeouts,
        connection errors, rate limits, 5xx) are retried by the managed client."""
        import openai

        client = self._sdk()
        url = self.config.base_url
        try:
            completion = client.chat.completions.create(**request_body(self.config, request))
        except openai.APITimeoutError as exc:
            raise ProviderTimeoutError(f"{url} did not answer within {self.config.timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise EndpointUnreachableError(
                f"cannot reach the OpenAI-compatible endpoint {url}: {cause}; is the server running and the URL right?"
            ) from exc
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise TransientProviderError(f"{url} answered {exc.status_code}: {exc.message}") from exc
        except openai.APIStatusError as exc:
            raise ProviderError(f"{url} refused the request ({exc.status_code}): {exc.message}") from exc
        except openai.APIError as exc:
            raise ProviderError(f"{url}: {exc}") from exc
        return self._response(request, completion)

    def _response(self, request: ChatRequest, completion: Any) -> ChatResponse:
        if not completion.choices:
            raise ProviderError(f"{self.config.base_url} returned no choices")
        choice = completion.choices[0]
        wire = choice.message
        content: str = wire.content or ""
        length = len(request.messages)
        calls: list[ToolCall] = []
        for index, tool_call in enumerate(wire.tool_calls or []):
            name = tool_call.function.name
            raw = tool_call.function.arguments or "{}"
            try:
                arguments = json.loads(raw)
            except ValueError:
                arguments = None
            ok = isinstance(arguments, dict)
            calls.append(
                ToolCall(
                    id=call_id(length, index, name, arguments if ok else raw),
                    tool=name,
                    arguments=arguments if ok else {},
                    raw_arguments=None if ok else raw,
                )
            )
        offered = [tool.name for tool in request.offered_tools()]
        if not calls and offered and (request.response_format is None or _forced_as_schema(self.config, request)):
            content, found = extract_tool_calls(content, offered)
            calls = to_tool_calls(found, length)
        finish: FinishReason
        if calls:
            finish = "tool_calls"
        elif choice.finish_reason in ("length", "content_filter"):
            finish = choice.finish_reason
        else:
            finish = "stop"
        usage = completion.usage
        return ChatResponse(
            model=self.model_id,
            message=ChatMessage.assistant(content, calls),
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=int(usage.prompt_tokens or 0) if usage else 0,
                completion_tokens=int(usage.completion_tokens or 0) if usage else 0,
                reused_tokens=_cached_tokens(usage),
            ),
        )
