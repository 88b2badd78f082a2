"""`envfactory dataset validate PATH`: check tasks, trajectories or exported files against their schema,
and replay a sample of trajectories to their recorded hashes.

Contract: `validate_path(path, tasks_path, sample, seed, load)` returns a `ValidationReport` (what was
recognised, how many records were checked, every problem with its location). Recognised inputs: a
directory holding `export-manifest.json` (every listed file's hash and row count, then each file), an
export manifest, Task or Trajectory JSONL (trajectories: `sample` of them, chosen with a seeded RNG,
are replayed against their tasks, from `tasks_path` or a sibling `tasks.jsonl`), OpenAI chat JSONL,
LlamaFactory sharegpt JSONL, and the Parquet files of the `hf`, `trl` and `verl` formats.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from envfactory.cli._export_stage import EXPORT_MANIFEST, read_jsonl, replay
from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment
from envfactory.spec import Task, Trajectory, parse_json, sha256_hex
from envfactory.spec.dataset import (
    ExportDrop,
    ExportManifest,
    LlamaFactoryRow,
    RLEpisode,
    RLGroundTruth,
    RowMeta,
    SFTMessage,
)


@dataclass(slots=True)
class ValidationReport:
    path: str
    kind: str = "unknown"
    records: int = 0
    replayed: int = 0
    problems: list[str] = field(default_factory=list)
    parts: list[ValidationReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(part.ok for part in self.parts)


def _check(report: ValidationReport, where: str, model: type[BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        report.problems.append(f"{where}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        return None


def _check_messages(report: ValidationReport, where: str, messages: list[Any]) -> None:
    """Chat messages: schema, arguments are JSON objects, every tool result answers an earlier call."""
    calls: set[str] = set()
    for index, raw in enumerate(messages):
        message = _check(report, f"{where} message {index}", SFTMessage, {k: v for k, v in raw.items() if v is not None})
        if message is None:
            continue
        for call in message.tool_calls or []:
            calls.add(call.id)
            try:
                arguments = parse_json(call.function.arguments)
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                report.problems.append(f"{where} message {index}: arguments of {call.function.name} are not a JSON object")
            if "<think>" in call.function.arguments:
                report.problems.append(f"{where} message {index}: reasoning inside the arguments of {call.function.name}")
        if message.role == "tool" and message.tool_call_id not in calls:
            report.problems.append(f"{where} message {index}: tool result for unknown call {message.tool_call_id}")


def _jsonl_lines(path: Path) -> list[Any]:
    """The records of a JSONL file; a line that is not a JSON object raises `EnvFactoryError` naming it."""
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except ValueError as exc:
            raise EnvFactoryError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise EnvFactoryError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def _validate_openai(path: Path, report: ValidationReport) -> None:
    for number, record in enumerate(_jsonl_lines(path), start=1):
        report.records += 1
        if set(record) - {"messages", "tools", "parallel_tool_calls"}:
            report.problems.append(f"line {number}: keys beyond messages/tools: {sorted(record)}")
        _check_messages(report, f"line {number}", record.get("messages", []))


def _validate_llamafactory(path: Path, report: ValidationReport) -> None:
    for number, record in enumerate(_jsonl_lines(path), start=1):
        report.records += 1
        row = _check(report, f"line {number}", LlamaFactoryRow, record)
        if row is None:
            continue
        roles = [turn.from_ for turn in row.conversations]
        for index, role in enumerate(roles):
            expected = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
            if role not in expected:
                report.problems.append(f"line {number}: position {index} is {role} (LlamaFactory would skip the row)")
                break
        if len(roles) % 2:
            report.problems.append(f"line {number}: odd message count (LlamaFactory would skip the row)")
        for turn in row.conversations:
            if turn.from_ == "function_call":
                payload = turn.value.split("</think>")[-1]
                try:
                    parse_json(payload)
                except ValueError:
                    report.problems.append(f"line {number}: a function_call value is not JSON")


def _validate_parquet(path: Path, report: ValidationReport) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    rows = pq.read_table(path).to_pylist()
    columns = set(rows[0]) if rows else set()
    report.kind = "verl" if "extra_info" in columns else "rl (trl/hf)" if "episode" in columns else "sft (hf)"
    for number, row in enumerate(rows):
        report.records += 1
        where = f"row {number}"
        if "extra_info" in row:
            _check_messages(report, where, row["prompt"])
            extra = row["extra_info"]
            _check(report, where + " ground_truth", RLGroundTruth, parse_json(row["reward_model"]["ground_truth"]))
            for name in extra["tool_selection"]:
                kwargs = (extra["tools_kwargs"] or {}).get(name)
                if not kwargs:
                    report.problems.append(f"{where}: no tools_kwargs for offered tool {name}")
                    continue
                _check(report, f"{where} episode of {name}", RLEpisode, parse_json(kwargs["create_kwargs"]["episode"]))
        elif "episode" in row:
            _check_messages(report, where, row["prompt"])
            _check(report, where + " episode", RLEpisode, parse_json(row["episode"]))
            _check(report, where + " ground_truth", RLGroundTruth, parse_json(row["ground_truth"]))
        else:
            _check_messages(report, where, row["messages"])
            if not isinstance(parse_json(row["tools"]), list):
                report.problems.append(f"{where}: tools is not a JSON list")


def _validate_trajectories(path: Path, report: ValidationReport, tasks_path: Path | None, sample: int,
                           seed: int, load: Callable[[str], Environment]) -> None:
    drops: list[ExportDrop] = []
    trajectories: list[Trajectory] = read_jsonl(path, Trajectory, "invalid_trajectory", drops)
    report.records = len(trajectories) + len(drops)
    report.problems += [f"{d.item}: {d.detail}" for d in drops]
    tasks_file = tasks_path or path.with_name("tasks.jsonl")
    if not tasks_file.is_file():
        report.problems.append(f"no tasks to replay against ({tasks_file} missing; pass --tasks)")
        return
    tasks = {t.id: t for t in read_jsonl(tasks_file, Task, "invalid_task", [])}
    chosen = random.Random(seed).sample(trajectories, min(sample, len(trajectories)))
    envs: dict[str, Environment] = {}
    for trajectory in sorted(chosen, key=lambda t: t.id):
        task = tasks.get(trajectory.task_id)
        if task is None:
            report.problems.append(f"{trajectory.id}: task {trajectory.task_id} not in {tasks_file}")
            continue
        for ref in task.envs:
            envs.setdefault(ref.name, load(ref.name))
        outcome = replay(task, trajectory, envs)
        report.replayed += 1
        if isinstance(outcome, str):
            report.problems.append(f"{trajectory.id}: replay: {outcome}")


def _validate_manifest_dir(directory: Path, report: ValidationReport, **kwargs: Any) -> None:
    manifest = _check(report, EXPORT_MANIFEST, ExportManifest, parse_json((directory / EXPORT_MANIFEST).read_bytes()))
    if manifest is None:
        return
    report.kind = "export"
    for entry in manifest.files:
        file = directory / entry.path
        if not file.is_file():
            report.problems.append(f"{entry.path}: listed in the manifest, missing")
            continue
        if sha256_hex(file.read_bytes()) != entry.sha256:
            report.problems.append(f"{entry.path}: sha256 differs from the manifest")
        if file.suffix in (".jsonl", ".parquet") and not file.name.endswith(".index.jsonl"):
            part = validate_path(file, **kwargs)
            if entry.rows is not None and part.records != entry.rows:
                part.problems.append(f"{part.records} rows, the manifest says {entry.rows}")
            report.parts.append(part)
        report.records += 1


def validate_path(path: Path, tasks_path: Path | None = None, sample: int = 5, seed: int = 0,
                  load: Callable[[str], Environment] | None = None) -> ValidationReport:
    """Validate one file or export directory (see the module contract)."""
    from envfactory.runtime import load_env

    loader = load or load_env
    report = ValidationReport(str(path))
    if path.is_dir():
        if not (path / EXPORT_MANIFEST).is_file():
            raise EnvFactoryError(f"{path} is a directory without {EXPORT_MANIFEST}")
        _validate_manifest_dir(path, report, tasks_path=tasks_path, sample=sample, seed=seed, load=load)
        return report
    if not path.is_file():
        raise EnvFactoryError(f"{path} does not exist")
    if path.suffix == ".parquet":
        _validate_parquet(path, report)
        return report
    if path.name == EXPORT_MANIFEST or path.suffix == ".json":
        report.kind = "export manifest"
        report.records = 1
        try:
            manifest = parse_json(path.read_bytes())
        except ValueError as exc:
            raise EnvFactoryError(f"{path}: not JSON ({exc})") from exc
        _check(report, path.name, ExportManifest, manifest)
        return report
    lines = _jsonl_lines(path)
    first = lines[0] if lines else {}
    if "termination" in first:
        report.kind = "trajectories"
        _validate_trajectories(path, report, tasks_path, sample, seed, loader)
    elif "turns" in first:
        report.kind = "tasks"
        drops: list[ExportDrop] = []
        report.records = len(read_jsonl(path, Task, "invalid_task", drops)) + len(drops)
        report.problems += [f"{d.item}: {d.detail}" for d in drops]
    elif "conversations" in first:
        report.kind = "llamafactory"
        _validate_llamafactory(path, report)
    elif "messages" in first:
        report.kind = "openai"
        _validate_openai(path, report)
    elif "row_id" in first:
        report.kind = "row index"
        for number, record in enumerate(lines, start=1):
            report.records += 1
            _check(report, f"line {number}", RowMeta, record)
    else:
        report.problems.append("not a task, trajectory or exported file (unrecognised first record)")
    return report

