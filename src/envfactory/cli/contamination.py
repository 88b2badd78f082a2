"""`envfactory eval contamination`: overlap of our environments and tasks with BFCL and τ²-bench.

- Environments: the bundled ones by default; `--env NAME|PATH` (repeatable) and `--envs-dir DIR` (every
  sub-directory holding an `env.json` or `spec.json`) replace them. Python toolkits that are not bundled
  need `--trust` (their spec is derived by importing them).
- Tasks: `--tasks FILE` (JSONL of `Task`s) adds task-level overlap with the benchmarks' task texts.
- Benchmarks: `--benchmark bfcl|tau2` (repeatable; default both), loaded by `resources.benchmarks` from the
  installed packages; a missing one fails with the command that installs it.
- Text similarity is lexical by default (`--embedder none`); `--embedder static|minilm` uses an embedder
  from `llm` (the static one must be built once: `envfactory llm setup-static`).
- Prints a table (`--json`: the full `ContaminationReport`); `--out FILE` also writes the report as JSON;
  `--check` exits with status 1 when an environment or task is flagged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from envfactory.cli._output import console, emit_json, pretty_json
from envfactory.errors import SpecError
from envfactory.resources.benchmarks import BENCHMARKS, benchmark_tasks, benchmark_tool_sets
from envfactory.spec import EnvSpec, Task
from envfactory.spec.benchmark import BenchmarkName
from envfactory.store import write_atomic
from envfactory.verify.contamination import (
    SET_THRESHOLD,
    ContaminationConfig,
    ContaminationReport,
    EmbedFunction,
    contamination_reasons,
    contamination_report,
    is_task_contaminated,
)

_ENV_FILES = ("env.json", "spec.json")


def _env_specs(refs: list[str], envs_dir: Path | None, trust: bool) -> list[EnvSpec]:
    from envfactory.runtime import bundled_env_names, load_env

    chosen: list[str | Path] = [*refs]
    if envs_dir is not None:
        if not envs_dir.is_dir():
            raise SpecError(f"--envs-dir {envs_dir}: not a directory")
        chosen += sorted(p for p in envs_dir.iterdir() if p.is_dir() and any((p / f).is_file() for f in _ENV_FILES))
    if not chosen:
        chosen = [*bundled_env_names()]
    return [load_env(ref, trusted=trust).spec for ref in chosen]


def _tasks(path: Path | None) -> list[Task]:
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"--tasks {path}: {exc.strerror or exc}") from exc
    tasks = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                tasks.append(Task.model_validate_json(line))
            except ValueError as exc:
                raise SpecError(f"{path}:{number}: not a Task: {str(exc).splitlines()[0]}") from exc
    return tasks


def _embedder(kind: str, models_dir: Path | None) -> tuple[EmbedFunction | None, str]:
    if kind == "none":
        return None, ""
    from envfactory.llm import make_embedder

    embedder = make_embedder(kind, models_dir=models_dir)
    return embedder.embed, embedder.model_id


def _print(report: ContaminationReport) -> None:
    out = console()
    config = report.config
    table = Table(title=f"Environments vs benchmark tool sets (text: {report.text_method}; "
                        f"threshold {config.set_threshold:.2f}, ≥ {config.min_matched_tools} tools)")
    for column in ("environment", "closest tool set", "score", "matched", "verdict"):
        table.add_column(column, justify="right" if column in ("score", "matched") else "left")
    for env in report.envs:
        top = env.top
        reasons = contamination_reasons(env, config.set_threshold, config.min_matched_tools)
        table.add_row(
            env.env, top.tool_set if top else "-", f"{top.score:.3f}" if top else "-",
            f"{len(top.matches)}/{top.their_tools}" if top else "-",
            Text.assemble(("CONTAMINATED", "red"), ": " + "; ".join(reasons)) if reasons else Text("clean", "green"),
        )
    out.print(table)
    if report.tasks:
        ranked = sorted(report.tasks, key=lambda t: (-max(t.ngram.score if t.ngram else 0.0,
                                                          t.embedding.score if t.embedding else 0.0), t.task))
        tasks = Table(title=f"Tasks vs {report.benchmark_tasks} benchmark tasks ({len(report.contaminated_tasks)} of "
                            f"{len(report.tasks)} flagged; n-gram ≥ {config.task_ngram_threshold:.2f}, "
                            f"embedding ≥ {config.task_embedding_threshold:.2f}); closest 10")
        for column in ("task", f"{config.ngram}-gram", "nearest (n-gram)", "embedding", "nearest (embedding)", "verdict"):
            tasks.add_column(column)
        for item in ranked[:10]:
            tasks.add_row(
                item.task[:12],
                f"{item.ngram.score:.3f}" if item.ngram else "-", item.ngram.benchmark_task if item.ngram else "-",
                f"{item.embedding.score:.3f}" if item.embedding else "-",
                item.embedding.benchmark_task if item.embedding else "-",
                Text("flagged", "red") if is_task_contaminated(item, config) else Text("clean", "green"),
            )
        out.print(tasks)
    out.print(f"{len(report.contaminated_envs)} of {len(report.envs)} environments contaminated"
              + (f"; {len(report.contaminated_tasks)} of {len(report.tasks)} tasks flagged" if report.tasks else ""))


def contamination(
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="Environment name or path (repeatable; default: the bundled environments).")] = None,
    envs_dir: Annotated[Path | None, typer.Option(
        "--envs-dir", file_okay=False, help="Every environment directory directly under DIR.")] = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", dir_okay=False, help="JSONL of Tasks to check.")] = None,
    benchmark: Annotated[list[str] | None, typer.Option(
        "--benchmark", help="bfcl or tau2 (repeatable; default both).")] = None,
    embedder: Annotated[Literal["none", "static", "minilm"], typer.Option(
        "--embedder", help="Text similarity: lexical (none) or an embedder from `llm`.")] = "none",
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="ENVFACTORY_MODELS_DIR", file_okay=False,
        help="Where local model files are assembled (default ~/.cache/envfactory/models).")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", min=0.0, max=1.0, help="Tool-set overlap score that flags an environment.")] = SET_THRESHOLD,
    trust: Annotated[bool, typer.Option("--trust", help="Import python toolkits that are not bundled.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    out: Annotated[Path | None, typer.Option("--out", dir_okay=False, help="Also write the report here.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit with status 1 when anything is flagged.")] = False,
) -> None:
    """Overlap of our environments' tools and our tasks with BFCL v3 multi-turn and τ²-bench."""
    names = benchmark or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise typer.BadParameter(f"unknown benchmark(s) {unknown}; use {' or '.join(BENCHMARKS)}", param_hint="--benchmark")
    chosen: list[BenchmarkName] = [b for b in BENCHMARKS if b in names]
    envs = _env_specs(env or [], envs_dir, trust)
    our_tasks = _tasks(tasks)
    embed, embedder_id = _embedder(embedder, models_dir)
    report = contamination_report(
        envs, benchmark_tool_sets(chosen),
        tasks=our_tasks, benchmark_tasks=benchmark_tasks(chosen) if our_tasks else [],
        embed=embed, embedder_id=embedder_id, config=ContaminationConfig(set_threshold=threshold),
    )
    if out is not None:
        write_atomic(out, pretty_json(report.model_dump(mode="json")))
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        _print(report)
    if check and (report.contaminated_envs or report.contaminated_tasks):
        raise typer.Exit(1)
