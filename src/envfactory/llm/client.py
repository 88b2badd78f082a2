"""`ManagedClient`: what the pipeline calls. It wraps any provider (`LLMClient`) with

- a persistent response cache (`store.KVStore`, namespace `chat`) keyed by `request_key(model, request)`:
  a hit returns the stored response, byte for byte, without reaching the provider and costs no tokens;
- an optional cassette recorder (every answer it returns, hits included, so a cassette is complete);
- a concurrency limit (a semaphore shared by every stage view of the client);
- retries with exponential backoff (and jitter) on `TransientProviderError`s; other errors are raised
  at once. Timeouts are the providers' (HTTP timeout, local generation deadline) and count as transient;
- validation of structured answers and tool calls against their schemas (compiled, jsonschema-rs). An
  invalid answer is retried at most `max_repairs` times, each time with the invalid answer and the
  validation errors appended to the conversation; then `StructuredOutputError`. Every attempt is an
  ordinary cached call, so a rerun repeats the same repairs from the cache;
- usage accounting per stage (`for_stage(name)` returns a view that records under that stage).

Contract: `chat` returns a response that satisfies the request (valid JSON for its schema, a valid call
when one is forced) or raises; it is thread-safe. Nothing here reads environment variables.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from envfactory.errors import ProviderError
from envfactory.llm._prompts import prompt_text
from envfactory.llm.errors import StructuredOutputError, TransientProviderError
from envfactory.llm.protocols import LLMClient
from envfactory.llm.replay import CassetteWriter
from envfactory.llm.schema import SchemaValidators
from envfactory.llm.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    NamedToolChoice,
    ResponseFormat,
    request_key,
)
from envfactory.llm.usage import UsageLedger, UsageReport
from envfactory.spec import JSONObject, JSONValue, ToolCall, parse_json
from envfactory.store import KVStore

logger = logging.getLogger(__name__)

CACHE_NAMESPACE = "chat"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per call (first try included) and the backoff between them."""

    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = 0.25

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** (attempt - 1))
        return base * (1.0 + self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """How a `ManagedClient` calls its provider: at most `max_concurrency` calls at once, retries of
    transient errors by `retry`, at most `max_repairs` repair requests after an invalid answer, and
    whether tool calls are checked against the offered tools' parameter schemas (`validate_tool_calls`)."""

    max_concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_repairs: int = 2
    validate_tool_calls: bool = True


@dataclass(slots=True)
class _Shared:
    """What every stage view of one client shares."""

    provider: LLMClient
    cache: KVStore | None
    recorder: CassetteWriter | None
    ledger: UsageLedger
    policy: ClientPolicy
    sleep: Callable[[float], None]
    semaphore: threading.BoundedSemaphore
    validators: SchemaValidators
    rng: random.Random
    rng_lock: threading.Lock


def _feedback(problems: list[str], request: ChatRequest) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    if request.response_format is not None:
        want = "Answer again with only a JSON value that matches the required schema."
    elif request.forces_tool_call() or request.tools:
        want = "Call the tool again with arguments that match its parameter schema."
    else:
        want = "Answer again."
    return prompt_text("repair").format(problems=listed, instruction=want)


def _as_text(response: ChatResponse) -> str:
    if not response.tool_calls:
        return response.content
    calls = [
        {"name": c.tool, "arguments": c.arguments if c.raw_arguments is None else c.raw_arguments}
        for c in response.tool_calls
    ]
    return "\n".join(filter(None, [response.content, json.dumps(calls[0] if len(calls) == 1 else calls)]))


class ManagedClient:
    """See the module docstring. Build one per provider and share it; `for_stage` for accounting."""

    def __init__(
        self,
        provider: LLMClient,
        *,
        cache: KVStore | None = None,
        recorder: CassetteWriter | None = None,
        ledger: UsageLedger | None = None,
        policy: ClientPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stage: str = "default",
    ) -> None:
        """Wrap `provider` with the response `cache` (None: no cache), a cassette `recorder` (None: none), the
        usage `ledger` (default: a new one), the `policy` (default `ClientPolicy()`) and `sleep` (injected
        for retry back-off in tests); calls are accounted under `stage` until `for_stage` gives another view."""
        policy = policy or ClientPolicy()
        self._shared = _Shared(
            provider=provider,
            cache=cache,
            recorder=recorder,
            ledger=ledger or UsageLedger(),
            policy=policy,
            sleep=sleep,
            semaphore=threading.BoundedSemaphore(policy.max_concurrency),
            validators=SchemaValidators(),
            rng=random.Random(0),
            rng_lock=threading.Lock(),
        )
        self.stage = stage

    @classmethod
    def _view(cls, shared: _Shared, stage: str) -> ManagedClient:
        view = cls.__new__(cls)
        view._shared = shared
        view.stage = stage
        return view

    def for_stage(self, stage: str) -> ManagedClient:
        """The same client, accounting its calls under `stage`."""
        return ManagedClient._view(self._shared, stage)

    @property
    def model_id(self) -> str:
        """The provider's model id (part of every cache and cassette key)."""
        return self._shared.provider.model_id

    @property
    def provider(self) -> LLMClient:
        """The wrapped provider (shared by every stage view)."""
        return self._shared.provider

    @property
    def ledger(self) -> UsageLedger:
        """The usage ledger shared by every stage view of this client."""
        return self._shared.ledger

    def usage(self) -> UsageReport:
        """The usage so far, per stage and model, of every stage view of this client."""
        return self._shared.ledger.report()

    # -- the public calls ----------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer `request`, validated and repaired (see the module docstring)."""
        attempt = request
        for repair in range(self._shared.policy.max_repairs + 1):
            response = self._call(attempt)
            problems = self.problems(attempt, response)
            if not problems:
                return response
            if repair == self._shared.policy.max_repairs:
                self._shared.ledger.record_failure(self.stage, self.model_id)
                raise StructuredOutputError(
                    f"{self.model_id} gave an invalid answer {repair + 1} time(s) for {request.describe()}: "
                    + "; ".join(problems)
                )
            logger.info("repairing an invalid answer (%s)", "; ".join(problems))
            self._shared.ledger.record_repair(self.stage, self.model_id)
            attempt = attempt.model_copy(
                update={
                    "messages": [
                        *attempt.messages,
                        ChatMessage.assistant(_as_text(response)),
                        ChatMessage.user(_feedback(problems, attempt)),
                    ]
                }
            )
        raise AssertionError("unreachable")

    def complete_json(
        self, messages: list[ChatMessage], schema: JSONObject, *, name: str = "response", **sampling: object
    ) -> JSONValue:
        """A JSON value matching `schema` (structured output)."""
        request = ChatRequest.model_validate(
            {"messages": messages, "response_format": ResponseFormat(name=name, json_schema=schema), **sampling}
        )
        return self.chat(request).parsed()

    def call_tool(
        self, messages: list[ChatMessage], tools: list[FunctionTool], *, name: str | None = None, **sampling: object
    ) -> ToolCall:
        """One call of the named tool, or of any of `tools` (the caller decided a call is due)."""
        choice = NamedToolChoice(name=name) if name is not None else "required"
        request = ChatRequest.model_validate({"messages": messages, "tools": tools, "tool_choice": choice, **sampling})
        return self.chat(request).tool_calls[0]

    # -- validation ----------------------------------------------------------------------------------

    def problems(self, request: ChatRequest, response: ChatResponse) -> list[str]:
        """What is wrong with `response` as an answer to `request` (empty when nothing is)."""
        found: list[str] = []
        if request.response_format is not None:
            try:
                value = parse_json(response.content)
            except ValueError as exc:
                cut = " (the answer was cut off by max_tokens)" if response.finish_reason == "length" else ""
                return [f"the answer is not valid JSON: {exc}{cut}"]
            found.extend(self._shared.validators.get(request.response_format.json_schema).problems(value))
        offered = {tool.name: tool for tool in request.offered_tools()}
        if request.forces_tool_call() and not response.tool_calls:
            found.append(f"no tool call was made; call one of: {', '.join(offered)}")
        if self._shared.policy.validate_tool_calls:
            for call in response.tool_calls:
                tool = offered.get(call.tool)
                if tool is None:
                    found.append(f"{call.tool!r} is not one of the offered tools ({', '.join(offered) or 'none'})")
                elif call.raw_arguments is not None:
                    found.append(f"the arguments of {call.tool} are not a JSON object: {call.raw_arguments[:200]!r}")
                else:
                    problems = self._shared.validators.get(tool.parameters).problems(call.arguments)
                    found.extend(f"{call.tool}: {p}" for p in problems)
        return found

    # -- one call: cache, concurrency, retries, accounting ------------------------------------------

    def _call(self, request: ChatRequest) -> ChatResponse:
        shared = self._shared
        model = shared.provider.model_id
        key = request_key(model, request)
        if shared.cache is not None:
            hit = shared.cache.get_model(CACHE_NAMESPACE, key, ChatResponse)
            if hit is not None:
                shared.ledger.record_call(self.stage, model, hit.usage, 0.0, cached=True)
                if shared.recorder is not None:
                    shared.recorder.record(model, request, hit)
                return hit
        with shared.semaphore:
            response, latency = self._with_retries(request, model)
        # A cache hit and a cassette replay come back from canonical JSON (sorted keys); a live answer keeps
        # the model's key order. Tool-call arguments flow into environments that echo their order into tool
        # outputs and so into the next prompt, so a live run and its replay would ask different questions.
        # Round-tripping the live message makes all three byte-identical (the usage stays as measured: its
        # reuse figures are not serialised).
        message = ChatMessage.model_validate_json(response.message.to_json_bytes())
        response = response.model_copy(update={"message": message})
        if shared.cache is not None:
            shared.cache.put_model(CACHE_NAMESPACE, key, response)
        if shared.recorder is not None:
            shared.recorder.record(model, request, response)
        shared.ledger.record_call(self.stage, model, response.usage, latency, cached=False)
        return response

    def _with_retries(self, request: ChatRequest, model: str) -> tuple[ChatResponse, float]:
        shared = self._shared
        retry = shared.policy.retry
        for attempt in range(1, retry.max_attempts + 1):
            started = time.perf_counter()
            try:
                response = shared.provider.chat(request)
            except TransientProviderError as exc:
                if attempt >= retry.max_attempts:
                    shared.ledger.record_failure(self.stage, model)
                    raise type(exc)(f"{exc} (gave up after {attempt} attempt(s))") from exc
                with shared.rng_lock:
                    delay = retry.delay(attempt, shared.rng)
                logger.warning("%s: %s; retrying in %.2fs", model, exc, delay)
                shared.ledger.record_retry(self.stage, model)
                shared.sleep(delay)
                continue
            except ProviderError:
                shared.ledger.record_failure(self.stage, model)
                raise
            return response, time.perf_counter() - started
        raise AssertionError("unreachable")
