"""The whole export as one pure function: tasks + trajectories (+ replayed turn states) -> files + manifest.

Contract:
- `build_export(inputs, config)` never touches the disk: it returns `ExportResult.files` (relative path ->
  bytes) and the `ExportManifest`, which the export stage writes.
- Funnel: tasks read -> tasks with a usable trajectory (the trajectory ended by the agent or the user,
  scored at least `min_reward` when scored; the first by id when several) -> hygiene (duplicates removed)
  -> split -> rows. Rows failing a renderer (lost tool call, template error, longer than `max_tokens`)
  are dropped from every format so the formats hold the same samples; LlamaFactory rows that would
  break its alternation are dropped from that format only. Every drop is listed with its reason.
- Files: `openai/<split>.jsonl` (+ `<split>.index.jsonl`, the row ids line by line),
  `llamafactory/<split>.jsonl` + `dataset_info.json`, `hf/data/{sft,rl}-<split>.parquet` + `hf/README.md`
  (the card), `verl/<split>.parquet` + `verl/tools.json`, `trl/<split>.parquet`; empty splits are not
  written. The manifest lists each file's sha256.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import mean

from envfactory.export.card import dataset_card, licences
from envfactory.export.conversation import ExportRowError, json_text
from envfactory.export.formats import (
    TurnStates,
    llamafactory_dataset_info,
    llamafactory_row,
    offered_tool_names,
    openai_record,
    rl_rows,
    sft_row,
    tool_list,
    tool_name,
    trl_record,
    verl_record,
    verl_schema_problem,
)
from envfactory.export.hygiene import deduplicate, diversity
from envfactory.export.render import ChatRenderer, check_row
from envfactory.export.splits import assign_splits
from envfactory.spec import (
    EnvSpec,
    JSONObject,
    JSONValue,
    Task,
    TerminationReason,
    Trajectory,
    canonical_json,
    sha256_hex,
)
from envfactory.spec.dataset import (
    SPLIT_NAMES,
    ExportConfig,
    ExportDrop,
    ExportFile,
    ExportFormat,
    ExportManifest,
    RLRow,
    SFTMessage,
    SFTRow,
    SplitName,
)

_FINISHED = (TerminationReason.AGENT_STOP, TerminationReason.USER_STOP)


@dataclass(frozen=True, slots=True)
class ExportInputs:
    """What the export reads: tasks, trajectories, the environments' specs, the turn states measured by
    replaying each trajectory (by trajectory id), drops the reader already made (invalid lines, replay
    mismatches), the hashes of the input files, and the renderers to check samples with."""

    tasks: Sequence[Task]
    trajectories: Sequence[Trajectory]
    envs: Mapping[str, EnvSpec]
    turn_states: Mapping[str, TurnStates] = field(default_factory=dict)
    input_drops: Sequence[ExportDrop] = ()
    input_hashes: Mapping[str, str] = field(default_factory=dict)
    renderers: Sequence[ChatRenderer] = ()
    read_counts: Mapping[str, int] = field(default_factory=dict)
    """funnel counts of what the reader saw before its own drops (e.g. `trajectories_read`)"""


@dataclass(slots=True)
class ExportResult:
    """Everything an export writes: file contents by relative path, and its manifest."""
    files: dict[str, bytes]
    manifest: ExportManifest


@dataclass(slots=True)
class _Rows:
    sft: dict[SplitName, list[SFTRow]] = field(default_factory=lambda: defaultdict(list))
    rl: dict[SplitName, list[RLRow]] = field(default_factory=lambda: defaultdict(list))
    drops: list[ExportDrop] = field(default_factory=list)
    tokens: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def _select_trajectories(inputs: ExportInputs, config: ExportConfig,
                         drops: list[ExportDrop]) -> dict[str, Trajectory]:
    """The trajectory each task is exported with (see the module contract)."""
    tasks = {task.id for task in inputs.tasks}
    chosen: dict[str, Trajectory] = {}
    for trajectory in sorted(inputs.trajectories, key=lambda t: t.id):
        if trajectory.task_id not in tasks:
            drops.append(ExportDrop(item=trajectory.id, stage="input", reason="unknown_task",
                                    detail=trajectory.task_id or "(no task id)"))
        elif trajectory.termination not in _FINISHED:
            drops.append(ExportDrop(item=trajectory.id, stage="input", reason="truncated_trajectory",
                                    detail=str(trajectory.termination)))
        elif trajectory.reward is not None and trajectory.reward.total < config.min_reward:
            drops.append(ExportDrop(item=trajectory.id, stage="input", reason="low_reward",
                                    detail=f"{trajectory.reward.total:.3f} < {config.min_reward}"))
        elif trajectory.task_id in chosen:
            drops.append(ExportDrop(item=trajectory.id, stage="input", reason="extra_trajectory",
                                    detail=f"{chosen[trajectory.task_id].id} kept for the task"))
        else:
            chosen[trajectory.task_id] = trajectory
    return chosen


def _usable_tasks(inputs: ExportInputs, chosen: Mapping[str, Trajectory], drops: list[ExportDrop]) -> list[Task]:
    usable = []
    for task in inputs.tasks:
        missing = [ref.name for ref in task.envs if ref.name not in inputs.envs]
        if missing:
            drops.append(ExportDrop(item=task.id, stage="input", reason="unknown_environment", detail=", ".join(missing)))
        elif task.id not in chosen:
            drops.append(ExportDrop(item=task.id, stage="input", reason="no_usable_trajectory"))
        else:
            usable.append(task)
    return usable


def _rendered_ok(row_id: str, messages: Sequence[SFTMessage], tools: list[JSONObject], inputs: ExportInputs,
                 config: ExportConfig, rows: _Rows) -> bool:
    for renderer in inputs.renderers:
        check = check_row(messages, tools, renderer, config.max_tokens)
        if check.problem:
            rows.drops.append(ExportDrop(item=row_id, stage="render", reason=check.problem, detail=check.detail))
            return False
        rows.tokens[renderer.name].append(check.tokens)
    return True


def _make_rows(tasks: Sequence[Task], chosen: Mapping[str, Trajectory], splits: Mapping[str, SplitName],
               inputs: ExportInputs, config: ExportConfig) -> _Rows:
    rows = _Rows()
    for task in tasks:
        trajectory, split = chosen[task.id], splits[task.id]
        try:
            sft = sft_row(task, trajectory, split, inputs.envs, config)
        except ExportRowError as exc:
            rows.drops.append(ExportDrop(item=trajectory.id, stage="format", reason=exc.reason, detail=exc.detail))
            continue
        if _rendered_ok(sft.meta.row_id, sft.messages, sft.tools, inputs, config, rows):
            rows.sft[split].append(sft)
        states = inputs.turn_states.get(trajectory.id)
        if states is None:
            rows.drops.append(ExportDrop(item=trajectory.id, stage="format", reason="not_replayed", format="verl"))
            continue
        try:
            turn_rows = rl_rows(task, trajectory, states, split, inputs.envs, config)
        except ExportRowError as exc:
            rows.drops.append(ExportDrop(item=trajectory.id, stage="format", reason=exc.reason, detail=exc.detail,
                                         format="verl"))
            continue
        for rl in turn_rows:
            tools = tool_list(rl.tools)
            if _rendered_ok(rl.meta.row_id, rl.prompt, tools, inputs, config, rows):
                rows.rl[split].append(rl)
    return rows


def _jsonl(records: Sequence[object]) -> bytes:
    return b"".join(canonical_json(record) + b"\n" for record in records)


PARQUET_INSTALL = "pip install 'envfactory[dataset]'"


class ExportDependencyError(ImportError):
    """An optional package a requested format needs is not installed; the message names the install command."""


def _encode(rows: _Rows, config: ExportConfig, files: dict[str, bytes], counts: Counter[str],
            meta: dict[str, tuple[ExportFormat, SplitName, int]]) -> None:
    """Encode every requested format and split into `files` (path -> bytes)."""
    if {"hf", "verl", "trl"} & set(config.formats):
        try:  # pyarrow comes with the `dataset` extra; JSONL formats work without it
            from envfactory.export.parquet import SFT_SCHEMA, TRL_SCHEMA, parquet_bytes, table, verl_schema
        except ImportError as exc:
            raise ExportDependencyError(f"the hf, verl and trl formats write Parquet: {PARQUET_INSTALL} ({exc})") from exc
    dataset_info: JSONObject = {}
    for split in SPLIT_NAMES:
        sft, rl = rows.sft.get(split, []), rows.rl.get(split, [])

        def put(path: str, data: bytes, fmt: ExportFormat, n: int, split: SplitName = split) -> None:
            files[path] = data
            meta[path] = (fmt, split, n)
            counts[f"{fmt}.{split}"] += n

        if sft and "openai" in config.formats:
            put(f"openai/{split}.jsonl", _jsonl([openai_record(r) for r in sft]), "openai", len(sft))
            files[f"openai/{split}.index.jsonl"] = _jsonl([r.meta.model_dump(mode="json") for r in sft])
        if sft and "llamafactory" in config.formats:
            converted = []
            for row in sft:
                try:
                    result = llamafactory_row(row)
                except ExportRowError as exc:
                    rows.drops.append(ExportDrop(item=row.meta.row_id, stage="format", reason=exc.reason,
                                                 detail=exc.detail, format="llamafactory"))
                    continue
                counts["llamafactory.assistant_text_beside_calls_dropped"] += result.dropped_text
                converted.append(result.row.model_dump(mode="json", by_alias=True))
            if converted:
                put(f"llamafactory/{split}.jsonl", _jsonl(converted), "llamafactory", len(converted))
                dataset_info.update(llamafactory_dataset_info(f"{config.dataset_name}_{split}", f"{split}.jsonl"))
        if sft and "hf" in config.formats:
            records = [_sft_record(r) for r in sft]
            put(f"hf/data/sft-{split}.parquet", parquet_bytes(table(records, SFT_SCHEMA)), "hf", len(sft))
        if rl and "hf" in config.formats:
            files[f"hf/data/rl-{split}.parquet"] = parquet_bytes(table([trl_record(r) for r in rl], TRL_SCHEMA))
        verl_rows = _verl_representable(rl, rows.drops) if rl and "verl" in config.formats else []
        if verl_rows:
            records = [verl_record(r, i) for i, r in enumerate(verl_rows)]
            names = [n for r in verl_rows for n in offered_tool_names(r.tools)]
            put(f"verl/{split}.parquet", parquet_bytes(table(records, verl_schema(names))), "verl", len(verl_rows))
        if rl and "trl" in config.formats:
            put(f"trl/{split}.parquet", parquet_bytes(table([trl_record(r) for r in rl], TRL_SCHEMA)), "trl", len(rl))
    if dataset_info:
        files["llamafactory/dataset_info.json"] = canonical_json(dataset_info) + b"\n"


def _verl_representable(rl: Sequence[RLRow], drops: list[ExportDrop]) -> list[RLRow]:
    """The rows whose every offered tool veRL's schema model accepts; the others are dropped for veRL."""
    kept = []
    for row in rl:
        problems = [f"{tool_name(t)}: {p}" for t in tool_list(row.tools) if (p := verl_schema_problem(t))]
        if problems:
            drops.append(ExportDrop(item=row.meta.row_id, stage="format", reason="verl_unrepresentable_tool",
                                    format="verl", detail="; ".join(problems)))
        else:
            kept.append(row)
    return kept


