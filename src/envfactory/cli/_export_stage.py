"""The export stage: `run_export(config, workspace, deps) -> StageManifest` writing `runs/<id>/export/`.

Contract:
- Reads `tasks.jsonl` and `trajectories.jsonl` (paths in the config; by default the source run's
  `synth-tasks/` stage). A line that is not a valid Task/Trajectory is dropped with reason `invalid_task`
  / `invalid_trajectory` and the validation message, never fatal.
- Loads every environment a task names (through `deps.load_env`); a task whose environment cannot be
  loaded, or whose ref's content hash differs from the loaded one, is dropped (`unknown_environment`,
  `environment_mismatch`).
- Replays every trajectory from its task's initial state with the trajectory's seed, checking the group
  hash after each call and the final per-environment hashes (`replay_mismatch` when they differ), and
  measures the state at the start of each task turn for the RL rows (`TurnStates`).
- Renders samples through `deps.renderers` (chat templates with their tokenizers; `hf_renderer` builds
  one from a transformers tokenizer). A missing optional consumer (transformers, the GGUF model) is a
  clear error naming the install command.
- Writes the files of `envfactory.export.build_export` through `StageDir` (atomic), then
  `export-manifest.json`, then the stage manifest last.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envfactory.errors import EnvFactoryError
from envfactory.export import ChatRenderer, ExportInputs, TurnStates, build_export, smollm2_tools_template
from envfactory.export.pipeline import ExportDependencyError
from envfactory.runtime import Environment, load_env, open_group
from envfactory.spec import (
    EnvSpec,
    JSONValue,
    ScriptedUser,
    StageManifest,
    Task,
    Trajectory,
    sha256_hex,
)
from envfactory.spec.dataset import ExportDrop, ExportStageConfig
from envfactory.store import StageDir, Workspace

STAGE = "export"
EXPORT_MANIFEST = "export-manifest.json"
TRANSFORMERS_INSTALL = "pip install 'envfactory[llm,dataset]' (transformers, gguf)"


@dataclass(slots=True)
class ExportDeps:
    """What the stage is given: how environments are loaded and the renderers to check samples with."""

    load_env: Callable[[str], Environment] = load_env
    renderers: Sequence[ChatRenderer] = field(default_factory=tuple)


def read_jsonl(path: Path, model: type[Task] | type[Trajectory], reason: str,
               drops: list[ExportDrop]) -> list[Any]:
    """Every valid record of a JSONL file; invalid lines become drops (line number and first error)."""
    if not path.is_file():
        raise EnvFactoryError(f"{path} does not exist")
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            drops.append(ExportDrop(item=f"{path.name}:{number}", stage="input", reason=reason,
                                    detail=f"{where}: {first['msg']}"))
    return records


def _turn_starts(task: Task, trajectory: Trajectory) -> list[int]:
    users = [i for i, m in enumerate(trajectory.messages) if m.role == "user"]
    if all(isinstance(turn.user, ScriptedUser) for turn in task.turns):
        return users[: len(task.turns)]
    return users[:1]


def replay(task: Task, trajectory: Trajectory, envs: dict[str, Environment]) -> TurnStates | str:
    """Replay the trajectory's calls; the measured turn states, or the reason the replay disagrees."""
    starts = set(_turn_starts(task, trajectory))
    states: list[dict[str, JSONValue]] = []
    hashes: list[str] = []
    ends: list[dict[str, str]] = []
    recorded = iter(trajectory.state_hashes)
    step = 0
    with open_group([envs[r.name] for r in task.envs], task.initial_state, trajectory.seed,
                    naming=task.tool_naming) as group:
        for index, message in enumerate(trajectory.messages):
            if index in starts:
                if states:
                    ends.append(group.hashes())
                states.append({name: s.state_json() for name, s in group.sessions.items()})
                hashes.append(group.hash())
            for call in message.tool_calls:
                group.call(call.tool, call.raw_arguments if call.raw_arguments is not None else call.arguments)
                step += 1
                expected = next(recorded, None)
                if expected is not None and expected != group.hash():
                    return f"group hash differs after call {step} ({call.tool})"
        ends.append(group.hashes())
        if trajectory.final_state_hashes and trajectory.final_state_hashes != group.hashes():
            return "final state hashes differ"
        if step != len(trajectory.state_hashes):
            return f"{step} calls replayed, {len(trajectory.state_hashes)} hashes recorded"
    return TurnStates(start_states=states, start_hashes=hashes, end_env_hashes=ends)


def _load_envs(tasks: list[Task], deps: ExportDeps, drops: list[ExportDrop]) -> tuple[list[Task], dict[str, Environment]]:
    loaded: dict[str, Environment] = {}
    failed: dict[str, str] = {}
    kept = []
    for task in tasks:
        problem = None
        for ref in task.envs:
            if ref.name not in loaded and ref.name not in failed:
                try:
                    loaded[ref.name] = deps.load_env(ref.name)
                except EnvFactoryError as exc:
                    failed[ref.name] = str(exc).splitlines()[0]
            if ref.name in failed:
                problem = ("unknown_environment", f"{ref.name}: {failed[ref.name]}")
            elif ref.content_hash and loaded[ref.name].spec.content_hash not in ("", ref.content_hash):
                problem = ("environment_mismatch", f"{ref}: loaded {loaded[ref.name].spec.content_hash[:12]}")
            if problem:
                break
        if problem:
            drops.append(ExportDrop(item=task.id, stage="input", reason=problem[0], detail=problem[1]))
        else:
            kept.append(task)
    return kept, loaded


