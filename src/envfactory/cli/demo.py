"""`envfactory demo`: the main job until `envfactory run` exists (DESIGN §11).

It runs every stage that has landed, on embedded defaults, and ends with a summary. First the runtime:
for each bundled environment, one episode of schema-guided calls is run (see
`envfactory.cli._episodes`), with fork, snapshot, restore and replay checks. Then one pass through each
other landed layer (`envfactory.cli._stages`): the sandbox, rewards, serving over HTTP, the resource
catalog, EnvGen (an SES environment built, verified and differential-tested against moto; shipped
library environments re-verified), the tool graph and the embedded local model. The run directory `<workspace>/runs/<run-id>/` then holds:

- `manifest.json`: a `RunManifest`. Its run id and `created_at` come from the configuration and the
  seed, never from the wall clock.
- `episodes.jsonl`: one line per environment with call counts, errors by kind, hashes and checks.
- `calls/<env>.jsonl`: every call of the episode with its result.
- `stages.jsonl`: one line per further stage with its status and deterministic details.

The same seed and options give byte-identical files. Timings are printed, never written. The exit code
is 1 when an environment fails to load or a check or stage fails; a stage whose optional part is not
installed is reported as skipped, with the command that installs it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import envfactory
from envfactory.cli._episodes import EpisodeResult, call_record, planned_calls, run_episode
from envfactory.cli._output import console, write_atomic
from envfactory.cli._stages import (
    StageResult,
    stage_catalog,
    stage_envgen,
    stage_graph,
    stage_model,
    stage_rewards,
    stage_sandbox,
    stage_serving,
)
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.runtime import bundled_env_names, load_env
from envfactory.runtime.sources import DEFAULT_EPOCH
from envfactory.spec import RunManifest, canonical_json, content_hash

DEFAULT_RANDOM_CALLS = 300
_PACKAGES = ("pydantic", "pydantic-core", "orjson", "jsonschema-rs", "typer", "rich")


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(canonical_json(record) + b"\n" for record in records)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git_commit() -> str | None:
    """The commit of the source checkout envfactory runs from, if it runs from one."""
    source = Path(envfactory.__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def build_manifest(config: dict[str, Any], seed: int) -> RunManifest:
    """The run's manifest; id and timestamp are functions of the config and seed."""
    run_id = f"demo-seed{seed}-{content_hash(config)[:10]}"
    created = (DEFAULT_EPOCH + timedelta(seconds=seed)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return RunManifest(
        run_id=run_id,
        command="envfactory demo",
        created_at=created,
        envfactory_version=envfactory.__version__,
        config=config,
        package_versions=_package_versions(),
        git_commit=_git_commit(),
        seeds={"demo": seed},
    )


def _summary_table(results: list[EpisodeResult], failures: dict[str, str], timings: dict[str, float]) -> Table:
    table = Table(title="demo summary", title_justify="left")
    table.add_column("environment", style="bold", no_wrap=True)
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("ok", justify="right", no_wrap=True)
    table.add_column("errors by kind", no_wrap=True)
    table.add_column("checks", no_wrap=True)
    table.add_column("final hash", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for result in results:
        errors = "\n".join(f"{kind} {count}" for kind, count in result.error_counts().items()) or "none"
        failed = [name for name, ok in result.checks.items() if not ok]
        checks = Text(f"{len(result.checks)}/{len(result.checks)} ok", style="green") if not failed else Text(
            "failed: " + ", ".join(failed), style="red"
        )
        table.add_row(
            result.env, str(len(result.log)), str(result.ok_count()), errors, checks,
            result.final_hash[:12], f"{timings[result.env]:.2f}s",
        )
    for name, message in failures.items():
        table.add_row(name, "", "", "", Text(f"cannot load: {message.splitlines()[0]}", style="red"), "", "")
    return table


def _stage_table(results: list[StageResult], times: dict[str, float]) -> Table:
    table = Table(title="stages", title_justify="left")
    table.add_column("stage", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("result", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    styles = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for result in results:
        shown = result.summary + (f"\n{result.note}" if result.note else "")
        table.add_row(result.name, Text(result.status, style=styles[result.status]), shown,
                      f"{times.get(result.name, 0.0):.2f}s")
    return table


def _progress_columns() -> tuple[Any, ...]:
    return (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def _run_episodes(names: list[str], seed: int, calls: int, out: Console,
                  ) -> tuple[list[EpisodeResult], dict[str, str], dict[str, float]]:
    """One episode per named bundled environment, in order: (results, load failures by name, seconds by name)."""
    results: list[EpisodeResult] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    with Progress(*_progress_columns(), console=out, transient=True) as progress:
        for name in names:
            t0 = time.perf_counter()
            try:
                env = load_env(name)
            except EnvFactoryError as exc:
                failures[name] = str(exc)
                continue
            task = progress.add_task(name, total=planned_calls(env, calls))
            result = run_episode(env, seed, calls, functools.partial(progress.advance, task))
            timings[name] = time.perf_counter() - t0
            results.append(result)
    return results, failures, timings


def _run_stages(results: list[EpisodeResult], workspace: Path, seed: int, out: Console,
                ) -> tuple[list[StageResult], dict[str, float]]:
    """The demo's stages in a fixed order; an `EnvFactoryError` fails its stage, not the demo."""
    plan: list[tuple[str, Any]] = [
        ("sandbox", lambda: stage_sandbox(results, seed)),
        ("rewards", lambda: stage_rewards(seed)),
        ("serving", lambda: stage_serving(seed)),
        ("catalog", lambda: stage_catalog(None, lambda _: None)),
        ("envgen", lambda: stage_envgen(seed)),
        ("graph", lambda: stage_graph(seed)),
        ("model", lambda: stage_model(workspace, seed)),
    ]
    stage_results: list[StageResult] = []
    stage_times: dict[str, float] = {}
    with Progress(*_progress_columns(), console=out, transient=True) as progress:
        task = progress.add_task("stages", total=len(plan))
        for name, run in plan:
            progress.update(task, description=f"stage: {name}")
            t0 = time.perf_counter()
            try:
                stage_results.append(run())
            except EnvFactoryError as exc:
                stage_results.append(StageResult(name, "failed", f"{type(exc).__name__}: {exc}"))
            stage_times[name] = time.perf_counter() - t0
            progress.advance(task)
    return stage_results, stage_times


def demo(
    workspace: Annotated[
        Path,
        typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False,
                     help="Workspace directory; the run goes to <workspace>/runs/<run-id>/."),
    ] = Path("workspace"),
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every session and random choice.")] = 0,
    calls: Annotated[
        int, typer.Option("--calls", min=0, help="Seeded-random calls per environment (after the scripted ones).")
    ] = DEFAULT_RANDOM_CALLS,
    envs: Annotated[
        list[str] | None, typer.Option("--env", help="Only this bundled environment (repeatable).")
    ] = None,
    stages: Annotated[
        bool, typer.Option("--stages/--no-stages", help="Also run the sandbox, rewards, serving, catalog and model stages.")
    ] = True,
) -> None:
    """Run the main job on embedded defaults: an episode per bundled environment, then a summary."""
    started = time.perf_counter()
    names = bundled_env_names()
    if envs:
        unknown = sorted(set(envs) - set(names))
        if unknown:
            raise SpecError(f"unknown bundled environment(s) {', '.join(unknown)}; available: {', '.join(names)}")
        names = [name for name in names if name in envs]
    config: dict[str, Any] = {"seed": seed, "random_calls": calls, "envs": names, "stages": stages}
    manifest = build_manifest(config, seed)
    run_dir = workspace / "runs" / manifest.run_id
    out = console()
    out.print(Text.assemble(("envfactory demo", "bold"), f" · seed {seed} · {len(names)} environment(s) → {run_dir}"))

    results, failures, timings = _run_episodes(names, seed, calls, out)
    stage_results: list[StageResult] = []
    stage_times: dict[str, float] = {}
    if stages:
        stage_results, stage_times = _run_stages(results, workspace, seed, out)
        write_atomic(run_dir / "stages.jsonl", _jsonl([r.as_record() for r in stage_results]))

    for result in results:
        write_atomic(run_dir / "calls" / f"{result.env}.jsonl", _jsonl([call_record(c, r) for c, r in result.log]))
    episodes = [result.record() for result in results] + [
        {"env": name, "error": message} for name, message in failures.items()
    ]
    write_atomic(run_dir / "episodes.jsonl", _jsonl(episodes))
    write_atomic(run_dir / "manifest.json", manifest.to_json_bytes() + b"\n")

    out.print(_summary_table(results, failures, timings))
    if stage_results:
        out.print(_stage_table(stage_results, stage_times))
    total_calls = sum(len(r.log) for r in results)
    written = "manifest.json, episodes.jsonl, calls/" + (", stages.jsonl" if stage_results else "")
    out.print(
        f"{total_calls} calls, {sum(r.ok_count() for r in results)} ok, in {time.perf_counter() - started:.2f}s · "
        f"wrote {run_dir}/{written}"
    )
    if failures or not all(r.passed for r in results) or any(r.status == "failed" for r in stage_results):
        raise typer.Exit(1)
