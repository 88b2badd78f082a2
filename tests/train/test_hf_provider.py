"""The `hf:DIR` provider: a transformers checkpoint answering chat requests, and `envfactory eval run
--llm hf:DIR` evaluating a checkpoint on our tasks (the tiny random model: the route, not the skill)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the train extra is not installed: pip install 'envfactory[train]'")

from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.errors import ProviderError
from envfactory.eval.report import EvalReport
from envfactory.llm import ChatMessage, ChatRequest, FunctionTool, LLMSettings, make_provider
from envfactory.llm.hf import HFConfig, HFProvider
from envfactory.llm.types import NamedToolChoice

TOOL = FunctionTool(name="tracker__get_task", description="Look up a task by id.",
                    parameters={"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]})


def test_requests_render_through_the_checkpoint_template_and_answers_are_seeded(tiny: Path) -> None:
    provider = make_provider(LLMSettings(provider="hf", hf=HFConfig(path=tiny)))
    assert isinstance(provider, HFProvider) and provider.model_id.startswith("hf/tiny@")
    request = ChatRequest(messages=[ChatMessage.system("Use tools."), ChatMessage.user("Show task tsk_0001.")],
                          tools=[TOOL], max_tokens=8, temperature=0.7, seed=3)
    prompt = provider.prompt(request)
    assert '"name": "tracker__get_task"' in prompt and "<tools>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    first, again = provider.chat(request), provider.chat(request)
    assert first == again  # same seed, same answer
    assert first.usage.completion_tokens <= 8 and first.usage.prompt_tokens > 20
    forced = request.model_copy(update={"tool_choice": NamedToolChoice(name="tracker__get_task")})
    assert provider.prompt(forced).endswith('<tool_call>\n{"name": "tracker__get_task", "arguments": ')


def test_tool_calls_are_parsed_from_the_answer_text() -> None:
    request = ChatRequest(messages=[ChatMessage.user("Show task tsk_0001.")], tools=[TOOL])
    text = '<tool_call>\n{"name": "tracker__get_task", "arguments": {"id": "tsk_0001"}}\n</tool_call>'
    message = HFProvider._message(request, text)
    assert [(c.tool, c.arguments) for c in message.tool_calls] == [("tracker__get_task", {"id": "tsk_0001"})]
    forced = request.model_copy(update={"tool_choice": NamedToolChoice(name="tracker__get_task")})
    cut = HFProvider._message(forced, '<tool_call>\n{"name": "tracker__get_task", "arguments": {"id": "tsk_0002"}')
    assert [c.arguments for c in cut.tool_calls] == [{"id": "tsk_0002"}]  # an answer cut at max_tokens is closed


def test_a_directory_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="not a transformers checkpoint"):
        HFProvider(HFConfig(path=tmp_path))


def test_eval_run_evaluates_a_checkpoint_on_held_out_tasks(tiny: Path, data: Path, tmp_path: Path) -> None:
    tasks = tmp_path / "heldout.jsonl"
    tasks.write_text("".join((data / "tasks-heldout.jsonl").read_text().splitlines(keepends=True)[:2]))
    result = CliRunner().invoke(app, ["eval", "run", "--task-file", str(tasks), "--llm", f"hf:{tiny}", "--control",
                                      "native", "--max-steps", "1", "-w", str(tmp_path / "ws"), "--run-id", "hf",
                                      "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    report = EvalReport.model_validate_json(result.stdout)
    assert report.overall.tasks == 2 and report.model.startswith("hf/tiny@")
    assert json.loads((tmp_path / "ws/runs/hf/config.json").read_text())["model"].startswith("hf/tiny@")
