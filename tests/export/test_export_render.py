"""Rendering through real chat templates: the Qwen2.5 GGUF's own tools template and SmolLM2's tokenizer
with the shipped tools-aware ChatML template. Every tool call must survive rendering and every sample
must fit the stated maximum of 8,192 tokens (the export's default `max_tokens`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.export.conftest import stage_config

from envfactory.cli._export_stage import (
    ExportDeps,
    HFTemplateRenderer,
    default_renderers,
    gguf_tokenizer,
    local_model_file,
    run_export,
)
from envfactory.errors import EnvFactoryError
from envfactory.export import check_row, rendered_calls, smollm2_tools_template, template_messages
from envfactory.spec.dataset import ExportManifest, SFTMessage
from envfactory.store import Workspace

pytest.importorskip("transformers", reason="rendering needs transformers: pip install -e '.[llm]'")
pytest.importorskip("gguf", reason="reading GGUF tokenizers needs gguf: pip install -e '.[llm]'")

MAX_TOKENS = 8192


@pytest.fixture(scope="module")
def renderers() -> dict[str, Any]:
    try:
        found = default_renderers(["qwen", "smollm2"])
    except EnvFactoryError as exc:
        pytest.skip(f"bundled models not installed: {exc}")
    return {r.name: r for r in found}


@pytest.fixture(scope="module")
def rendered(renderers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportManifest]:
    workspace = Workspace(tmp_path_factory.mktemp("rendered"))
    run_export(stage_config(max_tokens=MAX_TOKENS), workspace, ExportDeps(renderers=list(renderers.values())))
    root = workspace.runs_dir / "fixture-run/export"
    return root, ExportManifest.model_validate_json((root / "export-manifest.json").read_bytes())


def _sft_samples(root: Path) -> list[tuple[list[SFTMessage], list[Any]]]:
    samples = []
    for path in sorted(root.glob("openai/*[!x].jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            samples.append(([SFTMessage.model_validate(m) for m in record["messages"]], record["tools"]))
    return samples


def test_every_sample_renders_through_both_templates_with_every_call(rendered: tuple[Path, ExportManifest],
                                                                     renderers: dict[str, Any]) -> None:
    root, manifest = rendered
    assert not [d for d in manifest.drops if d.stage == "render"]
    samples = _sft_samples(root)
    calls = 0
    for messages, tools in samples:
        for renderer in renderers.values():
            check = check_row(messages, tools, renderer, MAX_TOKENS)
            assert check.problem is None, check.detail
            assert 0 < check.tokens <= MAX_TOKENS
        calls += sum(len(m.tool_calls or []) for m in messages)
    assert calls >= 8
    for name in ("qwen", "smollm2"):
        stats = manifest.renderers[name]
        assert stats["samples"] == manifest.counts["sft_rows"] + manifest.counts["rl_rows"]
        assert 0 < stats["longest"] <= MAX_TOKENS  # type: ignore[operator]


def test_smollm2_own_template_loses_the_calls_that_the_shipped_one_keeps(rendered: tuple[Path, ExportManifest]) -> None:
    own = HFTemplateRenderer("smollm2-own", gguf_tokenizer(local_model_file("smollm2-135m")))
    messages, tools = next(s for s in _sft_samples(rendered[0]) if any(m.tool_calls for m in s[0]))
    assert check_row(messages, tools, own, MAX_TOKENS).problem == "template_dropped_tool_call"
    shipped = HFTemplateRenderer("smollm2", own._tokenizer, smollm2_tools_template())
    text = shipped.render(template_messages(messages), tools)
    calls = sum(len(m.tool_calls or []) for m in messages)
    assert "<tools>" in text and text.count("<tool_call>") == calls + 1  # one is the format example
    assert [n for n, _ in rendered_calls(text) if n] == [c.function.name for m in messages for c in m.tool_calls or []]
    assert "<|im_start|>tool" in text


def test_arguments_must_be_objects_for_the_qwen_template(renderers: dict[str, Any], rendered: tuple[Path, ExportManifest]) -> None:
    messages, tools = next(s for s in _sft_samples(rendered[0]) if any(m.tool_calls for m in s[0]))
    as_text = [m.model_dump(mode="json", exclude_none=True) for m in messages]  # arguments left as JSON text
    quoted = [args for name, args in rendered_calls(renderers["qwen"].render(as_text, tools)) if name]
    assert quoted and all("__quoted__" in args for args in quoted)  # type: ignore[operator]
    assert check_row(messages, tools, _Quoting(renderers["qwen"]), MAX_TOKENS).problem == "template_dropped_tool_call"
    proper = [args for name, args in rendered_calls(renderers["qwen"].render(template_messages(messages), tools)) if name]
    assert proper and all("__quoted__" not in args for args in proper)  # type: ignore[operator]


class _Quoting:
    """A renderer fed the arguments as JSON text, as a naive caller would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = "quoting"

    def render(self, messages: list[Any], tools: list[Any]) -> str:
        for message in messages:
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
        return str(self.inner.render(messages, tools))

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))


def test_samples_longer_than_the_maximum_are_dropped_and_counted(renderers: dict[str, Any], tmp_path: Path) -> None:
    run_export(stage_config(max_tokens=700), Workspace(tmp_path), ExportDeps(renderers=[renderers["qwen"]]))
    manifest = ExportManifest.model_validate_json((tmp_path / "runs/fixture-run/export/export-manifest.json").read_bytes())
    too_long = [d for d in manifest.drops if d.reason == "too_long"]
    assert too_long and all("> 700" in d.detail for d in too_long)
    assert manifest.counts["sft_rows"] + manifest.counts["rl_rows"] + len(too_long) == 15
