"""Exact prefix reuse in the local provider (`llm.prefix_cache`).

- The cache itself (pure): a byte-bounded LRU; damaged entries are dropped, never returned.
- SmolLM2-135M, the real model: the same requests give byte-identical responses — text, generated token
  ids, finish reasons, usage — with the cache off, on, and cold after evictions, for free text,
  grammar-constrained JSON, forced and free tool calls, greedy and sampled; bad input (a damaged or
  truncated entry, a model file changed under the cache, a prompt longer than the context, a cache
  too small for any state) gives a cold evaluation or a clear error, never another answer.
- `test_recorded_agent_requests_are_identical_in_all_three_modes` replays 51 agent-loop requests
  recorded from the bundled 0.5B model (`fixtures/agent_requests.jsonl.gz`, requests only: entries
  27–34, 51–78, 135–144 and 157–161 of the README baseline's cassette as recorded on 2026-11-25 with the
  old prompt shape (`tests/eval/fixtures/baseline-qwen0.5b-seed0.jsonl.gz` before issue 16's shape), i.e. the start of one BFCL multi-turn episode,
  two whole ones, and two τ² airline episodes with their user-simulator requests) through SmolLM2 in
  the three modes.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    LocalConfig,
    LocalProvider,
    ManagedClient,
    NamedToolChoice,
    ResponseFormat,
    UsageLedger,
)
from envfactory.llm.prefix_cache import KVStateCache, boundary_keys

SMOL = "smollm2-135m"
FIXTURES = Path(__file__).parent / "fixtures"
REPLAY_MAX_TOKENS = 24  # answers are cut short in the replay: the prompt evaluation is what differs by mode
WEATHER = FunctionTool(
    name="get_weather", description="Get the current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                "additionalProperties": False},
)
EMAIL = FunctionTool(
    name="send_email", description="Send an email to one recipient.",
    parameters={"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                "required": ["to", "body"], "additionalProperties": False},
)
TICKET = {"type": "object", "properties": {"title": {"type": "string"}, "priority": {"enum": ["low", "high"]}},
          "required": ["title", "priority"], "additionalProperties": False}


# -- the cache alone ---------------------------------------------------------------------------------------


def test_the_cache_is_a_byte_bounded_lru() -> None:
    cache = KVStateCache(max_bytes=100)
    cache.put("a", 1, b"x" * 40)
    cache.put("b", 2, b"y" * 40)
    assert cache.get("a", 1) == b"x" * 40  # "a" is now the most recently used
    cache.put("c", 3, b"z" * 40)  # 120 bytes would not fit: the least recently used ("b") goes
    assert "b" not in cache and cache.get("a", 1) is not None and cache.get("c", 3) is not None
    assert cache.size_bytes == 80 <= cache.max_bytes and cache.stats.evicted == 1
    cache.put("huge", 4, b"h" * 101)  # larger than the whole cache: not stored, nothing evicted
    assert "huge" not in cache and len(cache) == 2
    with pytest.raises(ValueError):
        KVStateCache(max_bytes=-1)


def test_a_damaged_entry_is_dropped_not_returned() -> None:
    cache = KVStateCache(max_bytes=1000)
    cache.put("a", 5, b"state-bytes")
    entry = cache._entries["a"]
    cache._entries["a"] = type(entry)(data=b"state-bytez", n_tokens=entry.n_tokens, crc32=entry.crc32)  # flipped
    assert cache.get("a", 5) is None and "a" not in cache and cache.stats.rejected == 1
    cache.put("b", 5, b"more")
    assert cache.get("b", 6) is None  # asked as a prefix of another length: not trusted either
    assert cache.size_bytes == 0


def test_boundary_keys_hash_the_whole_prefix_and_the_fingerprint() -> None:
    tokens = list(range(10))
    keys = boundary_keys("model-a", tokens, 4)
    assert [position for position, _ in keys] == [4, 8]
    assert boundary_keys("model-a", tokens[:8], 4) == keys  # a longer prompt shares the boundaries
    assert boundary_keys("model-a", [99, *tokens[1:]], 4)[1][1] != keys[1][1]  # every earlier token counts
    assert boundary_keys("model-b", tokens, 4)[0][1] != keys[0][1]


def test_states_are_kept_at_the_prompt_end_and_at_doubling_boundaries() -> None:
    """Not every boundary: the last four (a conversation's next request repeats all but the end) and
    1, 2, 4, 8, ... blocks, so a cold prompt stores O(log n) states instead of O(n)."""
    from envfactory.llm.prefix_cache import _kept_boundaries

    positions = [64 * i for i in range(1, 48)]
    assert sorted(_kept_boundaries(positions, 64)) == [64, 128, 256, 512, 1024, 2048, 2816, 2880, 2944, 3008]
    assert _kept_boundaries([64, 128], 64) == {64, 128} and _kept_boundaries([], 64) == set()


# -- the real model ----------------------------------------------------------------------------------------


def _provider(models_dir: Path, cache_bytes: int, n_ctx: int = 4096) -> LocalProvider:
    provider = LocalProvider(LocalConfig(model=SMOL, models_dir=models_dir, n_ctx=n_ctx, n_batch=64,
                                         prefix_cache_bytes=cache_bytes))
    provider.load()
    return provider


@pytest.fixture(scope="module")
def modes(models_dir: Path) -> Iterator[dict[str, LocalProvider]]:
    """SmolLM2 three times: without the cache, with a large one, and with one that holds a few short
    states (6 MiB: about 270 tokens of SmolLM2; most states are evicted before they could be reused,
    longer ones are never stored)."""
    providers = {"off": _provider(models_dir, 0), "on": _provider(models_dir, 1 << 30),
                 "evicting": _provider(models_dir, 6 << 20)}
    yield providers
    for provider in providers.values():
        provider.close()


def _answer(provider: LocalProvider, request: ChatRequest) -> tuple[bytes, tuple[int, ...]]:
    try:
        response = provider.chat(request)
    except ProviderError as exc:  # the same error in every mode is the same answer
        return f"error: {exc}".encode(), ()
    return response.to_json_bytes(), provider.last_token_ids


def _conversation() -> list[ChatRequest]:
    """A conversation growing request by request (like an agent loop), every kind of answer, greedy and
    sampled, with a long shared system text so several blocks are reused."""
    system = ChatMessage.system("You are a helpful assistant for a travel company. " * 40)
    turns = [ChatMessage.user("I need the weather in Berlin and then an email to my boss about it.")]
    requests: list[ChatRequest] = []
    for step in range(3):
        note = ChatMessage.user(f"Step {step}: decide what to do next.")
        requests += [
            ChatRequest(messages=[system, *turns, note], max_tokens=20, seed=step),
            ChatRequest(messages=[system, *turns, note], max_tokens=20, temperature=0.9, seed=step),
            ChatRequest(messages=[system, *turns, note], response_format=ResponseFormat(name="ticket", json_schema=TICKET),
                        max_tokens=40, temperature=0.7, seed=step),
            ChatRequest(messages=[system, *turns, note], tools=[WEATHER, EMAIL],
                        tool_choice=NamedToolChoice(name="get_weather"), max_tokens=32, seed=step),
            ChatRequest(messages=[system, *turns, note], tools=[WEATHER, EMAIL], tool_choice="required",
                        max_tokens=40, temperature=1.0, seed=step),
            ChatRequest(messages=[system, *turns, note], tools=[WEATHER, EMAIL], max_tokens=40, seed=step),
        ]
        turns.append(ChatMessage.assistant(f"Working on step {step}."))
        turns.append(ChatMessage.user(f"Fine, go on with step {step + 1}; Berlin, then my boss."))
    return requests


def test_answers_are_identical_with_the_cache_on_off_and_cold_after_eviction(modes: dict[str, LocalProvider]) -> None:
    requests = _conversation()
    answers = {name: [_answer(provider, r) for r in requests] for name, provider in modes.items()}
    assert answers["on"] == answers["off"]
    assert answers["evicting"] == answers["off"]
    reasons = {ChatResponse.model_validate_json(body).finish_reason for body, _ in answers["off"]}
    assert {"tool_calls", "stop"} <= reasons or {"tool_calls", "length"} <= reasons
    on = modes["on"].kv_cache
    evicting = modes["evicting"].kv_cache
    assert on is not None and on.stats.hits >= len(requests) - 2  # the cache was really used
    assert evicting is not None and evicting.stats.evicted > 0 and evicting.size_bytes <= evicting.max_bytes
    # the same request again, now from a warm cache, and after the cache was emptied
    again = [_answer(modes["on"], r) for r in requests[:6]]
    on.clear()
    cold = [_answer(modes["on"], r) for r in requests[:6]]
    assert again == cold == answers["off"][:6]


def test_usage_counts_reused_and_evaluated_prompt_tokens(modes: dict[str, LocalProvider]) -> None:
    provider = modes["on"]
    requests = _conversation()
    ledger = UsageLedger()
    client = ManagedClient(provider, ledger=ledger)
    first = client.chat(requests[0]).usage
    second = client.chat(requests[1]).usage  # the same prompt, sampled: every full block is reused
    assert second.reused_tokens >= second.prompt_tokens - 64
    assert second.reused_tokens + (second.evaluated_tokens or 0) == second.prompt_tokens == first.prompt_tokens
    assert second.reused_tokens % 64 == 0 and second.evaluated_tokens
    assert first == second.model_copy(update={"completion_tokens": first.completion_tokens})  # not serialised
    total = ledger.report().total()
    assert total.prompt_tokens == first.prompt_tokens + second.prompt_tokens
    assert total.reused_tokens + total.evaluated_tokens == total.prompt_tokens
    assert b"reused" not in client.chat(requests[1]).to_json_bytes()


def test_a_closing_system_note_keeps_a_state_where_it_begins(modes: dict[str, LocalProvider]) -> None:
    """The agent loop's shape: [system, conversation, closing system note]. The next request changes only
    the note, and the note (with its schema) is longer than the four blocks kept at a prompt's end, so only
    the state kept where the note begins lets the next request reuse the whole conversation."""
    provider = modes["on"]
    assert provider.kv_cache is not None
    provider.kv_cache.clear()
    system = ChatMessage.system("You are a helpful assistant for a travel company. " * 40)
    user = ChatMessage.user("I need the weather in Berlin and then an email to my boss about it.")
    long_note = "Decide carefully what to do next, and say why in the message field. " * 25
    first = ChatRequest(messages=[system, user, ChatMessage.system(long_note)], max_tokens=8,
                        response_format=ResponseFormat(name="ticket", json_schema=TICKET))
    second = ChatRequest(messages=[system, user, ChatMessage.system("Call get_weather now.")], max_tokens=8,
                         tools=[WEATHER], tool_choice=NamedToolChoice(name="get_weather"))
    llama = provider._llama
    prompts = [llama.tokenize(provider.prompt(r).encode(), add_bos=False, special=True) for r in (first, second)]
    shared = next(i for i, (a, b) in enumerate(zip(*prompts, strict=False)) if a != b)
    assert len(prompts[0]) - shared > 4 * 64 and shared // 64 * 64 not in (64, 128, 256, 512)  # only the note keep
    provider.chat(first)
    usage = provider.chat(second).usage
    assert usage.reused_tokens == shared // 64 * 64
    assert _answer(provider, second) == _answer(modes["off"], second)


def test_damaged_entries_fall_back_to_a_cold_evaluation(modes: dict[str, LocalProvider]) -> None:
    provider = modes["on"]
    cache = provider.kv_cache
    assert cache is not None
    request = _conversation()[2]
    expected = _answer(modes["off"], request)
    cache.clear()
    assert _answer(provider, request) == expected
    keys = list(cache._entries)
    # a truncated state with a matching checksum: llama.cpp refuses it, the prompt is evaluated cold
    import zlib

    for key in keys:
        entry = cache._entries[key]
        data = entry.data[: len(entry.data) // 2]
        cache._entries[key] = type(entry)(data=data, n_tokens=entry.n_tokens, crc32=zlib.crc32(data))
    rejected = cache.stats.rejected
    assert _answer(provider, request) == expected
    assert cache.stats.rejected > rejected
    # flipped bytes: the checksum no longer matches; dropped before llama.cpp sees them
    for key in list(cache._entries):
        entry = cache._entries[key]
        flipped = bytes([entry.data[0] ^ 0xFF]) + entry.data[1:]
        cache._entries[key] = type(entry)(data=flipped, n_tokens=entry.n_tokens, crc32=entry.crc32)
    assert _answer(provider, request) == expected


def test_a_model_file_changed_under_the_cache_is_reloaded_and_verified(models_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A model file rewritten after loading: the cache is dropped and the file loaded again with its hash
    checked. An identical file gives the same answers; changed weights are refused with a clear error.
    (The provider loads a private copy here, so the test can change it.)"""
    import envfactory.llm.local as local_module
    from envfactory.llm import LOCAL_MODELS, ModelIntegrityError
    from envfactory.llm.models import file_sha256, model_path

    copy = tmp_path / "model.gguf"
    shutil.copyfile(model_path(LOCAL_MODELS[SMOL], models_dir), copy)
    verified: list[bool] = []

    def private_copy(model: object, directory: Path, *, verify: bool = False) -> Path:
        verified.append(verify)
        if verify and file_sha256(copy) != LOCAL_MODELS[SMOL].sha256:
            raise ModelIntegrityError(f"{copy} does not match its sha256")
        return copy

    monkeypatch.setattr(local_module, "model_path", private_copy)
    provider = _provider(models_dir, 1 << 30)
    request = _conversation()[3]
    try:
        expected = _answer(provider, request)
        assert provider.kv_cache is not None and provider.kv_cache.stats.stored > 0
        stored = provider.kv_cache.stats.stored
        os.utime(copy, ns=(1, 1))  # rewritten with the same bytes
        assert _answer(provider, request) == expected
        assert verified == [False, True] and provider.kv_cache.stats.stored > stored  # cache dropped, refilled
        with copy.open("r+b") as handle:  # other weights, in place
            handle.seek(-64, os.SEEK_END)
            handle.write(b"\x00" * 64)
        with pytest.raises(ModelIntegrityError):
            provider.chat(request)
        assert len(provider.kv_cache) == 0 and not provider.loaded
    finally:
        provider.close()


def test_a_prompt_longer_than_the_context_is_a_clear_error_in_every_mode(models_dir: Path) -> None:
    long = ChatRequest(messages=[ChatMessage.user("word " * 400)], max_tokens=8)
    for cache_bytes in (0, 1 << 30):
        provider = _provider(models_dir, cache_bytes, n_ctx=256)
        try:
            with pytest.raises(ProviderError, match=r"context window"):
                provider.chat(long)
        finally:
            provider.close()


def _recorded_requests() -> list[ChatRequest]:
    lines = gzip.decompress((FIXTURES / "agent_requests.jsonl.gz").read_bytes()).splitlines()
    requests = [ChatRequest.model_validate_json(line) for line in lines if line.strip()]
    return [r.model_copy(update={"max_tokens": min(r.max_tokens, REPLAY_MAX_TOKENS)}) for r in requests]


def test_recorded_agent_requests_are_identical_in_all_three_modes(modes: dict[str, LocalProvider]) -> None:
    requests = _recorded_requests()
    assert len(requests) >= 50
    for provider in modes.values():
        assert provider.kv_cache is None or provider.kv_cache.clear() is None
    answers = {name: [_answer(provider, r) for r in requests] for name, provider in modes.items()}
    for index, request in enumerate(requests):
        assert answers["on"][index] == answers["off"][index], request.describe()
        assert answers["evicting"][index] == answers["off"][index], request.describe()
    on = modes["on"].kv_cache
    assert on is not None and on.stats.hits > len(requests) // 2  # the recorded requests do share prefixes
