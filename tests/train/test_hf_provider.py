"""The `hf:DIR` provider: a transformers checkpoint answering chat requests, and `envfactory eval run
--llm hf:DIR` evaluating a checkpoint on our tasks (the tiny random model: the route, not the skill)."""

from __future__ import annotations

import json
import os
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
    with pytest.raises(ProviderError, match=r"not a transformers checkpoint .* nor a LoRA/PEFT adapter"):
        HFProvider(HFConfig(path=tmp_path))


def _adapter(tiny: Path, root: Path) -> tuple[Path, Path]:
    """A LoRA adapter on `tiny` (non-zero weights, tokenizer beside it) and the same weights merged."""
    import peft
    import torch
    import transformers

    torch.manual_seed(1)
    base = transformers.AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(base, config)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny))
    model.save_pretrained(str(root / "adapter"))
    tokenizer.save_pretrained(str(root / "adapter"))
    model.merge_and_unload().save_pretrained(str(root / "merged"))
    tokenizer.save_pretrained(str(root / "merged"))
    return root / "adapter", root / "merged"


def test_a_lora_adapter_is_evaluated_merged_into_its_base(tiny: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    adapter, merged = _adapter(tiny, tmp_path)
    assert not (adapter / "config.json").exists()  # what a LoRA trainer checkpoint holds: no full weights
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = os.path.relpath(tiny, tmp_path)  # trainers write --model as given
    config_file.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    providers = {name: HFProvider(HFConfig(path=path)) for name, path in
                 (("adapter", Path("adapter")), ("merged", merged), ("base", tiny))}
    assert len({p.model_id for p in providers.values()}) == 3
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    logits = {}
    for name, provider in providers.items():
        provider.load()
        with torch.no_grad():
            logits[name] = provider._model(input_ids=ids).logits
    assert torch.allclose(logits["adapter"], logits["merged"], atol=1e-5)
    assert not torch.allclose(logits["adapter"], logits["base"], atol=1e-3)  # the adapter's weights are applied
    request = ChatRequest(messages=[ChatMessage.user("Show task tsk_0001.")], tools=[TOOL], max_tokens=6,
                          temperature=0.0, seed=0)
    answer, same = providers["adapter"].chat(request), providers["merged"].chat(request)
    assert answer.message == same.message and answer.usage == same.usage


def test_an_adapter_whose_base_is_not_here_is_refused_with_the_fix(tiny: Path, tmp_path: Path) -> None:
    adapter, _ = _adapter(tiny, tmp_path)
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = "workspace/models/missing"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ProviderError, match=r"LoRA/PEFT adapter whose base model 'workspace/models/missing'.*"
                                             r"set base_model_name_or_path"):
        HFProvider(HFConfig(path=adapter))


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
