"""The tool graph as stored: versioned node-link JSON of typed tool nodes, parameter nodes and edges.

Contract:
- `ToolGraph` is node-link JSON (`directed`, `multigraph`, `graph`, `nodes`, `links`), the layout
  networkx reads with `node_link_graph(..., edges="links")`, validated by pydantic and never pickled.
  `schema_version` changes when a field changes meaning.
- Node ids: a tool is `<server>__<tool>`; a parameter is `<tool id>:in:<path>` or `<tool id>:out:<path>`,
  where `path` is the flattened field path (`a.b`, `items[]`, `items[].id`, `Attributes.QueueArn`).
- Every edge carries `provenance` (`schema`, `embedding`, `llm`, `manual`), a `score` in [0, 1] and
  `accepted`: whether the edge belongs to the combined graph the samplers use. A `feeds` edge that
  was only proposed (below its thresholds, or vetoed by an LLM or manual verdict) is kept with
  `accepted=false`, so the decision stays auditable. `verdict="reject"` marks an LLM or manual veto.
- Edge kinds: `input` (parameter → tool), `output` (tool → parameter), `feeds` (output parameter →
  input parameter: the value can be passed on), `depends` (tool → tool: the consumer can take a
  value the producer returns; derived from accepted `feeds` edges).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from envfactory.spec import SpecModel, ToolEffect, ToolSource
from envfactory.spec.base import JSONScalar

GRAPH_FORMAT = "envfactory.tool-graph"

Provenance = Literal["schema", "embedding", "llm", "manual"]
PROVENANCES: tuple[Provenance, ...] = ("schema", "embedding", "llm", "manual")
EdgeKind = Literal["input", "output", "feeds", "depends"]
Direction = Literal["input", "output"]
ParamType = Literal["string", "integer", "number", "boolean", "object", "array", "null", "any"]
LabelSource = Literal["heuristic", "llm", "manual"]


class ToolNode(SpecModel):
    """One tool (an environment's tool or a catalog operation)."""

    kind: Literal["tool"] = "tool"
    id: str = Field(description="<server>__<tool>, unique in the graph")
    server: str = Field(description="the environment name or catalog service the tool belongs to")
    name: str = Field(description="the tool's own name (for catalog operations: the source's operation name)")
    description: str = ""
    effect: ToolEffect = "read"
    source: ToolSource | None = None


class ParamNode(SpecModel):
    """One flattened input or output field of a tool."""

    kind: Literal["param"] = "param"
    id: str
    tool: str = Field(description="id of the tool node")
    direction: Direction
    path: str = Field(description="flattened path with our names")
    source_path: str = Field(description="the same path with the source's original field names")
    type: ParamType
    item_type: ParamType | None = Field(default=None, description="arrays: the type of the items")
    format: str | None = None
    enum: list[JSONScalar] | None = None
    description: str = ""
    required: bool = Field(description="inputs: required, and every enclosing field is required too")
    slot: bool = Field(default=False, description="inputs: a value a call must supply (a required leaf)")
    container: bool = Field(default=False, description="an object with properties or an array of objects")
    ref: str | None = Field(default=None, description="the $ref definition name the field's value has, if any")
    entity: str = Field(default="", description="what the field refers to, as the matcher read it")
    attribute: str = Field(default="", description="which attribute of it: id, arn, name, url, value, ...")
    user_providable: bool | None = Field(default=None, description="inputs: a user can state the value")
    user_providable_by: LabelSource | None = None
    user_providable_reason: str = ""


Node = Annotated[Union[ToolNode, ParamNode], Field(discriminator="kind")]  # noqa: UP007


class Edge(SpecModel):
    """A directed edge of the tool graph: its kind, the method that proposed it, its score, and whether it
    was accepted, with the verdict and evidence."""
    source: str
    target: str
    kind: EdgeKind
    provenance: Provenance = "schema"
    score: float = Field(default=1.0, ge=0.0, le=1.0)
    accepted: bool = True
    verdict: Literal["accept", "reject"] = "accept"
    evidence: str = ""


class BuildInfo(SpecModel):
    """How the graph was built: counts, thresholds, models; never timings (artifacts are hashed)."""

    servers: list[str] = Field(default_factory=list)
    tools: int = 0
    params: int = 0
    edges: dict[str, int] = Field(default_factory=dict, description="accepted edges per kind")
    feeds_by_provenance: dict[str, int] = Field(default_factory=dict, description="accepted feeds edges")
    thresholds: dict[str, float] = Field(default_factory=dict)
    embedder: str | None = None
    llm: str | None = None
    warnings: list[str] = Field(default_factory=list)


class ToolGraph(SpecModel):
    """The whole graph in node-link form (see the module docstring)."""

    format: Literal["envfactory.tool-graph"] = "envfactory.tool-graph"
    schema_version: Literal[1] = 1
    directed: Literal[True] = True
    multigraph: Literal[True] = True
    graph: BuildInfo = Field(default_factory=BuildInfo)
    nodes: list[Node] = Field(default_factory=list)
    links: list[Edge] = Field(default_factory=list)

    def tools(self) -> list[ToolNode]:
        """The tool nodes, in the graph's order."""
        return [n for n in self.nodes if isinstance(n, ToolNode)]

    def params(self) -> list[ParamNode]:
        """The parameter nodes, in the graph's order."""
        return [n for n in self.nodes if isinstance(n, ParamNode)]

    def feeds(self, *, accepted_only: bool = True) -> list[Edge]:
        """The `feeds` edges (output → input), only the accepted ones unless `accepted_only=False`."""
        return [e for e in self.links if e.kind == "feeds" and (e.accepted or not accepted_only)]
