"""`graph`: the tool graph and chain samplers (DESIGN §5). Imports `spec`, `store` and `llm` only;
environments and catalog operations come in as data (`EnvSpec`, `ToolSpec`, `Operation`).

- Build: `ToolSet`s (`from_env_spec`, `tools_from_operations`) → `build_graph` → `ToolGraph`
  (node-link JSON: tool and parameter nodes; `input`, `output`, `feeds` and `depends` edges, each with a
  provenance — schema, embedding, llm, manual — a score and whether it is accepted).
- Edge quality: `evaluate` (`load_labels`, `score_labels`, `evaluate`, `calibrate`) against the committed
  hand-labelled set `graph/data/edge_labels.jsonl`; thresholds in `calibration`.
- Sampling: `GraphIndex.from_graph` → `TopologySampler` / `RandomWalkSampler` (seeded objects) →
  `Chain`s with binding plans; `check_chain` says why a chain is invalid; `graph_stats` measures.
- Pictures: `render` (one layout, drawn as SVG, HTML or PNG). Files: `io` (JSON only).

Contract (entry: `stage.run_graph`, `build_graph`, the samplers):
- Inputs: `ToolSet`s (from `EnvSpec`s or catalog `Operation`s), a `GraphConfig`, and optionally an
  embedder and an LLM client; the stage reads `spec.json` files from the directories it is given.
- Outputs: `ToolGraph`s (node-link JSON), `Chain`s, `StatsReport`s and evaluation reports; the stage
  writes `graphs.jsonl` or `graph.json`, `summary.json` and its manifest under `runs/<id>/graph/`.
- Errors: unusable input (no tools, a malformed graph or label file) raises `GraphInputError` (a
  `SpecError`) naming what and where; a model that cannot review edges raises `GraphLLMError`.
- Determinism: without an embedder or LLM, the same tool sets and config give the same graph; samplers
  own a `random.Random(seed)`, so the same (graph, config, seed) gives the same chains in any process.
"""

from envfactory.graph.build import BuildResult, GraphConfig, ManualEdge, build_graph, prepare
from envfactory.graph.calibration import DEFAULT_THRESHOLDS, Thresholds
from envfactory.graph.chain import Binding, Chain, ChainStep, NoSource, StepOutput, UserValue
from envfactory.graph.errors import GraphInputError
from envfactory.graph.index import GraphIndex
from envfactory.graph.inputs import ToolSet, from_env_spec, tool_from_operation, tools_from_operations
from envfactory.graph.io import load_graph, save_chains, save_graph
from envfactory.graph.model import BuildInfo, Edge, ParamNode, ToolGraph, ToolNode
from envfactory.graph.sample import RandomWalkSampler, SamplerConfig, TopologySampler, check_chain
from envfactory.graph.stats import StatsReport, graph_stats

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Binding",
    "BuildInfo",
    "BuildResult",
    "Chain",
    "ChainStep",
    "Edge",
    "GraphConfig",
    "GraphIndex",
    "GraphInputError",
    "ManualEdge",
    "NoSource",
    "ParamNode",
    "RandomWalkSampler",
    "SamplerConfig",
    "StatsReport",
    "StepOutput",
    "Thresholds",
    "ToolGraph",
    "ToolNode",
    "ToolSet",
    "TopologySampler",
    "UserValue",
    "build_graph",
    "check_chain",
    "from_env_spec",
    "graph_stats",
    "load_graph",
    "prepare",
    "save_chains",
    "save_graph",
    "tool_from_operation",
    "tools_from_operations",
]
