"""ManagedClient over a scripted provider: retries and backoff, concurrency limit, schema repair,
usage accounting, cache and recording. The model's answers here are SCRIPTED (`ScriptedClient`), so
each failure path (transient errors, invalid first answers) happens on purpose and exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ClientPolicy,
    EndpointUnreachableError,
    FunctionTool,
    ManagedClient,
    ModelPrice,
    NamedToolChoice,
    PriceTable,
    ReplayClient,
    ResponseFormat,
    RetryPolicy,
    ScriptedClient,
    StructuredOutputError,
    TransientProviderError,
    UsageLedger,
    text_response,
)
from envfactory.llm.replay import CassetteWriter
from envfactory.llm.types import Usage
from envfactory.spec import ToolCall
from envfactory.store import KVStore

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = FunctionTool(
    name="get_weather", description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def person_request() -> ChatRequest:
    return ChatRequest(messages=[ChatMessage.user("A person, please.")],
                       response_format=ResponseFormat(name="person", json_schema=PERSON))


def call_response(arguments: dict[str, object]) -> ChatResponse:
    call = ToolCall(id="call_1", tool="get_weather", arguments=arguments)  # type: ignore[arg-type]
    return ChatResponse(model="scripted", message=ChatMessage.assistant("", [call]), finish_reason="tool_calls")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    """Scripted: two transient failures, then an answer."""
    script = ScriptedClient([TransientProviderError("503"), TransientProviderError("503"), "fine"])
    sleeps = Sleeps()
    client = ManagedClient(script, sleep=sleeps, policy=ClientPolicy(retry=RetryPolicy(backoff_s=0.5, jitter=0.25)))
    assert client.chat(ChatRequest(messages=[ChatMessage.user("x")])).content == "fine"
    assert len(sleeps.delays) == 2
    assert 0.5 <= sleeps.delays[0] <= 0.625 and 1.0 <= sleeps.delays[1] <= 1.25
    assert client.usage().total().retries == 2


def test_retries_give_up_and_permanent_errors_are_not_retried() -> None:
    """Scripted: an endpoint that never answers, then a permanent refusal."""
    unreachable = EndpointUnreachableError("cannot reach http://127.0.0.1:9/v1")
    sleeps = Sleeps()
    client = ManagedClient(ScriptedClient([unreachable] * 3), sleep=sleeps,
                           policy=ClientPolicy(retry=RetryPolicy(max_attempts=3)))
    with pytest.raises(EndpointUnreachableError, match=r"127\.0\.0\.1:9.*gave up after 3 attempt"):
        client.chat(ChatRequest(messages=[ChatMessage.user("x")]))
    assert len(sleeps.delays) == 2
    refused = ScriptedClient([ProviderError("400: bad request")])
    with pytest.raises(ProviderError, match="400"):
        ManagedClient(refused, sleep=sleeps).chat(ChatRequest(messages=[ChatMessage.user("x")]))
    assert refused.remaining == 0 and len(sleeps.delays) == 2


def test_structured_output_is_repaired_with_the_validation_error() -> None:
    """Scripted: the first answer breaks the schema (age is a string), the second is valid."""
    script = ScriptedClient(['{"name": "Ada", "age": "old"}', '{"name": "Ada", "age": 36}'])
    client = ManagedClient(script)
    response = client.chat(person_request())
    assert response.parsed() == {"name": "Ada", "age": 36}
    retry = script.requests[1]
    assert [m.role for m in retry.messages] == ["user", "assistant", "user"]
    assert retry.messages[1].content == '{"name": "Ada", "age": "old"}'
    assert '"old" is not of type "integer" at /age' in retry.messages[2].content
    assert client.usage().total().repairs == 1


def test_non_json_and_exhausted_repairs_fail_loudly() -> None:
    """Scripted: three answers that are never valid; at most two repairs are allowed."""
    script = ScriptedClient(["not json at all", '{"name": 1}', '{"name": "x"}'])
    client = ManagedClient(script, policy=ClientPolicy(max_repairs=2))
    with pytest.raises(StructuredOutputError, match="invalid answer 3 time") as caught:
        client.chat(person_request())
    assert "'age' is a required property" in str(caught.value) or '"age" is a required property' in str(caught.value)
    assert "not valid JSON" in script.requests[1].messages[-1].content
    assert client.usage().total().failures == 1


def test_tool_calls_are_validated_and_repaired() -> None:
    """Scripted: a forced call first comes without a call, then with a wrong argument type, then right."""
    script = ScriptedClient(["I think it is sunny.", call_response({"city": 42}), call_response({"city": "Oslo"})])
    client = ManagedClient(script)
    request = ChatRequest(messages=[ChatMessage.user("Weather in Oslo?")], tools=[WEATHER],
                          tool_choice=NamedToolChoice(name="get_weather"))
    response = client.chat(request)
    assert response.tool_calls[0].arguments == {"city": "Oslo"}
    assert "no tool call was made" in script.requests[1].messages[-1].content
    assert "get_weather: 42 is not of type" in script.requests[2].messages[-1].content
    helper = ManagedClient(ScriptedClient([call_response({"city": "Rome"})]))
    assert helper.call_tool([ChatMessage.user("Rome?")], [WEATHER], name="get_weather").arguments == {"city": "Rome"}


def test_concurrency_is_limited() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(request: ChatRequest) -> ChatResponse:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return text_response("ok")

    client = ManagedClient(ScriptedClient([slow] * 8), policy=ClientPolicy(max_concurrency=2))
    threads = [
        threading.Thread(target=client.chat, args=(ChatRequest(messages=[ChatMessage.user(f"q{i}")]),))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2


def test_usage_is_accounted_per_stage_with_prices(tmp_path: Path) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=200)
    script = ScriptedClient([text_response("a", usage=usage), text_response("b", usage=usage)], model_id="openai/x@u")
    prices = PriceTable(prices={"openai/x@": ModelPrice(prompt_per_mtok=1.0, completion_per_mtok=10.0)})
    ledger = UsageLedger(prices)
    with KVStore(tmp_path / "c.sqlite") as cache:
        client = ManagedClient(script, cache=cache, ledger=ledger)
        client.for_stage("propose").chat(ChatRequest(messages=[ChatMessage.user("1")]))
        client.for_stage("verify").chat(ChatRequest(messages=[ChatMessage.user("2")]))
        client.for_stage("verify").chat(ChatRequest(messages=[ChatMessage.user("2")]))  # cache hit
    report = ledger.report()
    verify = report.stage("verify")
    assert (verify.calls, verify.cached_calls, verify.prompt_tokens, verify.completion_tokens) == (2, 1, 1000, 200)
    assert verify.cost == pytest.approx(0.003)
    assert report.total().cost == pytest.approx(0.006)
    assert report.stage("propose").calls == 1
    assert UsageLedger().report().total().cost is None  # not priced is not free


def test_a_recorded_run_replays_without_the_provider(tmp_path: Path) -> None:
    """Scripted answers recorded through the client (cache hits included) replay exactly."""
    cassette = tmp_path / "run.jsonl"
    with KVStore(tmp_path / "c.sqlite") as cache:
        live = ManagedClient(ScriptedClient(['{"name": "Ada", "age": "x"}', '{"name": "Ada", "age": 3}'],
                                            model_id="m1"), cache=cache, recorder=CassetteWriter(cassette))
        first = live.chat(person_request())
    replayed = ManagedClient(ReplayClient(cassette)).chat(person_request())
    assert replayed == first
    assert ReplayClient(cassette).model_id == "m1"
