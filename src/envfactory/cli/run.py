"""`envfactory run --config FILE [--resume] [--executor serial|pool|ray] [--ray-address A]`: the main job.

Resources → environments → tool graph → tasks → trajectories → dataset, chained from one `RunConfig`
(spec/pipeline.py) into one run directory, `<workspace>/runs/<run-id>/`:

    config.json     the resolved config (every default filled in)
    manifest.json   RunManifest: resolved config, versions, git commit, seeds, prompt hashes, and the
                    sha256 of every artifact the stages wrote (`artifacts`)
    summary.json    RunSummary: each stage's status, counts, drops, failures and seconds
    <stage>/        one directory per stage with its artifacts and StageManifest (store.StageDir)

This module only maps the file and flags to typed configs, runs each layer's `run_<stage>` function in
order and renders progress; the stages live in their layers (`build.stage.run_library`,
`graph.stage.run_graph`, `synth.run_synth_tasks`, `synth.run_synth_trajectories`, `export.run_export`,
`train.run_train`). A stage whose layer does not provide its function yet is reported as
`not_available` (never imitated), and the run ends `partial`.

- Config errors — unknown keys, bad values, missing files, names the shipped library does not hold —
  are all reported at once with their paths (`stages.synth_tasks.tasks: ...`) before any work starts.
- The run id is `<name>-<12 hex of the config digest>` (the executor is not part of it), so the same
  config resumes the same run; a finished stage whose manifest still matches its outputs and config is
  not run again (`--resume`), an unfinished one is resumed by its own stage function.
- The executor is made before any work (Ray missing: an error naming the install command).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.table import Table

import envfactory
from envfactory.build.stage import shipped_selection
from envfactory.cli._output import console, emit_json, error_console
from envfactory.cli._run_stages import (
    ADAPTERS,
    NEEDS,
    STAGE_SOURCES,
    RunContext,
    export_format_problems,
    stage_function,
)
from envfactory.cli.demo import _git_commit, _package_versions
from envfactory.errors import EnvFactoryError
from envfactory.exec import make_executor
from envfactory.runtime import library_root
from envfactory.runtime.sources import DEFAULT_EPOCH
from envfactory.spec import (
    BuiltLibrary,
    ExecutorConfig,
    PipelineStageRecord,
    RunConfig,
    RunManifest,
    RunSummary,
    ShippedLibrary,
    StageManifest,
)
from envfactory.store import RunDir, StageDir, Workspace

WorkspaceOption = Annotated[
    Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False, help="Workspace directory.")
]

class RunConfigError(EnvFactoryError):
    """A run config with problems; the message lists every one with its path."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        """`problems`: one line each, already prefixed with the config path of the field at fault."""
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{listed}")


# -- the config ---------------------------------------------------------------------------------------------
def _location(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator's value in the path of a tagged union ("library.shipped.envs")
    parts = [str(p) for p in loc if p not in ("shipped", "build")]
    return ".".join(parts) or "(top level)"


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = _location(tuple(error["loc"]))
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key")
        else:
            problems.append(f"{where}: {error['msg']} (got {orjson.dumps(error.get('input')).decode()[:80]})")
    return problems


def _section(raw: Any, *keys: str) -> Any:
    for key in keys:
        raw = raw.get(key) if isinstance(raw, dict) else None
    return raw


def resolve_path(base: Path, value: str) -> Path:
    """A path from a config file: relative to the file's directory unless absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _file_problems(raw: Any, base: Path) -> list[str]:
    """Missing files and names the shipped library does not hold (checked on the raw file, so that they
    are reported together with the schema's problems)."""
    problems = []
    library = _section(raw, "stages", "library")
    if (isinstance(library, dict) and library.get("source") == "build" and isinstance(library.get("config"), str)
            and not resolve_path(base, library["config"]).is_file()):
        problems.append(f"stages.library.config: file not found: {resolve_path(base, library['config'])}")
    llm = _section(raw, "llm")
    if isinstance(llm, str) and llm.startswith("replay:") and not resolve_path(base, llm[7:]).is_file():
        problems.append(f"llm: cassette not found: {resolve_path(base, llm[7:])}")
    for role in ("writer_llm", "user_llm", "judge_llm"):
        spec = _section(raw, "stages", "synth_trajectories", role)
        if isinstance(spec, str) and spec.startswith("replay:"):
            cassette = resolve_path(base, spec[7:].split("#", 1)[0])
            if not cassette.is_file():
                problems.append(f"stages.synth_trajectories.{role}: cassette not found: {cassette}")
    formats = _section(raw, "stages", "export", "formats")
    if isinstance(formats, list):
        problems += export_format_problems([f for f in formats if isinstance(f, str)])
    if isinstance(library, dict) and library.get("source", "shipped") == "shipped":
        try:
            shipped_selection(library_root(), ShippedLibrary.model_validate(library))
        except ValidationError:
            pass  # reported by the schema check
        except EnvFactoryError as exc:
            problems += str(exc).split("; ")
    return problems