def _file_hash(path: Path) -> str:
    return sha256_hex(path.read_bytes())


def run_export(config: ExportStageConfig, workspace: Workspace, deps: ExportDeps) -> StageManifest:
    """Export a run's tasks and trajectories (see the module contract)."""
    tasks_path, trajectories_path = Path(config.tasks_path), Path(config.trajectories_path)
    drops: list[ExportDrop] = []
    tasks: list[Task] = read_jsonl(tasks_path, Task, "invalid_task", drops)
    trajectories: list[Trajectory] = read_jsonl(trajectories_path, Trajectory, "invalid_trajectory", drops)
    read_counts = {"tasks_read": len(tasks) + sum(d.reason == "invalid_task" for d in drops),
                   "trajectories_read": len(trajectories) + sum(d.reason == "invalid_trajectory" for d in drops)}
    tasks, envs = _load_envs(tasks, deps, drops)
    by_id = {task.id: task for task in tasks}
    states: dict[str, TurnStates] = {}
    usable = []
    for trajectory in trajectories:
        task = by_id.get(trajectory.task_id)
        if task is None:
            usable.append(trajectory)  # build_export reports it as unknown_task
            continue
        measured = replay(task, trajectory, envs)
        if isinstance(measured, str):
            drops.append(ExportDrop(item=trajectory.id, stage="input", reason="replay_mismatch", detail=measured))
            continue
        states[trajectory.id] = measured
        usable.append(trajectory)
    specs: dict[str, EnvSpec] = {name: env.spec for name, env in envs.items()}
    inputs = ExportInputs(
        tasks=tasks, trajectories=usable, envs=specs, turn_states=states, input_drops=drops,
        input_hashes={"tasks": _file_hash(tasks_path), "trajectories": _file_hash(trajectories_path)},
        renderers=deps.renderers, read_counts=read_counts,
    )
    try:
        result = build_export(inputs, config.export)
    except ExportDependencyError as exc:
        raise EnvFactoryError(str(exc)) from exc
    stage = StageDir.open(workspace, config.run_id, STAGE)
    for relative, data in result.files.items():
        stage.write_bytes(relative, data)
    stage.write_bytes(EXPORT_MANIFEST, result.manifest.to_json_bytes() + b"\n")
    manifest = result.manifest
    return stage.finish(
        outputs=[*result.files, EXPORT_MANIFEST], config=config.model_dump(mode="json"),
        inputs=dict(manifest.inputs), seeds={"splits": config.export.splits.seed},
        counts={k: v for k, v in manifest.counts.items()}, drops=dict(manifest.drop_reasons),
    )


class HFTemplateRenderer:
    """A `ChatRenderer` over a transformers tokenizer (its own chat template, or `template`)."""

    def __init__(self, name: str, tokenizer: Any, template: str | None = None) -> None:
        self._name = name
        self._tokenizer = tokenizer
        self._template = template

    @property
    def name(self) -> str:
        return self._name

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        text = self._tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, chat_template=self._template)
        return str(text)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


def gguf_tokenizer(path: Path, cache: Path | None = None) -> Any:
    """The tokenizer (and chat template) stored in a GGUF file, through transformers.

    Converting a GGUF vocabulary takes transformers a minute or two (the Qwen one has 151k tokens), so the
    converted tokenizer is saved once under `cache/<file name>-<size>/` (default: the models directory's
    `tokenizers/`) and loaded from there afterwards; the directory appears whole or not at all.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise EnvFactoryError(f"rendering needs transformers: {TRANSFORMERS_INSTALL}") from exc
    from envfactory.store import default_models_dir

    saved = (cache or default_models_dir() / "tokenizers") / f"{path.stem}-{path.stat().st_size}"
    if (saved / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(saved))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except ImportError as exc:  # transformers names the missing gguf package
        raise EnvFactoryError(f"reading {path.name} needs the gguf package: {TRANSFORMERS_INSTALL} ({exc})") from exc
    staging = saved.with_name(f".{saved.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer.save_pretrained(str(staging))
    try:
        staging.rename(saved)
    except OSError:  # another process saved it first
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


def local_model_file(key: str) -> Path:
    """The assembled GGUF of a bundled local model (an error naming the install command otherwise)."""
    from envfactory.llm.models import get_local_model, model_path
    from envfactory.store import default_models_dir

    return model_path(get_local_model(key), default_models_dir())


def default_renderers(names: Sequence[str]) -> list[ChatRenderer]:
    """Renderers by name: `qwen` (the Qwen2.5 GGUF's own tools template) and `smollm2` (SmolLM2's
    tokenizer with the shipped tools-aware ChatML template)."""
    renderers: list[ChatRenderer] = []
    for name in names:
        if name == "qwen":
            renderers.append(HFTemplateRenderer("qwen", gguf_tokenizer(local_model_file("qwen2.5-coder-0.5b"))))
        elif name == "smollm2":
            tokenizer = gguf_tokenizer(local_model_file("smollm2-135m"))
            renderers.append(HFTemplateRenderer("smollm2", tokenizer, smollm2_tools_template()))
        else:
            raise EnvFactoryError(f"unknown renderer {name!r}: use qwen or smollm2")
    return renderers

