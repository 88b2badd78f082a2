"""`envfactory llm info|chat` (serve is exercised over HTTP in tests/llm/test_llm_openai.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def test_info_reports_the_configured_model_and_files(tmp_path: Path) -> None:
    result = invoke("llm", "info", "--models-dir", str(tmp_path / "models"), "-w", str(tmp_path / "ws"), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["configured"]["provider"] == "local" and info["configured"]["model"] == "qwen2.5-coder-0.5b"
    assert info["configured"]["ready"] is True
    rows = {row["key"]: row for row in info["local_models"]}
    assert set(rows) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"}
    assert rows["qwen2.5-coder-0.5b"]["installed"] is True
    assert rows["smollm2-135m"]["present"] is True
    assert info["embedder"]["model_dir"] is not None
    assert info["libraries"]["llama-cpp-python"] == "0.3.36"
    human = invoke("llm", "info", "--models-dir", str(tmp_path / "models"), "-w", str(tmp_path / "ws"))
    assert "qwen2.5-coder-0.5b (default)" in human.output and "ready" in human.output


def test_info_exits_1_when_the_provider_cannot_be_used(tmp_path: Path) -> None:
    result = invoke("llm", "info", "--provider", "replay", "--cassette", str(tmp_path / "none.jsonl"),
                    "-w", str(tmp_path))
    assert result.exit_code == 1 and "does not exist" in result.output
    result = invoke("llm", "info", env={"ENVFACTORY_LLM_PROVIDER": "openai"})
    assert result.exit_code == 1 and "needs --base-url" in result.output
    result = invoke("llm", "info", "--model", "gpt-17")
    assert result.exit_code == 1 and "unknown local model 'gpt-17'" in result.output


@pytest.mark.slow
def test_chat_uses_the_workspace_cache(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"fruit": {"type": "string", "maxLength": 20}},
                                  "required": ["fruit"]}))
    args = ["llm", "chat", "Name a fruit.", "--model", "smollm2-135m", "--schema", str(schema),
            "--max-tokens", "32", "-w", str(tmp_path / "ws"), "--models-dir", str(tmp_path / "models"), "--json"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    live = json.loads(first.output)
    assert "fruit" in json.loads(live["response"]["message"]["content"])
    assert live["usage"]["cached_calls"] == 0 and live["usage"]["completion_tokens"] > 0
    second = json.loads(invoke(*args).output)
    assert second["response"] == live["response"]
    assert second["usage"]["cached_calls"] == 1 and second["usage"]["completion_tokens"] == 0
    assert (tmp_path / "ws" / "llm-cache.sqlite").is_file()


def test_chat_records_and_replays_a_cassette(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    common = ["--max-tokens", "8", "-w", str(tmp_path / "ws"), "--models-dir", str(tmp_path / "models"), "--json"]
    recorded = invoke("llm", "chat", "Hi", "--model", "smollm2-135m", "--cassette", str(cassette), "--no-cache", *common)
    assert recorded.exit_code == 0, recorded.output
    replayed = invoke("llm", "chat", "Hi", "--provider", "replay", "--cassette", str(cassette), *common)
    assert json.loads(replayed.output)["response"] == json.loads(recorded.output)["response"]
    miss = invoke("llm", "chat", "Bye", "--provider", "replay", "--cassette", str(cassette), *common)
    assert miss.exit_code == 1 and "replay miss" in miss.output and "Traceback" not in miss.output