def load_run_config(path: Path) -> RunConfig:
    """Read, validate and resolve a run config; a `RunConfigError` lists every problem at once."""
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise RunConfigError(path, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except orjson.JSONDecodeError as exc:
        raise RunConfigError(path, [f"not JSON: {exc}"]) from exc
    problems: list[str] = []
    config: RunConfig | None = None
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
    problems += _file_problems(raw, path.resolve().parent)
    if problems or config is None:
        raise RunConfigError(path, problems)
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    if isinstance(config.stages.library, BuiltLibrary):
        library = config.stages.library.model_copy(update={"config": str(resolve_path(base, config.stages.library.config))})
        updates["stages"] = config.stages.model_copy(update={"library": library})
    if config.llm.startswith("replay:"):
        updates["llm"] = f"replay:{resolve_path(base, config.llm[7:])}"
    section = config.stages.synth_trajectories
    roles = {f"{role}_llm": _resolved_replay(base, spec) for role, spec in section.role_llms().items()
             if spec.startswith("replay:")}
    if roles:
        stages = updates.get("stages", config.stages)
        updates["stages"] = stages.model_copy(update={"synth_trajectories": section.model_copy(update=roles)})
    return config.model_copy(update=updates) if updates else config


def _resolved_replay(base: Path, spec: str) -> str:
    """`replay:FILE[#ID]` with FILE resolved from the config's directory (the `#ID` kept)."""
    path, hash_mark, model = spec[7:].partition("#")
    return f"replay:{resolve_path(base, path)}{hash_mark}{model}"


# -- the run ------------------------------------------------------------------------------------------------
def _enabled(config: RunConfig, stage: str) -> bool:
    section = getattr(config.stages, stage.replace("-", "_"))
    return bool(getattr(section, "enabled", True))


def _record(stage: str, manifest: StageManifest, note: str = "") -> PipelineStageRecord:
    status = manifest.status
    return PipelineStageRecord(stage=stage, status=status, note=note or (manifest.error or ""),
                               manifest_digest=manifest.content_digest(), counts=manifest.counts,
                               drops=manifest.drops, timings=manifest.timings)


def run_stage(ctx: RunContext, stage: str) -> PipelineStageRecord:
    """Run (or, when it already finished with the same config, take) one stage; never raises for the
    stage's own failures: they become a `failed` record with the reason."""
    if not _enabled(ctx.config, stage):
        return PipelineStageRecord(stage=stage, status="skipped", note="disabled in the config")
    needed = NEEDS.get(stage)
    if needed is not None and ctx.records.get(needed, PipelineStageRecord(stage=needed, status="pending")).status not in (
            "complete", "partial"):
        return PipelineStageRecord(stage=stage, status="skipped", note=f"needs the {needed} stage, which did not finish")
    adapter = ADAPTERS.get(stage)
    if adapter is None or stage_function(stage) is None:
        _, _, issue = STAGE_SOURCES[stage]
        landed = stage_function(stage) is not None
        why = ("its layer has landed but `envfactory run` does not call it yet" if landed
               else f"not available yet ({issue} has not landed)")
        return PipelineStageRecord(stage=stage, status="not_available", note=why)
    directory = StageDir(ctx.run, stage)
    if directory.is_complete():
        manifest = directory.read_manifest()
        assert manifest is not None
        ctx.say(f"{stage}: already complete, kept")
        return _record(stage, manifest, "kept from an earlier attempt of this run")
    started = time.perf_counter()
    ctx.say(f"{stage}: started")
    try:
        manifest = adapter(ctx)
    except Exception as exc:  # recorded, so the run ends with its summary and can be resumed
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:400] if str(exc) else ''}"
        if not isinstance(exc, EnvFactoryError):  # a bug: keep its traceback for whoever fixes it
            log = ctx.run.write_bytes(f"logs/{stage}.traceback.txt", traceback.format_exc().encode("utf-8"))
            note += f" (traceback: {log})"
        return PipelineStageRecord(stage=stage, status="failed", note=note,
                                   timings={"wall_s": round(time.perf_counter() - started, 3)})
    record = _record(stage, manifest)
    wanted = ctx.config.stages.synth_trajectories.min_verified
    if stage == "synth-trajectories" and record.counts.get("verified", 0) < wanted:
        record = record.model_copy(update={"status": "partial", "note": (
            f"{record.counts.get('verified', 0)} solver-verified trajectories, fewer than min_verified {wanted}")})
    if ctx.tokens(stage):
        record = record.model_copy(update={"counts": {**record.counts, "model_tokens": ctx.tokens(stage)}})
    timings = {**record.timings, "wall_s": round(time.perf_counter() - started, 3)}
    ctx.say(f"{stage}: {manifest.status} in {timings['wall_s']:.1f}s — "
            + ", ".join(f"{k} {v}" for k, v in list(manifest.counts.items())[:6]))
    return record.model_copy(update={"timings": timings})


