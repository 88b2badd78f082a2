"""The `sft` and `grpo` stages: TRL's trainers on our data and live sessions (no trainer of our own).

`run_sft(config, stage, deps)` / `run_grpo(config, stage, deps)` write into the stage directory the caller
opened (`runs/<run-id>/sft|grpo/`, a `store.StageDir`, injected because `train` does not import `store`):
`model/` (the final checkpoint, tokenizer included), `checkpoints/` (intermediate ones when `save_steps`),
`logs/steps.jsonl` (one `TrainStepRecord` per logged step: loss, reward and its components, failed
rollouts, step time), `logs/rollouts.jsonl` (GRPO: one `RolloutRecord` per rollout) and `manifest.json`
(a `StageManifest`). The step log is rewritten atomically after every step, so a killed run keeps
what it logged. Dependencies (`TrainDeps`: the chat template, a session source) are injected and
checked before any model is loaded.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from envfactory.errors import SpecError
from envfactory.runtime import Environment, load_env
from envfactory.spec import StageManifest, ToolSpec
from envfactory.spec.training import GRPORunConfig, RolloutRecord, SFTRunConfig, TrainStepRecord
from envfactory.train.data import grpo_rows, load_tasks, offered_tools
from envfactory.train.models import ensure_response_parser, load_for_training, require, require_tools_template
from envfactory.train.sessions import HttpSessions, LocalSessions, RetryPolicy, SessionSource
from envfactory.train.trl_env import COMPONENTS, RolloutRecorder, environment_class, reward_functions

StepHook = Callable[[TrainStepRecord], None]


class StageDir(Protocol):
    """Where a stage writes (`store.StageDir` fits): atomic JSONL artifacts and the manifest, last."""

    @property
    def path(self) -> Path:
        """The stage directory."""

    def write_jsonl(self, relative: str, records: Iterable[Any]) -> Path:
        """Write `records` as canonical JSONL at `relative`, atomically; returns the path."""

    def finish(self, *, outputs: Iterable[str], config: dict[str, Any] | None = None,
               seeds: Mapping[str, int] | None = None, versions: Mapping[str, str] | None = None,
               counts: Mapping[str, int] | None = None, timings: Mapping[str, float] | None = None,
               ) -> StageManifest:
        """Write the stage manifest (content hashes of `outputs`, config, seeds, versions, counts, timings)
        last, atomically, and return it."""


@dataclass
class TrainDeps:
    """What a training stage needs besides its config."""

    chat_template: str | None = None
    sessions: SessionSource | None = None
    on_step: StepHook | None = None
    env_loader: Callable[[str], Environment] = field(default=load_env)
    trainer_cls: Any = None
    """A GRPOTrainer subclass to use instead of TRL's (tests script its generation); None: TRL's own."""
    callbacks: list[Any] = field(default_factory=list)


def _finite(value: Any) -> float | None:
    """A logged number, or None when the trainer logged NaN (e.g. the reward of a step whose rollouts all failed)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _step_record(logs: dict[str, float], step: int, elapsed: float | None, failed: int) -> TrainStepRecord:
    components = {}
    metrics = {}
    for key, value in logs.items():
        if _finite(value) is None:
            continue
        name = key.removeprefix("train/")
        if name.startswith("rewards/reward_") and name.endswith("/mean"):
            components[name[len("rewards/reward_"):-len("/mean")]] = float(value)
        elif name not in ("loss", "reward", "reward_std", "learning_rate"):
            metrics[name] = float(value)
    return TrainStepRecord(step=step, loss=_finite(logs.get("loss")), reward=_finite(logs.get("reward")),
                           reward_std=_finite(logs.get("reward_std")), components=components, failed_rollouts=failed,
                           learning_rate=_finite(logs.get("learning_rate")), step_seconds=elapsed, metrics=metrics)


