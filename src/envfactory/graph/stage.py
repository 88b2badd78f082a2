"""The `graph` stage of `envfactory run`: the tool graph over a run's environments (`runs/<id>/graph/`).

Contract: `run_graph(config, workspace, deps) -> StageManifest`.
- Reads the environments' `EnvSpec`s from the directories in `deps.env_dirs` (the CLI resolves them
  from `library/library.json`: the graph layer does not load environments).
- `per-environment` (default): one graph per environment, the graphs task synthesis samples from
  (`synth.envs` builds the same ones), written as `graphs.jsonl` (one `ToolGraph` per line, in the
  environments' order); `combined`: one graph over every environment with the edges between them,
  `graph.json` (as `envfactory graph build` writes it).
- Then `summary.json` (`GraphSummary`: sizes and each graph's canonical hash) and the manifest with the
  input specs' hashes and the sizes as counts.
- Per-environment graphs are independent work items (`build_env_graph`, items carry the spec's
  directory): with `deps.executor` they are built on a process pool or Ray workers, and come back as
  `ToolGraph`s equal to the ones built here. An environment whose graph fails is a `SpecError` naming it.
- Model-free and deterministic unless `config.embed` (then `deps.embedder` adds embedding edges, in this
  process).

`envfactory graph build` writes its graph as this stage of run `graph-build` (`BUILD_RUN`):
`write_built_graph` puts `graph.json` and a manifest in `runs/graph-build/graph/`, where `graph stats`,
`show` and `sample` read it by default. A workspace an older version left with `<workspace>/graph/` is
moved there first (`migrate_legacy_graph`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from envfactory.errors import SpecError
from envfactory.graph.build import build_graph
from envfactory.graph.inputs import from_env_spec
from envfactory.graph.io import graph_bytes
from envfactory.graph.model import ToolGraph
from envfactory.llm.protocols import Embedder
from envfactory.spec import EnvSpec, JSONObject, StageManifest
from envfactory.spec.pipeline import EnvGraphItem, GraphStageConfig, GraphSummary
from envfactory.store import StageDir, Workspace

STAGE = "graph"
GRAPH = "graph.json"
GRAPHS = "graphs.jsonl"
SUMMARY = "summary.json"
BUILD_RUN = "graph-build"
"""The run whose graph stage `envfactory graph build` writes when it is given no `--out`."""


class WorkOutcome(Protocol):
    """What an executor answers per item (`exec.Outcome`): the result, or why there is none."""

    @property
    def result(self) -> Any:
        """What the function returned (None when it raised)."""

    @property
    def error(self) -> str | None:
        """Why there is no result (the last attempt's reason), or None."""


class Executor(Protocol):
    """Where per-environment graphs are built (`exec.Executor`; the graph layer does not import `exec`,
    it is handed one)."""

    def map(self, function: Callable[[EnvGraphItem], ToolGraph], items: Sequence[EnvGraphItem],
            on_outcome: Callable[[Any], None] | None = None) -> Sequence[WorkOutcome]:
        """Apply `function` to every item, reporting each outcome to `on_outcome` as it finishes; outcomes
        come back in the order of `items`."""


@dataclass(frozen=True, slots=True)
class GraphDeps:
    """The environments' directories (each with `spec.json`), an embedder when `embed`, where the
    per-environment graphs are built (`executor`; None: in this process) and a progress sink."""

    env_dirs: Sequence[Path]
    embedder: Embedder | None = None
    executor: Executor | None = None
    progress: Callable[[str], None] = field(default=lambda message: None)


def build_env_graph(item: EnvGraphItem) -> ToolGraph:
    """The model-free tool graph of one environment (a work item: runs in any worker)."""
    return build_graph([from_env_spec(_spec(Path(item.directory)))]).graph


def _per_environment(specs: Sequence[EnvSpec], deps: GraphDeps, embedder: Embedder | None) -> dict[str, ToolGraph]:
    if deps.executor is None or embedder is not None:  # an embedder lives in this process
        return {spec.meta.name: build_graph([from_env_spec(spec)], embedder=embedder).graph for spec in specs}
    items = [EnvGraphItem(name=spec.meta.name, directory=str(directory))
             for spec, directory in zip(specs, deps.env_dirs, strict=True)]
    done = [0]

    def progress(_outcome: object) -> None:
        done[0] += 1
        if done[0] % 20 == 0 or done[0] == len(items):
            deps.progress(f"graph: {done[0]}/{len(items)} environments")

    outcomes = deps.executor.map(build_env_graph, items, on_outcome=progress)
    failed = [f"{item.name}: {o.error}" for item, o in zip(items, outcomes, strict=True) if o.result is None]
    if failed:
        raise SpecError(f"{len(failed)} environment graph(s) could not be built: " + "; ".join(failed[:5]))
    return {item.name: o.result for item, o in zip(items, outcomes, strict=True)}


def _spec(directory: Path) -> EnvSpec:
    try:
        return EnvSpec.model_validate_json((directory / "spec.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise SpecError(f"{directory}: no readable environment spec: {exc}") from exc


def run_graph(config: GraphStageConfig, workspace: Workspace, deps: GraphDeps) -> StageManifest:
    """Build the tool graph over `deps.env_dirs`; write it and its summary; return the manifest."""
    if config.embed and deps.embedder is None:
        raise SpecError("the graph stage is asked for embedding edges but was given no embedder")
    specs = [_spec(directory) for directory in deps.env_dirs]
    embedder = deps.embedder if config.embed else None
    stage = StageDir.open(workspace, config.run_id, STAGE)
    if config.scope == "combined":
        graphs = {"combined": build_graph([from_env_spec(spec) for spec in specs], embedder=embedder,
                                          progress=deps.progress).graph}
        stage.write_bytes(GRAPH, graph_bytes(graphs["combined"]))
        written = GRAPH
    else:
        graphs = _per_environment(specs, deps, embedder)
        stage.write_bytes(GRAPHS, b"".join(graph_bytes(graph) for graph in graphs.values()))
        written = GRAPHS
    summary = GraphSummary(
        graphs={name: graph.canonical_hash() for name, graph in graphs.items()}, environments=len(specs),
        tools=sum(len(g.tools()) for g in graphs.values()), parameters=sum(len(g.params()) for g in graphs.values()),
        accepted_feeds=sum(len(g.feeds()) for g in graphs.values()),
    )
    stage.write_bytes(SUMMARY, summary.to_json_bytes() + b"\n")
    return stage.finish(
        outputs=[written, SUMMARY], config=config.model_dump(mode="json"),
        inputs={spec.meta.name: spec.content_hash for spec in specs},
        counts=summary.model_dump(exclude={"schema_version", "graphs"}),
    )


def read_stage_graphs(stage_path: Path) -> dict[str, ToolGraph] | None:
    """The per-environment graphs a finished graph stage wrote in `stage_path`, by environment name;
    None when the stage wrote a combined graph or holds none (synthesis then builds its own)."""
    summary_path, graphs_path = stage_path / SUMMARY, stage_path / GRAPHS
    if not summary_path.is_file() or not graphs_path.is_file():
        return None
    try:
        summary = GraphSummary.model_validate_json(summary_path.read_bytes())
        lines = [line for line in graphs_path.read_bytes().splitlines() if line.strip()]
        return {name: ToolGraph.model_validate_json(line) for name, line in zip(summary.graphs, lines, strict=True)}
    except (OSError, ValueError) as exc:
        raise SpecError(f"{stage_path}: the graph stage's graphs cannot be read: {exc}") from exc


def built_graph_dir(workspace: Workspace) -> Path:
    """`runs/graph-build/graph/`: where `envfactory graph build` writes `graph.json` and the other graph
    verbs read it and write `stats.json` by default (the path only; nothing is created)."""
    return workspace.run_path(BUILD_RUN) / STAGE


def write_built_graph(workspace: Workspace, graph: ToolGraph, config: JSONObject) -> Path:
    """Write `graph` as the graph stage of run `graph-build` (`graph.json`, atomically) with its manifest
    (`config`: the build's options as given; counts: tools, parameters, accepted feeds); returns the
    graph file's path. A `StoreError` when the workspace cannot be written."""
    stage = StageDir.open(workspace, BUILD_RUN, STAGE)
    path = stage.write_bytes(GRAPH, graph_bytes(graph))
    stage.finish(outputs=[GRAPH], config=config,
                 counts={"tools": len(graph.tools()), "parameters": len(graph.params()),
                         "accepted_feeds": len(graph.feeds())})
    return path


def migrate_legacy_graph(workspace: Workspace) -> Path | None:
    """Move the `<workspace>/graph/` folder an older `envfactory graph build` wrote (its `graph.json`,
    `stats.json` and whatever else lies there) to `runs/graph-build/graph/`; returns the new place when
    something was moved, None when there was nothing to move (no such folder, or one holding neither
    `graph.json` nor `stats.json`, which is left alone). The move is one rename, so the files are never
    half in each place; a `SpecError` when the new place already holds files (both are kept)."""
    legacy = workspace.root / STAGE
    if not legacy.is_dir() or not any((legacy / name).is_file() for name in (GRAPH, "stats.json")):
        return None
    target = built_graph_dir(workspace)
    if target.exists() and any(target.iterdir()):
        raise SpecError(f"{legacy} (an earlier version's layout) and {target} both hold graph files; "
                        f"keep one of them")
    StageDir.open(workspace, BUILD_RUN, STAGE).path.rmdir()
    legacy.rename(target)
    return target