def _artifacts(run: RunDir, records: Mapping[str, PipelineStageRecord]) -> dict[str, str]:
    """Every output the finished stages recorded, `<stage>/<path>` → sha256 (deterministic: no timings)."""
    artifacts: dict[str, str] = {}
    for stage in records:
        manifest = StageDir(run, stage).read_manifest()
        if manifest is not None:
            artifacts |= {f"{stage}/{ref.path}": ref.sha256 for ref in manifest.outputs}
    return dict(sorted(artifacts.items()))


def _prompt_hashes() -> dict[str, str]:
    from envfactory.agent.prompts import prompt_hash as agent_prompt_hash
    from envfactory.synth.trajectories import prompt_hash as synth_prompt_hash

    return {"agent": agent_prompt_hash(), "synth": synth_prompt_hash()}


def run_manifest(config: RunConfig, run_id: str, artifacts: dict[str, str]) -> RunManifest:
    """The run's manifest (its timestamp is a function of the seed: manifests are reproducible)."""
    return RunManifest(
        run_id=run_id, command="envfactory run",
        created_at=(DEFAULT_EPOCH + timedelta(seconds=config.seed)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        envfactory_version=envfactory.__version__, config=config.model_dump(mode="json"),
        package_versions=_package_versions(), git_commit=_git_commit(), seeds={"run": config.seed},
        prompt_hashes=_prompt_hashes(), artifacts=artifacts,
    )


def _without_executor(config: Any) -> Any:
    return {k: v for k, v in config.items() if k != "executor"} if isinstance(config, dict) else config


def open_run(config: RunConfig, workspace: Workspace, run_id: str, resume: bool) -> RunDir:
    """The run directory: new, or (with `resume`) the earlier one of the same config."""
    path = workspace.run_path(run_id)
    config_bytes = config.to_json_bytes() + b"\n"
    if path.exists() and any(path.iterdir()):
        earlier = path / "config.json"
        # the executor may change between attempts: it never changes an artifact
        if earlier.is_file() and _without_executor(orjson.loads(earlier.read_bytes())) != _without_executor(
                orjson.loads(config_bytes)):
            raise EnvFactoryError(f"run {run_id} was started with another config ({earlier}); use another --run-id")
        if not resume:
            raise EnvFactoryError(f"run {run_id} already exists in {workspace.root}; pass --resume to continue it "
                                  "or use another --run-id")
    run = RunDir.create(workspace.ensure(), run_id)
    run.write_bytes("config.json", config_bytes)
    return run


def execute(config: RunConfig, workspace: Workspace, *, run_id: str | None = None, resume: bool = False,
            say: Callable[[str], None] = lambda message: None) -> RunSummary:
    """Run every stage of `config` in order and write the manifest and summary (the CLI's core)."""
    executor = make_executor(config.executor)  # before any work: Ray missing fails here
    try:
        run = open_run(config, workspace, run_id or config.default_run_id(), resume)
        ctx = RunContext(config, workspace, run, executor, resume, say)
        ctx.prepare()
        run.write_manifest(run_manifest(config, run.run_id, {}))
        say(f"run {run.run_id} in {run.path} on the {executor.name} executor ({executor.workers} worker(s))")
        from envfactory.spec import PIPELINE_STAGES

        for stage in PIPELINE_STAGES:
            record = run_stage(ctx, stage)
            ctx.records[stage] = record
            if record.status == "failed":
                say(f"{stage}: failed — {record.note}")
                break
        records = [ctx.records.get(s) or PipelineStageRecord(stage=s, status="pending", note="not reached")
                   for s in PIPELINE_STAGES]
    finally:
        executor.close()
    wanted = [r for r in records if r.status != "skipped"]
    status = ("failed" if any(r.status in ("failed", "pending") for r in wanted)
              else "complete" if all(r.status == "complete" for r in wanted) else "partial")
    summary = RunSummary(run_id=run.run_id, status=status, stages=records, config=config.model_dump(mode="json"))
    run.write_bytes("summary.json", summary.to_json_bytes() + b"\n")
    finished = {r.stage: r for r in records if r.status in ("complete", "partial")}
    run.write_manifest(run_manifest(config, run.run_id, _artifacts(run, finished)))
    return summary


def headline(summary: RunSummary) -> str:
    """What the run produced, in one line: the funnel from environments to exported rows."""
    counts = {r.stage: r.counts for r in summary.stages}

    def get(stage: str, key: str) -> str:
        value = counts.get(stage, {}).get(key)
        return "—" if value is None else f"{value:,}"

    tokens = sum(r.counts.get("model_tokens", 0) for r in summary.stages)
    seconds = sum(r.timings.get("wall_s", 0.0) for r in summary.stages)
    return (f"environments {get('library', 'environments')} → chains {get('synth-tasks', 'chains')} → gated tasks "
            f"{get('synth-tasks', 'gated')} (kept {get('synth-tasks', 'kept')}) → queries "
            f"{get('synth-trajectories', 'queries')} → verified trajectories {get('synth-trajectories', 'verified')} "
            f"→ exported rows: SFT {get('export', 'sft_rows')}, RL {get('export', 'rl_rows')}; "
            f"model tokens {tokens:,}; {seconds:.0f} s in stages")


def _summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"run {summary.run_id}: {summary.status}", title_justify="left")
    for column in ("stage", "status", "produced", "dropped", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for record in summary.stages:
        produced = ", ".join(f"{k} {v}" for k, v in record.counts.items()) or record.note
        dropped = ", ".join(f"{k} ×{v}" for k, v in record.drops.items())
        seconds = f"{record.timings['wall_s']:.1f}" if "wall_s" in record.timings else ""
        table.add_row(record.stage, record.status, produced[:90], dropped[:60], seconds)
    return table


def run(
    config_path: Annotated[Path, typer.Option("--config", dir_okay=False, help="A run config JSON file (configs/run-demo.json).")],
    workspace: WorkspaceOption = Path("workspace"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the earlier run of this config.")] = False,
    executor: Annotated[str | None, typer.Option("--executor", help="serial, pool (default) or ray; overrides the config.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster (implies --executor ray).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Pool processes or local Ray CPUs.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Default: <name>-<config digest>.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the main job from one config: library → graph → tasks → trajectories → dataset."""
    config = load_run_config(config_path)
    overrides: dict[str, Any] = {}
    if executor is not None:
        if executor not in ("serial", "pool", "ray"):
            raise EnvFactoryError(f"--executor must be serial, pool or ray, not {executor!r}")
        overrides["kind"] = executor
    if ray_address is not None:
        overrides |= {"kind": "ray", "ray_address": ray_address}
    if workers is not None:
        overrides["workers"] = workers
    if overrides:
        merged = config.executor.model_dump() | overrides
        config = config.model_copy(update={"executor": ExecutorConfig.model_validate(merged)})
    err = error_console()
    started = time.perf_counter()
    summary = execute(config, Workspace(workspace), run_id=run_id, resume=resume,
                      say=lambda message: err.print(f"[{time.perf_counter() - started:7.1f}s] {message}"))
    if json_out:
        emit_json(summary.model_dump(mode="json"))
    else:
        console().print(_summary_table(summary))
        console().print(headline(summary))
        console().print(f"run directory: {Workspace(workspace).run_path(summary.run_id)}")
    if summary.status == "failed":
        raise typer.Exit(1)
