"""The `graph` stage of `envfactory run`: the tool graph over a run's environments (`runs/<id>/graph/`).

Contract: `run_graph(config, workspace, deps) -> StageManifest`.
- Reads the environments' `EnvSpec`s from the directories in `deps.env_dirs` (the CLI resolves them
  from `library/library.json`: the graph layer does not load environments).
- Writes `graph.json` (the `ToolGraph`, as `envfactory graph build` does) and `summary.json`
  (`GraphSummary`), then the manifest with the input specs' hashes and the graph's size as counts.
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
    result = build_graph([from_env_spec(spec) for spec in specs], embedder=deps.embedder if config.embed else None,
                         progress=deps.progress)
    graph = result.graph
    stage = StageDir.open(workspace, config.run_id, STAGE)
    stage.write_bytes(GRAPH, graph_bytes(graph))
    summary = GraphSummary(environments=len(specs), tools=len(graph.tools()), parameters=len(graph.params()),
                           accepted_feeds=len(graph.feeds()))
    stage.write_bytes(SUMMARY, summary.to_json_bytes() + b"\n")
    return stage.finish(
        outputs=[GRAPH, SUMMARY], config=config.model_dump(mode="json"),
        inputs={spec.meta.name: spec.content_hash for spec in specs},
        counts=summary.model_dump(exclude={"schema_version"}),
        timings={k: round(v, 3) for k, v in result.timings.items()},
    )
