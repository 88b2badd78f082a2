"""Cassettes: a real SmolLM2 session recorded and replayed exactly; a miss fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    LocalProvider,
    ManagedClient,
    RecordingClient,
    ReplayClient,
    ReplayMissError,
    ResponseFormat,
    read_cassette,
)
from envfactory.llm.replay import CassetteWriter

SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


def requests() -> list[ChatRequest]:
    return [
        ChatRequest(messages=[ChatMessage.user("What is 2 + 3? Reply in JSON.")],
                    response_format=ResponseFormat(json_schema=SCHEMA), max_tokens=24),
        ChatRequest(messages=[ChatMessage.user("Name a fruit.")], max_tokens=12, seed=3, temperature=0.8),
    ]


def test_replay_returns_exactly_what_was_recorded(smol: LocalProvider, tmp_path: Path) -> None:
    cassette = tmp_path / "session.jsonl"
    recorder = RecordingClient(smol, CassetteWriter(cassette))
    live = [recorder.chat(request) for request in requests()]
    recorder.chat(requests()[0])  # recorded once per key
    assert len(read_cassette(cassette)) == 2

    replay = ReplayClient(cassette)
    assert replay.model_id == smol.model_id and len(replay) == 2
    before = smol.calls
    replayed = [ManagedClient(replay).chat(request) for request in requests()]
    assert replayed == live
    assert [r.to_json_bytes() for r in replayed] == [r.to_json_bytes() for r in live]
    assert smol.calls == before


def test_a_miss_names_the_request_and_never_falls_back(smol: LocalProvider, tmp_path: Path) -> None:
    cassette = tmp_path / "session.jsonl"
    RecordingClient(smol, CassetteWriter(cassette)).chat(requests()[1])
    unrecorded = ChatRequest(messages=[ChatMessage.user("Name a vegetable.")], max_tokens=12)
    before = smol.calls
    with pytest.raises(ReplayMissError) as caught:
        ManagedClient(ReplayClient(cassette)).chat(unrecorded)
    message = str(caught.value)
    assert "replay miss" in message and str(cassette) in message
    assert "'Name a vegetable.'" in message and smol.model_id in message
    assert smol.calls == before
    changed_seed = requests()[1].model_copy(update={"seed": 4})
    with pytest.raises(ReplayMissError):
        ReplayClient(cassette).chat(changed_seed)


def test_damaged_cassettes(tmp_path: Path, smol: LocalProvider) -> None:
    cassette = tmp_path / "c.jsonl"
    with pytest.raises(ProviderError, match="does not exist"):
        ReplayClient(cassette)
    RecordingClient(smol, CassetteWriter(cassette)).chat(requests()[1])
    good = cassette.read_bytes()
    cassette.write_bytes(good + good[: len(good) // 2])  # a recording killed mid-line
    assert len(ReplayClient(cassette)) == 1
    cassette.write_bytes(good + b'{"not": "an entry"}\n')
    with pytest.raises(ProviderError, match=r"c\.jsonl:2: not a cassette entry"):
        ReplayClient(cassette)