def _logger(stage: StageDir, recorder: RolloutRecorder | None, on_step: StepHook | None) -> Any:
    transformers = require("transformers")

    class StepLogger(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        """Writes the step and rollout logs after every logged step."""

        def __init__(self) -> None:
            self.steps: list[TrainStepRecord] = []
            self.rollouts: list[RolloutRecord] = []
            self.started = time.perf_counter()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            if recorder is not None:
                recorder.step = state.global_step + 1

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if not logs or "train_runtime" in logs:
                return
            drained = recorder.drain() if recorder is not None else []
            self.rollouts += drained
            record = _step_record(logs, state.global_step, time.perf_counter() - self.started,
                                  sum(1 for r in drained if r.failure is not None))
            self.steps.append(record)
            stage.write_jsonl("logs/steps.jsonl", [s.model_dump(mode="json") for s in self.steps])
            if recorder is not None:
                stage.write_jsonl("logs/rollouts.jsonl", [r.model_dump(mode="json") for r in self.rollouts])
            if on_step is not None:
                on_step(record)

    return StepLogger()


def _peft(config: SFTRunConfig | GRPORunConfig, model: Any) -> Any:
    if not config.lora:
        return None
    peft = require("peft")
    torch = require("torch")
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and "lm_head" not in name})
    layers = None
    if config.lora_last_layers:
        total = int(model.config.num_hidden_layers)
        layers = list(range(max(0, total - config.lora_last_layers), total))
    return peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=linear,
                           layers_to_transform=layers, task_type="CAUSAL_LM")


def _common_args(config: SFTRunConfig | GRPORunConfig, stage: StageDir) -> dict[str, Any]:
    return {
        "output_dir": str(stage.path / "checkpoints"), "max_steps": config.max_steps,
        "learning_rate": config.learning_rate, "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "logging_steps": 1,
        "save_strategy": "steps" if config.save_steps else "no", "save_steps": config.save_steps or 500,
        "report_to": [], "use_cpu": config.use_cpu, "seed": config.seed, "bf16": config.bf16,
        "disable_tqdm": True, "lr_scheduler_type": "constant",
        # TRL turns activation checkpointing on by default; on a CPU it only costs time
        "gradient_checkpointing": config.gradient_checkpointing,
    }


def _finish(stage: StageDir, config: SFTRunConfig | GRPORunConfig, logger: Any, started: float,
            counts: dict[str, int], versions: dict[str, str]) -> StageManifest:
    outputs = ["logs/steps.jsonl"]
    if (stage.path / "logs/rollouts.jsonl").is_file():
        outputs.append("logs/rollouts.jsonl")
    outputs += [str(p.relative_to(stage.path)) for p in sorted((stage.path / "model").glob("*")) if p.is_file()]
    return stage.finish(outputs=outputs, config=config.model_dump(mode="json"), seeds={"train": config.seed},
                        versions=versions, counts={**counts, "steps": len(logger.steps)},
                        timings={"seconds": round(time.perf_counter() - started, 1)})


def _versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            out[name] = str(require(name).__version__)
        except Exception:  # a missing optional package is simply not recorded
            continue
    return out


def sft_dataset(path: str | Path) -> Any:
    """An OpenAI-chat JSONL file (`messages`, `tools`) as a `datasets.Dataset` TRL's SFTTrainer reads:
    tools as JSON text, tool-call arguments as JSON text (Arrow would merge their keys across rows)."""
    datasets = require("datasets")
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"{file}: no such SFT file (export one with `envfactory dataset export --format openai`)")
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = record["messages"]
        except (ValueError, KeyError) as exc:
            raise SpecError(f"{file}:{number}: not an OpenAI chat row ({exc})") from exc
        clean = []
        for message in messages:
            item = {"role": message["role"], "content": message.get("content") or ""}
            if message.get("tool_calls"):
                item["tool_calls"] = [
                    {"type": "function", "id": c.get("id", ""),
                     "function": {"name": c["function"]["name"],
                                  "arguments": c["function"]["arguments"] if isinstance(c["function"]["arguments"], str)
                                  else json.dumps(c["function"]["arguments"])}}
                    for c in message["tool_calls"]
                ]
            if message.get("tool_call_id"):
                item["tool_call_id"] = message["tool_call_id"]
            clean.append(item)
        rows.append({"messages": clean, "tools": json.dumps(record.get("tools") or [])})
    if not rows:
        raise SpecError(f"{file}: holds no rows")
    return datasets.Dataset.from_list(rows)


