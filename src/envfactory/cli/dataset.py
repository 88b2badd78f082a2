"""`envfactory dataset`: export tasks and trajectories as SFT and RL datasets, and validate files.

- `export --from RUN|DIR [--format F]... [--to DIR] [--think keep|drop] [--render qwen|smollm2]...`:
  reads `tasks.jsonl` and `trajectories.jsonl` (from `runs/RUN/synth-tasks/` of the workspace, or from
  DIR), runs the export stage into `runs/<run>/export/` and, with `--to`, copies the files there too.
  Prints the funnel, the rows per format and split, and the drops by reason.
- `validate PATH [--tasks FILE] [--sample N]`: checks a task, trajectory or exported file (or a whole
  export directory) against its schema and replays a sample of trajectories; exit code 1 on problems.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envfactory.cli._dataset_validate import ValidationReport, validate_path
from envfactory.cli._export_stage import EXPORT_MANIFEST, ExportDeps, default_renderers, run_export
from envfactory.cli._output import console, emit_json
from envfactory.errors import EnvFactoryError
from envfactory.export.card import FUNNEL
from envfactory.spec import content_hash
from envfactory.spec.dataset import (
    EXPORT_FORMATS,
    ExportConfig,
    ExportFormat,
    ExportManifest,
    ExportStageConfig,
    SplitConfig,
)
from envfactory.store import StageDir, Workspace, check_run_id

app = typer.Typer(help="Export SFT and RL datasets; validate tasks, trajectories and exported files.",
                  no_args_is_help=True)

SYNTH_STAGE = "synth-tasks"


def _sources(workspace: Workspace, source: str) -> tuple[Path, Path, str]:
    """(tasks.jsonl, trajectories.jsonl, run id) for a run id of the workspace or a directory."""
    directory = Path(source)
    if directory.is_dir():
        run_id = f"export-{content_hash(str(directory.resolve()))[:10]}"
    else:
        check_run_id(source)
        directory = workspace.runs_dir / source / SYNTH_STAGE
        run_id = source
    tasks, trajectories = directory / "tasks.jsonl", directory / "trajectories.jsonl"
    missing = [str(p) for p in (tasks, trajectories) if not p.is_file()]
    if missing:
        raise EnvFactoryError(f"no export input: {', '.join(missing)} missing (run the synthesis stage first)")
    return tasks, trajectories, run_id


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Option("--from", help="Run id in the workspace, or a directory with "
                                        "tasks.jsonl and trajectories.jsonl.")],
    formats: Annotated[list[str] | None, typer.Option("--format", help="openai|llamafactory|hf|verl|trl "
                                                      "(repeatable; default all).")] = None,
    to: Annotated[Path | None, typer.Option("--to", file_okay=False, help="Also copy the export here.")] = None,
    workspace_dir: Annotated[Path, typer.Option("--workspace", help="Workspace directory.")] = Path("workspace"),
    run: Annotated[str | None, typer.Option("--run", help="Run id to write into (default: the source run).")] = None,
    think: Annotated[str, typer.Option("--think", help="keep or drop <think> reasoning.")] = "drop",
    render: Annotated[list[str] | None, typer.Option("--render", help="Check samples through a chat "
                                                     "template: qwen, smollm2 (repeatable).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="Longest sample kept.")] = 8192,
    seed: Annotated[int, typer.Option("--seed", help="Split seed.")] = 42,
    heldout_env: Annotated[list[str] | None, typer.Option("--heldout-env", help="Hold an environment out "
                                                          "(repeatable).")] = None,
    heldout_fraction: Annotated[float, typer.Option("--heldout-fraction", min=0.0, max=0.9, help="Hold out this "
                                                    "share of the environments too (seeded).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the export manifest as JSON.")] = False,
) -> None:
    """Export a run's tasks and gold trajectories to SFT and RL formats."""
    chosen = formats or list(EXPORT_FORMATS)
    unknown = sorted(set(chosen) - set(EXPORT_FORMATS))
    if unknown:
        raise EnvFactoryError(f"unknown format {', '.join(unknown)} (one of {', '.join(EXPORT_FORMATS)})")
    if think not in ("keep", "drop"):
        raise EnvFactoryError("--think is keep or drop")
    workspace = Workspace(workspace_dir)
    tasks, trajectories, run_id = _sources(workspace, source)
    export = ExportConfig(formats=[f for f in EXPORT_FORMATS if f in chosen], think=think,
                          max_tokens=max_tokens, splits=SplitConfig(seed=seed, heldout_envs=heldout_env or [],
                                             heldout_env_fraction=heldout_fraction))
    config = ExportStageConfig(run_id=run or run_id, tasks_path=str(tasks), trajectories_path=str(trajectories),
                               export=export, renderers=render or [])
    deps = ExportDeps(renderers=default_renderers(config.renderers))
    stage = run_export(config, workspace, deps)
    stage_dir = StageDir.open(workspace, config.run_id, "export")
    manifest = ExportManifest.model_validate_json((stage_dir.path / EXPORT_MANIFEST).read_bytes())
    if to is not None:
        for ref in stage.outputs:
            target = to / ref.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stage_dir.path / ref.path, target)
    if as_json:
        emit_json(manifest.model_dump(mode="json"))
        return
    _print_summary(manifest, stage_dir.path, to)


def _print_summary(manifest: ExportManifest, path: Path, to: Path | None) -> None:
    out = console()
    out.print("funnel: " + ", ".join(f"{k} {manifest.counts[k]}" for k in FUNNEL if k in manifest.counts))
    table = Table("format", "train", "validation", "test", "heldout")
    formats: list[ExportFormat] = list(manifest.config.formats)
    for fmt in formats:
        table.add_row(fmt, *(str(manifest.counts.get(f"{fmt}.{s}", 0)) for s in ("train", "validation", "test", "heldout")))
    out.print(table)
    if manifest.drop_reasons:
        out.print("dropped: " + ", ".join(f"{k} {v}" for k, v in manifest.drop_reasons.items()))
    for name, stats in manifest.renderers.items():
        out.print(f"rendered through {name}: {stats['samples']} samples, longest {stats['longest']} tokens "
                  f"(max {stats['max_tokens']}), mean {stats['mean']}")
    out.print(f"written to {path}" + (f" and {to}" if to else ""))


def _print_report(report: ValidationReport, indent: str = "") -> None:
    out = console()
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    extra = f", {report.replayed} replayed" if report.replayed else ""
    out.print(f"{indent}{report.path}: {report.kind}, {report.records} record(s){extra}: {status}")
    for problem in report.problems[:20]:
        out.print(f"{indent}  - {problem}")
    if len(report.problems) > 20:
        out.print(f"{indent}  ... and {len(report.problems) - 20} more")
    for part in report.parts:
        _print_report(part, indent + "  ")


@app.command("validate")
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="A tasks/trajectories JSONL, an exported file, or an export directory.")],
    tasks: Annotated[Path | None, typer.Option("--tasks", help="Tasks to replay trajectories against.")] = None,
    sample: Annotated[int, typer.Option("--sample", min=0, help="Trajectories to replay.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the replay sample.")] = 0,
) -> None:
    """Check a file against its schema and replay a sample of trajectories to their recorded hashes."""
    report = validate_path(path, tasks_path=tasks, sample=sample, seed=seed)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)
