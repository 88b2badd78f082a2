"""`envfactory synth trajectories`: queries, refinement and solver-verified trajectories for the tasks of a
finished `synth tasks` run (`synth.trajectories.run_synth_trajectories`).

`--from RUN` names the task run (its `synth-tasks` stage must be complete); artifacts go to
`<workspace>/runs/RUN/synth-trajectories/`. `--preset sft-single|sft-conv|rl` chooses the shape, `--k` the
solver attempts per query (k > 1 needs `--temperature` above 0), `--no-refine` switches refinement off (the
ablation). Role models: `--llm` (solver), `--writer-llm` (queries and refinement), `--user-llm` (user
simulator), `--judge-llm` (the judge of read-only answers; no judge without it), each `local`, `openai:URL`,
`hf:DIR` or `replay:FILE` (writer and user default to the solver's model). `--model` names the endpoint's
model (or the local model) for every role; a role spec ending in `#NAME` gives that role its own (an
endpoint's model name, a local model key, or for `replay:FILE#ID` the recorded model id to answer as, when
one `--cassette` recorded several roles' models). The stage manifest's `versions` record each role's model
id (and the judge's prompt hash). A killed run resumes from its finished items when run again. Progress
shows per task; the funnel is printed at the end.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from envfactory.cli._output import console, emit_json
from envfactory.cli._output import funnel_table as stage_funnel_table
from envfactory.cli.eval import parse_llm
from envfactory.errors import SpecError
from envfactory.llm import LLMClient, LLMSettings, make_client
from envfactory.spec.synth_trajectories import (
    TRAJECTORY_FUNNEL_STAGES,
    SynthTrajectoriesConfig,
    TrajectoryFunnel,
)
from envfactory.store import Workspace
from envfactory.synth.trajectories import STAGE, TrajectoryDeps, read_tasks, run_synth_trajectories


def role_settings(spec: str, model: str | None, cassette: Path | None, api_key: str | None = None) -> LLMSettings:
    """The settings of one role: `spec` as `--llm` takes it, optionally ending in `#NAME` (this role's own
    model name; see the module docstring), else `model`. `envfactory run` uses it for the role fields of
    its config. A `SpecError` for a spec ending in a bare `#`."""
    own: str | None = None
    if "#" in spec:
        spec, own = spec.rsplit("#", 1)
        if not own:
            raise SpecError(f"a role spec ending in '#' names no model: {spec}#")
    settings = parse_llm(spec, model if own is None or spec.startswith("replay:") else own, api_key, cassette, None)
    if settings.provider == "replay":
        settings = dataclasses.replace(settings, replay_model=own)
    return settings


def role_client(spec: str, model: str | None, space: Workspace, cassette: Path | None) -> LLMClient:
    """The client of one role (`role_settings`); cached in the workspace unless replaying."""
    settings = role_settings(spec, model, cassette)
    cache = None if settings.provider == "replay" else space.open_llm_cache()
    return make_client(settings, cache=cache)


def trajectories(
    from_run: Annotated[str, typer.Option("--from", help="The run whose synth-tasks stage holds the tasks.")],
    preset: Annotated[Literal["sft-single", "sft-conv", "rl"], typer.Option("--preset")] = "sft-single",
    k: Annotated[int, typer.Option("--k", min=1, max=16, help="Solver attempts per query.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=2.0)] = 0.0,
    no_refine: Annotated[bool, typer.Option("--no-refine", help="Keep the explicit queries (ablation).")] = False,
    max_tasks: Annotated[int | None, typer.Option("--tasks", min=1, help="Tasks given queries (default all).")] = None,
    solve_tasks: Annotated[int | None, typer.Option("--solve", min=0, help="Of those, tasks solved.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    llm: Annotated[str, typer.Option("--llm", help="Solver: local, openai:URL, hf:DIR or replay:FILE.")] = "local",
    writer_llm: Annotated[str | None, typer.Option("--writer-llm", help="Query writer (default: --llm).")] = None,
    user_llm: Annotated[str | None, typer.Option("--user-llm", help="User simulator (default: --llm).")] = None,
    judge_llm: Annotated[str | None, typer.Option("--judge-llm", help="Judge of read-only answers (default: none).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for openai:URL providers.")] = None,
    cassette: Annotated[Path | None, typer.Option("--cassette", help="Record every answer to this file.")] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE",
                                            file_okay=False)] = Path("workspace"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest and funnel as JSON.")] = False,
) -> None:
    """Write queries, refine them, solve with the agent; keep what verification passes."""
    try:
        config = SynthTrajectoriesConfig(from_run=from_run, preset=preset, k=k, temperature=temperature,
                                         refine=False if no_refine else None, max_tasks=max_tasks,
                                         solve_tasks=solve_tasks, seed=seed)
    except ValidationError as exc:
        raise SpecError(f"bad synth trajectories options: {exc.errors()[0]['msg']}") from exc
    space = Workspace(workspace)
    read_tasks(space, from_run)  # a missing or unfinished task stage fails before any model is loaded
    solver = role_client(llm, model, space, cassette)
    writer = role_client(writer_llm, model, space, cassette) if writer_llm else solver
    user = role_client(user_llm, model, space, cassette) if user_llm else None
    judge = role_client(judge_llm, model, space, cassette) if judge_llm else None
    out = console()
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True, disable=as_json) as progress:
        bar = progress.add_task("tasks", total=None)

        def on_progress(done: int, total: int, status: str) -> None:
            progress.update(bar, completed=done, total=total, description=f"tasks (last: {status})")

        manifest = run_synth_trajectories(config, space, TrajectoryDeps(writer=writer, solver=solver, user=user,
                                                                        judge=judge, progress=on_progress))
    stage_dir = space.run_path(from_run) / STAGE
    funnel = TrajectoryFunnel.model_validate_json((stage_dir / "funnel.json").read_bytes())
    if as_json:
        emit_json({"manifest": manifest.model_dump(mode="json"), "funnel": funnel.model_dump(mode="json")})
        return
    out.print(funnel_table(funnel))
    out.print(f"{funnel.stages['verified']} verified trajectories ({funnel.conversational} conversational), "
              f"{funnel.model_calls} model calls, {manifest.timings.get('wall_s', 0.0):.0f} s → {stage_dir}")
    if funnel.judge is not None:
        j = funnel.judge
        out.print(f"judge {j.model}: {j.judged} read-only attempts judged, {j.passed} passed, {j.failed} failed, "
                  f"{j.errors} errors; {j.judge_only} judge-only passes (not verified), {j.disagreed} verified "
                  "attempts it failed")


def funnel_table(funnel: TrajectoryFunnel) -> Table:
    """The trajectory funnel: each stage, the tasks that reached it and the drop reasons."""
    return stage_funnel_table(f"synth trajectories funnel ({funnel.preset}, k={funnel.k}, seed {funnel.seed}); "
                              f"over-specification explicit {funnel.explicit_overspec:.2f} → refined "
                              f"{funnel.refined_overspec:.2f}", TRAJECTORY_FUNNEL_STAGES, funnel.stages, funnel.drops)