def _sft_record(row: SFTRow) -> JSONObject:
    meta = row.meta
    return {
        "messages": [m.model_dump(mode="json") for m in row.messages],
        "tools": json_text(row.tools), "row_id": meta.row_id, "task_id": meta.task_id,
        "trajectory_id": meta.trajectory_id, "split": meta.split, "envs": list[JSONValue](meta.envs),
        "domains": list[JSONValue](meta.domains),
    }


def _token_stats(tokens: Mapping[str, list[int]], config: ExportConfig) -> dict[str, JSONObject]:
    stats: dict[str, JSONObject] = {}
    for name, values in sorted(tokens.items()):
        ordered = sorted(values)
        stats[name] = {"samples": len(values), "max_tokens": config.max_tokens, "longest": ordered[-1],
                       "mean": round(mean(values), 1), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}
    return stats


def build_export(inputs: ExportInputs, config: ExportConfig) -> ExportResult:
    """Run the export (see the module contract)."""
    drops: list[ExportDrop] = list(inputs.input_drops)
    counts: Counter[str] = Counter({"tasks_read": len(inputs.tasks), "trajectories_read": len(inputs.trajectories),
                                    **inputs.read_counts})
    chosen = _select_trajectories(inputs, config, drops)
    usable = _usable_tasks(inputs, chosen, drops)
    counts["tasks_with_trajectory"] = len(usable)
    hygiene = deduplicate(usable, config.hygiene)
    drops += hygiene.drops
    counts["tasks_after_hygiene"] = len(hygiene.kept)
    assignments = assign_splits(hygiene.kept, config.splits)
    splits = {a.task_id: a.split for a in assignments}
    rows = _make_rows(hygiene.kept, chosen, splits, inputs, config)
    counts["sft_rows"] = sum(len(v) for v in rows.sft.values())
    counts["rl_rows"] = sum(len(v) for v in rows.rl.values())
    files: dict[str, bytes] = {}
    meta: dict[str, tuple[ExportFormat, SplitName, int]] = {}
    _encode(rows, config, files, counts, meta)
    drops += rows.drops
    used_envs = {ref.name: inputs.envs[ref.name] for task in hygiene.kept for ref in task.envs}
    manifest = ExportManifest(
        config=config, inputs=dict(sorted(inputs.input_hashes.items())), counts=dict(sorted(counts.items())),
        drops=drops, drop_reasons=dict(sorted(Counter(d.reason for d in drops).items())), splits=assignments,
        diversity=diversity(hygiene.kept, inputs.envs), renderers=_token_stats(rows.tokens, config),
        licences=licences(used_envs),
    )
    if "hf" in config.formats and any(path.startswith("hf/") for path in files):
        sft_files = {str(s): f"data/sft-{s}.parquet" for s in SPLIT_NAMES if f"hf/data/sft-{s}.parquet" in files}
        rl_files = {str(s): f"data/rl-{s}.parquet" for s in SPLIT_NAMES if f"hf/data/rl-{s}.parquet" in files}
        files["hf/README.md"] = dataset_card(manifest, used_envs, sft_files, rl_files).encode()
    if "verl" in config.formats and any(path.startswith("verl/") for path in files):
        tools = {tool_name(t): t for split in rows.rl.values() for r in split for t in tool_list(r.tools)
                 if verl_schema_problem(t) is None}
        files["verl/tools.json"] = canonical_json([tools[name] for name in sorted(tools)]) + b"\n"
    listed = [
        ExportFile(path=path, sha256=sha256_hex(data), rows=meta[path][2] if path in meta else None,
                   format=meta[path][0] if path in meta else None, split=meta[path][1] if path in meta else None)
        for path, data in sorted(files.items())
    ]
    return ExportResult(files=files, manifest=manifest.model_copy(update={"files": listed}))
