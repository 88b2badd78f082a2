"""The stage adapters of `envfactory run`: each maps the run config to one layer's typed stage config and
deps and calls that layer's `run_<stage>` function. No stage logic lives here.

| stage | function | reads |
|---|---|---|
| `library` | `build.stage.run_library` | the shipped library, or a `LibraryConfig` it builds |
| `graph` | `graph.stage.run_graph` | `library/library.json` |
| `synth-tasks` | `synth.run_synth_tasks` | the run's environments |
| `synth-trajectories` | `synth.trajectories.run_synth_trajectories` | `synth-tasks/tasks.jsonl` |
| `export` | `cli._export_stage.run_export` | `synth-tasks/tasks.jsonl` and its gold-path trajectories |
| `train` | `train.run_train` | (not wired: training has its own verb) |

`stage_function(stage)` says whether a layer provides its function yet; a stage without one is
reported `not_available` by the orchestrator, never imitated. Models are made once per run
(`RunContext.llm`) and checked before the first stage (`RunContext.prepare`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envfactory.build.stage import LibraryDeps, run_library
from envfactory.exec import Executor
from envfactory.graph import ToolGraph
from envfactory.graph.stage import GraphDeps, read_stage_graphs, run_graph
from envfactory.runtime import library_root
from envfactory.spec import BuiltLibrary, PipelineStageRecord, RunConfig, ShippedLibrary, StageManifest
from envfactory.spec.library import LibraryConfig
from envfactory.spec.pipeline import GraphStageConfig, LibrarySelection, LibraryStageConfig
from envfactory.store import RunDir, StageDir, Workspace

#: Where each later stage's function comes from, and the issue that brings it.
STAGE_SOURCES: dict[str, tuple[str, str, str]] = {
    "synth-tasks": ("envfactory.synth", "run_synth_tasks", "issue #21, synth tasks"),
    "synth-trajectories": ("envfactory.synth.trajectories", "run_synth_trajectories", "issue #22, synth trajectories"),
    "export": ("envfactory.cli._export_stage", "run_export", "issue #23, dataset export"),
    "train": ("envfactory.train", "run_train", "issue #24, training"),
}


def stage_function(stage: str) -> Callable[..., StageManifest] | None:
    """The layer's `run_<stage>` function, or None while its layer does not provide it (`library` and
    `graph` always exist)."""
    if stage not in STAGE_SOURCES:
        return ADAPTERS.get(stage)
    module_name, attribute, _ = STAGE_SOURCES[stage]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    function = getattr(module, attribute, None)
    return function if callable(function) else None


@dataclass(slots=True)
class RunContext:
    """What every adapter gets: the resolved config, the run's place, the executor, progress, models."""

    config: RunConfig
    workspace: Workspace
    run: RunDir
    executor: Executor
    resume: bool
    say: Callable[[str], None]
    records: dict[str, PipelineStageRecord] = field(default_factory=dict)
    worker_tokens: dict[str, int] = field(default_factory=dict)
    """Model tokens spent in executor workers, by stage (their clients are not this process's)."""
    _llm: Any = None
    _settings: Any = None
    _roles: dict[str, Any] = field(default_factory=dict)
    """Clients of the trajectory roles given their own model, by role, with their settings."""

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def selection(self) -> LibrarySelection:
        """The run's environments (`library/library.json`)."""
        return LibrarySelection.model_validate_json((self.run.path / "library" / "library.json").read_bytes())

    def env_dirs(self) -> list[Path]:
        """The directories of the run's environments (shipped ones in the package, built ones in the run)."""
        return [self.run.path / e.path if e.path else library_root() / e.name for e in self.selection().envs]

    def llm(self) -> Any:
        """The run's model client (made once; `config.llm`), with a usage ledger."""
        if self._llm is None:
            from envfactory.cli.eval import parse_llm
            from envfactory.llm import make_client
            from envfactory.llm.usage import UsageLedger
            from envfactory.llm.workers import API_KEY_VARIABLE

            # An endpoint's model name is not part of the config string: like `eval run --model`, it comes
            # from ENVFACTORY_LLM_MODEL (the key from ENVFACTORY_LLM_API_KEY).
            self._settings = parse_llm(self.config.llm, os.environ.get("ENVFACTORY_LLM_MODEL"),
                                       os.environ.get(API_KEY_VARIABLE), None, None)
            cache = None if self._settings.provider == "replay" else self.workspace.open_llm_cache()
            self._llm = make_client(self._settings, cache=cache, ledger=UsageLedger())
        return self._llm

    def worker_model(self) -> Any:
        """The run's model as executor workers open it (`WorkerModel`): the same settings and answer cache,
        a host's cores shared among its workers."""
        from envfactory.exec import usable_cores
        from envfactory.llm.workers import worker_model

        self.llm()
        threads = max(1, usable_cores() // max(1, self.executor.workers))
        return worker_model(self._settings, self.workspace.llm_cache_path, threads=threads)

    def role_llm(self, role: str) -> Any | None:
        """The client of a trajectory role (`writer`, `user`, `judge`) given its own model in the config
        (`stages.synth_trajectories.<role>_llm`, read as `synth trajectories --<role>-llm` reads it; an
        endpoint's model name from `#NAME`, else ENVFACTORY_LLM_MODEL), made once and sharing the run's
        usage ledger; None when the role takes the run's model (the judge: when there is no judge)."""
        spec = self.config.stages.synth_trajectories.role_llms().get(role)
        if spec is None:
            return None
        if role not in self._roles:
            from envfactory.cli.synth_trajectories import role_settings
            from envfactory.llm import make_client
            from envfactory.llm.workers import API_KEY_VARIABLE

            settings = role_settings(spec, os.environ.get("ENVFACTORY_LLM_MODEL"), None,
                                     os.environ.get(API_KEY_VARIABLE))
            cache = None if settings.provider == "replay" else self.workspace.open_llm_cache()
            self._roles[role] = (make_client(settings, cache=cache, ledger=self.llm().ledger), settings)
        return self._roles[role][0]

    def role_worker_model(self, role: str) -> Any | None:
        """`worker_model()` for a role given its own model (None: the role takes the run's)."""
        from envfactory.exec import usable_cores
        from envfactory.llm.workers import worker_model

        if self.role_llm(role) is None:
            return None
        threads = max(1, usable_cores() // max(1, self.executor.workers))
        return worker_model(self._roles[role][1], self.workspace.llm_cache_path, threads=threads)

    def prepare(self) -> None:
        """Check the dependencies of the stages that will run before any work: the models (the run's and
        each trajectory role's own) are located, verified and loaded now, so a missing one fails in the
        first seconds with its install command."""
        section = self.config.stages.synth_trajectories
        if section.enabled and stage_function("synth-trajectories") is not None:
            for client in (self.llm(), *(self.role_llm(role) for role in section.role_llms())):
                load = getattr(getattr(client, "provider", None), "load", None)
                if callable(load):
                    load()

    def tokens(self, stage: str) -> int:
        """Model tokens this run's client spent for `stage` (0 when no model was used)."""
        if self._llm is None:
            return self.worker_tokens.get(stage, 0)
        spent: int = sum(s.prompt_tokens + s.completion_tokens for s in self._llm.usage().stages if s.stage == stage)
        return self.worker_tokens.get(stage, 0) + spent


def _library(ctx: RunContext) -> StageManifest:
    stage_config = LibraryStageConfig(run_id=ctx.run_id, library=ctx.config.stages.library, seed=ctx.config.seed)
    build = None
    if isinstance(ctx.config.stages.library, BuiltLibrary):
        from envfactory.cli.library import build_library

        def build(library_config: LibraryConfig, root: Path) -> None:
            # On a pool or Ray the proposals are built by the run's workers (`build.fanout`); same files.
            executor = None if ctx.executor.name == "serial" else ctx.executor
            build_library(library_config, root, workspace=ctx.workspace.root, llm=ctx.config.llm, resume=True,
                          say=ctx.say, executor=executor)

    return run_library(stage_config, ctx.workspace, LibraryDeps(shipped_root=library_root(), build=build))


def _graph(ctx: RunContext) -> StageManifest:
    embedder = None
    if ctx.config.stages.graph.embed:
        from envfactory.llm import make_embedder

        embedder = make_embedder()
    section = ctx.config.stages.graph
    config = GraphStageConfig(run_id=ctx.run_id, scope=section.scope, embed=section.embed)
    deps = GraphDeps(env_dirs=ctx.env_dirs(), embedder=embedder, executor=ctx.executor, progress=ctx.say)
    return run_graph(config, ctx.workspace, deps)


def _synth_tasks(ctx: RunContext) -> StageManifest:
    from envfactory.resources.benchmarks import benchmark_tasks
    from envfactory.spec.synth import SynthTasksConfig
    from envfactory.synth import SynthDeps, SynthProgress, run_synth_tasks

    section = ctx.config.stages.synth_tasks
    library = ctx.config.stages.library
    whole_shipped = isinstance(library, ShippedLibrary) and not library.domains and not library.envs
    envs = [] if whole_shipped else [str(ctx.run.path / e.path) if e.path else e.name for e in ctx.selection().envs]
    tuning = section.model_dump(exclude={"enabled", "tasks", "sampler"}, exclude_none=True)
    config = SynthTasksConfig(envs=envs, library=whole_shipped, sampler=section.sampler, tasks=section.tasks,
                              seed=ctx.config.seed, **tuning)

    def progress(event: SynthProgress) -> None:
        ctx.say(f"synth-tasks: {event.kept}/{event.target} tasks kept after {event.candidates} candidates")

    graphs = _stage_graphs(ctx)
    # resume=True: an unfinished stage directory of this run is this run's own (the run refuses others)
    deps = SynthDeps(run_id=ctx.run_id, benchmark_tasks=benchmark_tasks(), resume=True, progress=progress,
                     graphs=graphs, graphs_dir=StageDir(ctx.run, "graph").path if graphs is not None else None,
                     executor=_fan_out_executor(ctx))
    return run_synth_tasks(config, ctx.workspace, deps)


def _stage_graphs(ctx: RunContext) -> dict[str, ToolGraph] | None:
    """The per-environment graphs of the run's graph stage, by name (synthesis samples from the same
    graphs; it builds them itself when the stage wrote a combined graph or used embeddings)."""
    graph_dir = StageDir(ctx.run, "graph")
    manifest = graph_dir.read_manifest()
    section = ctx.config.stages.graph
    if manifest is None or manifest.status != "complete" or section.scope != "per-environment" or section.embed:
        return None
    return read_stage_graphs(graph_dir.path)


def _synth_trajectories(ctx: RunContext) -> StageManifest:
    from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel
    from envfactory.synth.trajectories import RoleModels, TrajectoryDeps, run_synth_trajectories

    section = ctx.config.stages.synth_trajectories
    config = SynthTrajectoriesConfig(from_run=ctx.run_id, preset=section.preset, k=section.solver_k,
                                     temperature=section.temperature, max_tasks=section.queries,
                                     solve_tasks=section.solve, refine=section.refine, order=section.order,
                                     seed=ctx.config.seed)
    stage = "synth-trajectories"
    client = ctx.llm().for_stage(stage)
    # the roles given their own model in the config (`writer_llm`, `user_llm`, `judge_llm`); else the run's
    own = {role: c.for_stage(stage) for role in ("writer", "user", "judge") if (c := ctx.role_llm(role)) is not None}

    def progress(done: int, total: int, status: str) -> None:
        ctx.say(f"synth-trajectories: {done}/{total} tasks ({status})")

    deps = TrajectoryDeps(writer=own.get("writer", client), solver=client, user=own.get("user"),
                          judge=own.get("judge"), progress=progress)
    executor = _fan_out_executor(ctx)
    if executor is None:
        return run_synth_trajectories(config, ctx.workspace, deps)
    model = ctx.worker_model()
    deps.executor = executor
    deps.models = RoleModels(writer=ctx.role_worker_model("writer") or model, solver=model,
                             user=ctx.role_worker_model("user"), judge=ctx.role_worker_model("judge"))
    manifest = run_synth_trajectories(config, ctx.workspace, deps)
    funnel = TrajectoryFunnel.model_validate_json((StageDir(ctx.run, "synth-trajectories").path / "funnel.json")
                                                  .read_bytes())
    ctx.worker_tokens["synth-trajectories"] = funnel.prompt_tokens + funnel.completion_tokens
    return manifest


def _fan_out_executor(ctx: RunContext) -> Executor | None:
    """The run's executor for stages that fan out, or None on the serial executor: then the stage runs in
    this process, sharing the model this process has loaded."""
    return None if ctx.executor.name == "serial" else ctx.executor


def _export(ctx: RunContext) -> StageManifest:
    from envfactory.cli._export_stage import ExportDeps, run_export
    from envfactory.spec.dataset import ExportConfig, ExportStageConfig

    formats = ctx.config.stages.export.formats
    settings = ExportConfig.model_validate({"formats": formats} if formats else {})
    source = StageDir(ctx.run, "synth-tasks").path
    config = ExportStageConfig(run_id=ctx.run_id, tasks_path=str(source / "tasks.jsonl"),
                               trajectories_path=str(source / "trajectories.jsonl"), export=settings)
    return run_export(config, ctx.workspace, ExportDeps())


ADAPTERS: dict[str, Callable[[RunContext], StageManifest]] = {
    "library": _library,
    "graph": _graph,
    "synth-tasks": _synth_tasks,
    "synth-trajectories": _synth_trajectories,
    "export": _export,
}
"""The wired stages; `train` is not (training runs through `envfactory train` on an export)."""

#: Stages that need an earlier one to have produced its outputs.
NEEDS: dict[str, str] = {"graph": "library", "synth-tasks": "library", "synth-trajectories": "synth-tasks",
                         "export": "synth-tasks", "train": "export"}


def export_format_problems(formats: list[str]) -> list[str]:
    """Formats the export layer does not write (none when the export layer has not landed)."""
    try:
        dataset = importlib.import_module("envfactory.spec.dataset")
    except ImportError:
        return []
    known = tuple(getattr(dataset, "EXPORT_FORMATS", ()))
    return [f"stages.export.formats: {f!r} is not a format (choose from {', '.join(known)})"
            for f in formats if known and f not in known]
