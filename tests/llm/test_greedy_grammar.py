"""Greedy grammar steps decided by a one-token check choose exactly the tokens of llama.cpp's full
sampler chain (`envfactory.llm.greedy_grammar`), with SmolLM2-135M (CI model, no cassette): grammar-
constrained requests recorded from the bundled 0.5B's agent loops (`fixtures/agent_requests.jsonl.gz`:
decisions under the response schema, forced tool calls) plus sampled and free-text requests, each
answered with the check off and on."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    FunctionTool,
    LocalConfig,
    LocalProvider,
    NamedToolChoice,
    ResponseFormat,
)

SMOL = "smollm2-135m"
FIXTURES = Path(__file__).parent / "fixtures"
MAX_TOKENS = 24  # enough for the decisions' and arguments' JSON to pass several grammar branches
TICKET = FunctionTool(
    name="open_ticket", description="Open a support ticket.",
    parameters={"type": "object", "properties": {"title": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
                "required": ["title", "priority"], "additionalProperties": False},
)


@dataclass
class _Answer:
    body: bytes
    token_ids: tuple[int, ...]
    checked_steps: int  # steps decided by the one-token check
    full_steps: int  # grammar steps that ran llama.cpp's full chain


@pytest.fixture(scope="module")
def provider(models_dir: Path) -> Iterator[LocalProvider]:
    """SmolLM2 with a prefix cache (exact: tests/llm/test_llm_prefix_cache.py), so a request answered
    twice has its prompt evaluated once; what differs between the two answers is only how each
    generated token is chosen."""
    made = LocalProvider(LocalConfig(model=SMOL, models_dir=models_dir, n_ctx=4096, n_batch=64))
    made.load()
    yield made
    made.close()


def _answer(provider: LocalProvider, request: ChatRequest, *, lazy: bool) -> _Answer:
    llama = provider._llama
    llama.lazy_grammar = lazy
    checked, full = llama.lazy_grammar_steps, llama.full_grammar_steps
    body = provider.chat(request).to_json_bytes()
    return _Answer(body, provider.last_token_ids, llama.lazy_grammar_steps - checked, llama.full_grammar_steps - full)


def _grammar_requests() -> list[ChatRequest]:
    lines = gzip.decompress((FIXTURES / "agent_requests.jsonl.gz").read_bytes()).splitlines()
    requests = [ChatRequest.model_validate_json(line) for line in lines if line.strip()]
    constrained = [r for r in requests if r.response_format is not None or r.forces_tool_call()]
    # The start of a BFCL episode: two decisions (the response schema) and four argument calls (forced
    # tools). The reference path costs up to a second of CPU a token with SmolLM2 on the decision schema
    # (docs/llm.md), so more would cost minutes of CI.
    decisions = [r for r in constrained if r.response_format is not None][:2]
    calls = [r for r in constrained if r.response_format is None][:4]
    return [r.model_copy(update={"max_tokens": min(r.max_tokens, MAX_TOKENS)}) for r in decisions + calls]


def test_recorded_grammar_requests_get_the_same_tokens_with_and_without_the_check(provider: LocalProvider) -> None:
    requests = _grammar_requests()
    assert len(requests) == 6
    checked = fallbacks = 0
    for request in requests:
        reference = _answer(provider, request, lazy=False)
        answer = _answer(provider, request, lazy=True)
        assert (answer.body, answer.token_ids) == (reference.body, reference.token_ids), request.describe()
        assert reference.checked_steps == 0
        checked += answer.checked_steps
        fallbacks += answer.full_steps
    # Both paths ran: most steps are decided by the check, and some fall back to the full chain because
    # the grammar rejected the model's favourite token.
    assert checked > fallbacks > 0  # 105 and 25 when written


def test_sampled_and_free_text_requests_keep_the_library_path(provider: LocalProvider) -> None:
    system = ChatMessage.system("You file support tickets.")
    user = ChatMessage.user("My printer is on fire, please open an urgent ticket.")
    requests = [
        ChatRequest(messages=[system, user], tools=[TICKET], tool_choice=NamedToolChoice(name="open_ticket"),
                    temperature=0.8, seed=3, max_tokens=40),
        ChatRequest(messages=[system, user], response_format=ResponseFormat(json_schema=TICKET.parameters),
                    temperature=0.6, seed=4, max_tokens=40),
        ChatRequest(messages=[system, user], max_tokens=24),
    ]
    for request in requests:
        reference, answer = _answer(provider, request, lazy=False), _answer(provider, request, lazy=True)
        assert (answer.body, answer.token_ids) == (reference.body, reference.token_ids), request.describe()
        assert answer.checked_steps == 0  # sampled or unconstrained: never the one-token check
    greedy = requests[0].model_copy(update={"temperature": 0.0})
    reference, answer = _answer(provider, greedy, lazy=False), _answer(provider, greedy, lazy=True)
    assert (answer.body, answer.token_ids) == (reference.body, reference.token_ids)
    assert answer.checked_steps > 0
