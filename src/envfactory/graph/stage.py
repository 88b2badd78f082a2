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
- Model-free and deterministic unless `config.embed` (then `deps.embedder` adds embedding edges).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envfactory.errors import SpecError
from envfactory.graph.build import build_graph
from envfactory.graph.inputs import from_env_spec
from envfactory.graph.io import graph_bytes
from envfactory.llm.protocols import Embedder
from envfactory.spec import EnvSpec, StageManifest
from envfactory.spec.pipeline import GraphStageConfig, GraphSummary
from envfactory.store import StageDir, Workspace

STAGE = "graph"
GRAPH = "graph.json"
GRAPHS = "graphs.jsonl"
SUMMARY = "summary.json"


@dataclass(frozen=True, slots=True)
class GraphDeps:
    """The environments' directories (each with `spec.json`), an embedder when `embed`, a progress sink."""

    env_dirs: Sequence[Path]
    embedder: Embedder | None = None
    progress: Callable[[str], None] = field(default=lambda message: None)


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
        graphs = {}
        for number, spec in enumerate(specs, start=1):
            graphs[spec.meta.name] = build_graph([from_env_spec(spec)], embedder=embedder).graph
            if number % 20 == 0 or number == len(specs):
                deps.progress(f"graph: {number}/{len(specs)} environments")
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
