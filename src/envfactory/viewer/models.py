"""Tolerant, viewer-local readers of artifacts whose models do not live in `spec` (yet).

The viewer may import only `spec` and `store`. The tool graph and chains are defined in `graph`
(`graph/model.py`, `graph/chain.py`) and evaluation reports and attempts in `eval/report.py`; until
those models move into `spec`, the viewer reads their JSON through the small models below. They keep
only the fields a page shows, ignore fields they do not know (so a newer writer does not break the
viewer) and give every field a default where the writer has one, so an older file still reads. The
`schema_version` they accept is checked by `check_version` so that a file of an unknown major version
is reported as such instead of being shown half-understood.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envfactory.spec import Reward, Trajectory

KNOWN_GRAPH_VERSIONS = (1,)
KNOWN_CHAIN_VERSIONS = (1,)
KNOWN_EVAL_VERSIONS = (1,)


class _Tolerant(BaseModel):
    """Ignores unknown fields; frozen like every artifact model."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class GraphNodeView(_Tolerant):
    """A tool or parameter node of a tool graph (`graph.model.ToolNode` / `ParamNode`)."""

    kind: str
    id: str
    server: str = ""
    name: str = ""
    tool: str = ""
    description: str = ""
    effect: str = ""
    direction: str = ""
    path: str = ""
    type: str = ""


class GraphEdgeView(_Tolerant):
    """An edge of a tool graph (`graph.model.Edge`)."""

    source: str
    target: str
    kind: str
    provenance: str = "schema"
    score: float = 1.0
    accepted: bool = True
    verdict: str = "accept"
    evidence: str = ""


class GraphInfoView(_Tolerant):
    """The build information of a tool graph (`graph.model.BuildInfo`)."""

    servers: list[str] = Field(default_factory=list)
    tools: int = 0
    params: int = 0
    edges: dict[str, int] = Field(default_factory=dict)
    feeds_by_provenance: dict[str, int] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    embedder: str | None = None
    llm: str | None = None
    warnings: list[str] = Field(default_factory=list)


class GraphView(_Tolerant):
    """`graph.json`, the node-link tool graph that `envfactory graph build` writes."""

    format: str
    schema_version: int = 1
    graph: GraphInfoView = Field(default_factory=GraphInfoView)
    nodes: list[GraphNodeView] = Field(default_factory=list)
    links: list[GraphEdgeView] = Field(default_factory=list)


class BindingSourceView(_Tolerant):
    """Where a chain step's input comes from: the user, an earlier step's output, or nothing."""

    kind: str
    step: int | None = None
    tool: str = ""
    output: str = ""


class BindingView(_Tolerant):
    """How one input of a chain step is sourced (`graph.chain.Binding`), read tolerantly."""
    input: str
    required: bool = False
    source: BindingSourceView


class ChainStepView(_Tolerant):
    """One step of a chain (`graph.chain.ChainStep`): the tool, its server and its inputs' bindings."""
    tool: str
    server: str = ""
    bindings: list[BindingView] = Field(default_factory=list)


class ChainView(_Tolerant):
    """One sampled chain (`graph.chain.Chain`), a line of a chains JSONL file."""

    schema_version: int = 1
    sampler: str = ""
    seed: int = 0
    number: int = 0
    steps: list[ChainStepView] = Field(default_factory=list)


class MetricsView(_Tolerant):
    """Metrics of a group of attempts (`eval.report.Metrics`)."""

    tasks: int = 0
    attempts: int = 0
    pass_at_1: float = 0.0
    pass_hat_k: float | None = None
    mean_reward: float = 0.0
    components: dict[str, float] = Field(default_factory=dict)
    failures: dict[str, int] = Field(default_factory=dict)
    mean_tool_calls: float = 0.0


class EvalReportView(_Tolerant):
    """`report.json` of an evaluation run (`eval.report.EvalReport`)."""

    schema_version: int = 1
    run_id: str = ""
    model: str = ""
    k: int = 1
    seed: int = 0
    overall: MetricsView = Field(default_factory=MetricsView)
    by_suite: dict[str, MetricsView] = Field(default_factory=dict)
    by_environment: dict[str, MetricsView] = Field(default_factory=dict)
    by_domain: dict[str, MetricsView] = Field(default_factory=dict)


class StepFailureView(_Tolerant):
    """A step of an evaluation attempt that went wrong (`agent.loop.StepFailure`): where, what kind, why."""
    turn: int = 0
    step: int = 0
    kind: str = ""
    reason: str = ""


class AttemptView(_Tolerant):
    """One line of an evaluation run's `attempts.jsonl` (`eval.report.AttemptRecord`). The trajectory
    and reward are `spec` models and are validated strictly."""

    schema_version: int = 1
    suite: str = ""
    task_id: str = ""
    source_id: str = ""
    domain: str = ""
    envs: list[str] = Field(default_factory=list)
    attempt: int = 0
    seed: int = 0
    passed: bool = False
    reward: Reward | None = None
    verdict: str = ""
    termination: str = ""
    failures: list[StepFailureView] = Field(default_factory=list)
    llm_calls: int = 0
    tool_calls: int = 0
    trajectory: Trajectory | None = None


def check_version(data: Any, known: tuple[int, ...], what: str) -> str | None:
    """A sentence saying why `data` cannot be shown (not an object, unknown schema version), or None."""
    if not isinstance(data, dict):
        return f"{what}: expected a JSON object, found {type(data).__name__}"
    version = data.get("schema_version", 1)
    if version not in known:
        supported = ", ".join(str(v) for v in known)
        return (f"{what}: schema version {version!r} is not one this viewer reads ({supported}); "
                "it was written by another envfactory version")
    return None