def run_sft(config: SFTRunConfig, stage: StageDir, deps: TrainDeps) -> StageManifest:
    """Supervised fine-tuning of `config.model` on `config.data` with TRL's SFTTrainer."""
    trl = require("trl")
    dataset = sft_dataset(config.data)
    tokenizer, model = load_for_training(config.model, deps.chat_template)
    require_tools_template(tokenizer)
    started = time.perf_counter()
    logger = _logger(stage, None, deps.on_step)
    args = trl.SFTConfig(**_common_args(config, stage), max_length=config.max_length,
                         num_train_epochs=config.num_train_epochs, assistant_only_loss=config.assistant_only_loss)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=_peft(config, model), callbacks=[logger])
    trainer.train()
    _save(trainer, tokenizer, stage)
    return _finish(stage, config, logger, started, {"rows": len(dataset)}, _versions())


def _save(trainer: Any, tokenizer: Any, stage: StageDir) -> None:
    target = stage.path / "model"
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # LoRA: save the merged weights, loadable without peft
        model = model.merge_and_unload()
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def session_source(config: GRPORunConfig) -> SessionSource:
    """The configured sessions: the env server at `env_server`, or sessions in this process."""
    policy = RetryPolicy(retries=config.call_retries, backoff_s=config.retry_backoff_s)
    if config.env_server:
        sessions = HttpSessions(config.env_server, policy=policy)
        sessions.check()
        return sessions
    return LocalSessions(policy=policy)


def task_tool_specs(tasks: list[Any], loader: Callable[[str], Environment]) -> list[ToolSpec]:
    """The group-named tool specs the tasks offer, from their environments."""
    envs = {ref.name: loader(ref.name) for task in tasks for ref in task.envs}
    wanted = offered_tools(tasks, envs)
    specs = {f"{name}__{t.name}": t.model_copy(update={"name": f"{name}__{t.name}"})
             for name, env in envs.items() for t in env.spec.tools}
    missing = [w for w in wanted if w not in specs]
    if missing:
        raise SpecError(f"the tasks offer tools their environments lack: {missing}")
    return [specs[w] for w in wanted]


def run_grpo(config: GRPORunConfig, stage: StageDir, deps: TrainDeps) -> StageManifest:
    """GRPO of `config.model` with one live session per rollout and our reward on its final state."""
    trl = require("trl")
    datasets = require("datasets")
    tasks = load_tasks(config.tasks)
    sessions = deps.sessions or session_source(config)
    tools = task_tool_specs(tasks, deps.env_loader)
    tokenizer, model = load_for_training(config.model, deps.chat_template)
    require_tools_template(tokenizer)
    ensure_response_parser(tokenizer)
    started = time.perf_counter()
    recorder = RolloutRecorder()
    logger = _logger(stage, recorder, deps.on_step)
    funcs, weights = reward_functions(recorder, COMPONENTS if config.component_weights_logged else ())
    args = trl.GRPOConfig(**_common_args(config, stage), num_generations=config.num_generations,
                          temperature=config.temperature, beta=config.beta,
                          max_completion_length=config.max_completion_length,
                          max_tool_calling_iterations=config.max_tool_calling_iterations, reward_weights=weights,
                          log_completions=False)
    env_cls = environment_class(tools, sessions)
    trainer_cls = deps.trainer_cls or trl.GRPOTrainer
    trainer = trainer_cls(model=model, reward_funcs=funcs, args=args,
                              train_dataset=datasets.Dataset.from_list(grpo_rows(tasks)),
                              processing_class=tokenizer, environment_factory=env_cls, peft_config=_peft(config, model),
                              callbacks=[logger, *deps.callbacks])
    try:
        trainer.train()
    finally:
        sessions.close()
    _save(trainer, tokenizer, stage)
    failed = sum(1 for r in logger.rollouts if r.failure is not None)
    return _finish(stage, config, logger, started,
                   {"tasks": len(tasks), "rollouts": len(logger.rollouts), "failed_rollouts": failed}, _versions())
