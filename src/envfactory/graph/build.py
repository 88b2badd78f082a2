"""Build a `ToolGraph` from tool sets: flatten the schemas, find field-to-field edges (schema match,
embedding similarity, LLM review, manual edges), decide which edges hold, label inputs
`user_providable`, and assemble node-link JSON.

Contract:
- Deterministic: the same tool sets, configuration and model answers give the same graph, byte for
  byte (nodes in input order, edges sorted), in any process; timings are returned, never stored.
- Without an embedder and an LLM the build needs no model (the schema matcher and the heuristics).
- The combined decision for an (output, input) pair, in order: a manual verdict; else an LLM verdict
  (a rejection counts only with `llm_can_reject`); else schema score ≥ `thresholds.schema`, or
  embedding cosine ≥ `thresholds.embedding` when the schemas do not conflict. Every proposal is kept
  as an edge of its provenance with `accepted` set to the decision: schema matches, embedding pairs
  from `thresholds.embedding_alone` (the embedding's own calibrated threshold), LLM and manual verdicts.
- Bad input is reported, not fatal: empty tool sets, duplicate names and untyped schemas end up in
  `BuildInfo.warnings` (see `inputs.normalise`); only "no tools at all" raises `GraphInputError`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from envfactory.graph.calibration import DEFAULT_THRESHOLDS, Thresholds
from envfactory.graph.embed import field_text, similar_pairs
from envfactory.graph.flatten import Field, flatten
from envfactory.graph.inputs import ToolSet, normalise, tool_id
from envfactory.graph.llm_edges import Candidate, ToolBrief, review_edges
from envfactory.graph.match import (
    FieldView,
    Match,
    PairScores,
    candidate_pairs,
    make_view,
    naive_pairs,
    schema_score,
)
from envfactory.graph.model import BuildInfo, Edge, ParamNode, Provenance, ToolGraph, ToolNode
from envfactory.graph.names import compact, definition_subject, lookup_entity, operation_entity, words
from envfactory.graph.providable import Label, LabelRequest, heuristic, llm_labels
from envfactory.spec.schema_tools import ref_name

if TYPE_CHECKING:
    from envfactory.llm import Embedder, LLMClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GraphConfig:
    """Settings of one build (thresholds come from `calibration`, measured on our embeddings)."""

    thresholds: Thresholds = DEFAULT_THRESHOLDS
    embedding_floor: float = 0.55
    llm_edges: bool = True
    llm_labels: bool = True
    llm_can_reject: bool = True
    llm_tools_per_request: int = 12
    llm_label_batch: int = 32
    llm_review_floor: float = 0.45
    seed: int = 0
    max_depth: int = 6
    max_fields: int = 400


@dataclass(frozen=True, slots=True)
class ManualEdge:
    """A hand-written edge or veto: `producer`/`consumer` are tool ids, `output`/`input` field paths."""

    producer: str
    output: str
    consumer: str
    input: str
    verdict: Literal["accept", "reject"] = "accept"
    note: str = ""


@dataclass(slots=True)
class Prepared:
    """The flattened tools: every field with its matcher view (`views[i]` describes `fields[i]`)."""

    tools: list[ToolNode] = field(default_factory=list)
    tool_entities: list[tuple[str, ...]] = field(default_factory=list)
    fields: list[tuple[int, Field]] = field(default_factory=list)
    views: list[FieldView] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def param_id(self, index: int) -> str:
        """The graph id of field `index`: `<tool id>:in|out:<field path>`."""
        tool, f = self.fields[index]
        direction = "in" if self.views[index].direction == "input" else "out"
        return f"{self.tools[tool].id}:{direction}:{f.path}"


@dataclass(slots=True)
class BuildResult:
    """A built tool graph with the seconds each step took, the LLM requests made and the problems they
    reported."""
    graph: ToolGraph
    timings: dict[str, float] = field(default_factory=dict)
    llm_requests: int = 0
    llm_problems: list[str] = field(default_factory=list)


# -- preparation --------------------------------------------------------------------------------------------


def _operation_name(tool: ToolNode) -> str:
    """The source's operation name for catalog operations (`CreateQueue`, `tasks.tasklists.insert`), else
    the tool's name."""
    if tool.source is not None and ":" in tool.source.operation_id:
        return tool.source.operation_id.rsplit(":", 1)[-1]
    return tool.name


def _tool_entities(tools: Sequence[ToolNode], outputs: dict[int, list[Field]], roots: dict[int, str | None]) -> list[tuple[str, ...]]:
    """What each tool is about: its output's definition name, else the entity the tools returning the
    same object shape are named after (`top_up_wallet` returns a customer), else its own name."""
    own = [operation_entity(_operation_name(t)) for t in tools]
    shapes: dict[tuple[str, frozenset[str]], list[int]] = defaultdict(list)
    for index, fields in outputs.items():
        top = frozenset(f.path for f in fields if f.depth == 1)
        if "id" in top and len(top) >= 3:  # a trivial shape ({id}) says nothing about which entity
            shapes[(tools[index].server, top)].append(index)
    result = list(own)
    for members in shapes.values():
        votes = Counter(own[i] for i in members if own[i])
        if votes:
            winner = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            for i in members:
                result[i] = winner
    for index, root in roots.items():
        if root:
            entity = definition_subject(root)
            if entity:
                result[index] = entity
    return result


def _service(tool: ToolNode) -> str:
    return tool.source.service if tool.source is not None and tool.source.service else tool.server


def _root_ref(schema: object) -> str | None:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return ref_name(str(schema["$ref"]))
    return None


def prepare(sets: Sequence[ToolSet], config: GraphConfig | None = None) -> Prepared:
    """Normalise the tool sets and flatten every schema (see the module docstring)."""
    config = config or GraphConfig()
    normalised = normalise(sets)
    prepared = Prepared(warnings=list(normalised.warnings))
    flat_in: dict[int, list[Field]] = {}
    flat_out: dict[int, list[Field]] = {}
    roots: dict[int, str | None] = {}
    for item in normalised.sets:
        for spec in item.tools:
            index = len(prepared.tools)
            prepared.tools.append(ToolNode(id=tool_id(item.server, spec.name), server=item.server, name=spec.name,
                                           description=spec.description, effect=spec.effect, source=spec.source))
            names = spec.source.field_names if spec.source is not None else {}
            fin = flatten(spec.input_schema, inputs=True, field_names=names, max_depth=config.max_depth,
                          max_fields=config.max_fields)
            fout = flatten(spec.output_schema, inputs=False, max_depth=config.max_depth, max_fields=config.max_fields)
            for label, flattened in (("input", fin), ("output", fout)):
                if flattened.untyped:
                    shown = ", ".join(flattened.untyped[:5]) + (" …" if len(flattened.untyped) > 5 else "")
                    prepared.warnings.append(
                        f"{prepared.tools[index].id}: {len(flattened.untyped)} {label} field(s) without a type, "
                        f"treated as any: {shown}")
                if flattened.truncated:
                    prepared.warnings.append(f"{prepared.tools[index].id}: {label} schema cut at {config.max_fields} fields")
            flat_in[index], flat_out[index] = fin.fields, fout.fields
            roots[index] = _root_ref(spec.output_schema)
    prepared.tool_entities = _tool_entities(prepared.tools, flat_out, roots)
    owned: dict[str, set[str]] = defaultdict(set)
    for index, tool in enumerate(prepared.tools):
        if prepared.tool_entities[index]:
            owned[_service(tool)].add(compact(prepared.tool_entities[index]))
    frozen = {service: frozenset(entities) for service, entities in owned.items()}
    for index, tool in enumerate(prepared.tools):
        service = _service(tool)
        entity = prepared.tool_entities[index]
        looked_up = lookup_entity(_operation_name(tool)) or entity  # `getSectionsForSchool`: its `id` is a school's
        for direction, flat in (("input", flat_in[index]), ("output", flat_out[index])):
            for f in flat:
                position = len(prepared.fields)
                prepared.fields.append((index, f))
                view = make_view(position, index, service, f, direction, looked_up if direction == "input" else entity,
                                 frozen.get(service, frozenset()))
                prepared.views.append(view)
                if direction == "output":
                    prepared.outputs.append(position)
                elif not f.container or f.slot:
                    prepared.inputs.append(position)
    return prepared


# -- matching ---------------------------------------------------------------------------------------------------


def schema_candidates(prepared: Prepared, *, naive: bool = False) -> PairScores:
    """Schema scores of every (output, input) pair with one, by the index (or, `naive`, all pairs)."""
    outs = [prepared.views[i] for i in prepared.outputs]
    ins = [prepared.views[i] for i in prepared.inputs]
    return naive_pairs(outs, ins) if naive else candidate_pairs(outs, ins)


def tool_subject(prepared: Prepared, tool: int) -> str:
    node = prepared.tools[tool]
    return " ".join(words(_operation_name(node))) or node.name


def embedding_texts(prepared: Prepared, positions: Sequence[int]) -> list[str]:
    return [field_text(prepared.views[p], tool_subject(prepared, prepared.views[p].tool), prepared.fields[p][1].description)
            for p in positions]


def embedding_candidates(prepared: Prepared, embedder: Embedder, floor: float) -> dict[tuple[int, int], float]:
    """Cosine of every type-compatible (output, input) pair at or above `floor`, keyed by field index."""
    outs = [p for p in prepared.outputs if not prepared.views[p].skip]
    ins = [p for p in prepared.inputs if not prepared.views[p].skip]
    found = similar_pairs(embedder, embedding_texts(prepared, outs), embedding_texts(prepared, ins), floor)
    result: dict[tuple[int, int], float] = {}
    for (o, i), cosine in found.items():
        out, inp = prepared.views[outs[o]], prepared.views[ins[i]]
        if out.tool == inp.tool:
            continue
        from envfactory.graph.match import types_compatible

        if types_compatible(out, inp):
            result[(out.index, inp.index)] = cosine
    return result


def decide(schema: Match | None, cosine: float | None, thresholds: Thresholds) -> bool:
    """The matchers' combined decision for one pair (before LLM and manual verdicts)."""
    if schema is not None and schema.score >= thresholds.schema:
        return True
    conflict = schema is not None and schema.conflict
    return cosine is not None and cosine >= thresholds.embedding and not conflict


# -- the build ----------------------------------------------------------------------------------------------------


def build_graph(
    sets: Sequence[ToolSet], config: GraphConfig | None = None, *, embedder: Embedder | None = None,
    llm: LLMClient | None = None, manual: Iterable[ManualEdge] = (), progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the graph (see the module docstring)."""
    config = config or GraphConfig()
    timings: dict[str, float] = {}
    say = progress or (lambda _: None)
    started = time.perf_counter()
    prepared = prepare(sets, config)
    timings["flatten"] = time.perf_counter() - started
    say(f"{len(prepared.tools)} tools, {len(prepared.fields)} fields")

    started = time.perf_counter()
    schema = schema_candidates(prepared).scores
    timings["schema"] = time.perf_counter() - started

    cosines: dict[tuple[int, int], float] = {}
    if embedder is not None:
        started = time.perf_counter()
        cosines = embedding_candidates(prepared, embedder, config.embedding_floor)
        timings["embedding"] = time.perf_counter() - started
    conflicts: dict[tuple[int, int], Match] = {}
    for pair in cosines:
        if pair not in schema:
            conflicts[pair] = schema_score(prepared.views[pair[0]], prepared.views[pair[1]])

    verdicts: dict[tuple[int, int], tuple[Provenance, str, str]] = {}  # pair → (provenance, verdict, reason)
    result = BuildResult(graph=ToolGraph())
    if llm is not None and config.llm_edges:
        started = time.perf_counter()
        verdicts.update(_llm_verdicts(prepared, schema, cosines, llm, config, result))
        timings["llm_edges"] = time.perf_counter() - started
    verdicts.update(_manual_verdicts(prepared, manual))

    labels = {p: heuristic(prepared.views[p], prepared.fields[p][1].description)
              for p, view in enumerate(prepared.views) if view.direction == "input"}
    if llm is not None and config.llm_labels:
        started = time.perf_counter()
        _llm_label(prepared, labels, llm, config, result)
        timings["llm_labels"] = time.perf_counter() - started

    started = time.perf_counter()
    result.graph = _assemble(prepared, schema, cosines, conflicts, verdicts, labels, config, embedder, llm)
    timings["assemble"] = time.perf_counter() - started
    result.timings = timings
    return result


def tool_briefs(prepared: Prepared) -> list[ToolBrief]:
    """Every tool as the LLM reviewer sees it (`tool_briefs(p)[i]` describes `p.tools[i]`): all its
    inputs and the outputs the matcher does not skip, in flattening order."""
    fields_of: dict[int, dict[str, dict[str, FieldView]]] = defaultdict(lambda: {"input": {}, "output": {}})
    for position in prepared.inputs:
        v = prepared.views[position]
        fields_of[v.tool]["input"][v.path] = v
    for position in prepared.outputs:
        v = prepared.views[position]
        if not v.skip:
            fields_of[v.tool]["output"][v.path] = v
    return [ToolBrief(t.id, t.name, t.description, fields_of[i]["input"], fields_of[i]["output"])
            for i, t in enumerate(prepared.tools)]


def _llm_verdicts(prepared: Prepared, schema: dict[tuple[int, int], Match], cosines: dict[tuple[int, int], float],
                  llm: LLMClient, config: GraphConfig, result: BuildResult) -> dict[tuple[int, int], tuple[Provenance, str, str]]:
    by_server: dict[str, list[int]] = defaultdict(list)
    for index, tool in enumerate(prepared.tools):
        by_server[tool.server].append(index)
    briefs_of = tool_briefs(prepared)
    proposals = set(schema) | set(cosines)
    found: dict[tuple[int, int], tuple[Provenance, str, str]] = {}
    lookup = {(prepared.views[p].tool, prepared.views[p].direction, prepared.views[p].path): p
              for p in prepared.inputs + prepared.outputs}
    for server, members in sorted(by_server.items()):
        member_set = set(members)
        briefs = [briefs_of[i] for i in members]
        candidates = []
        for o, i in sorted(proposals):
            vo, vi = prepared.views[o], prepared.views[i]
            if vo.tool in member_set and vi.tool in member_set:
                strength = max(schema[(o, i)].score if (o, i) in schema else 0.0, cosines.get((o, i), 0.0))
                if strength >= config.llm_review_floor:
                    candidates.append(Candidate(prepared.tools[vo.tool].id, vo.path, prepared.tools[vi.tool].id, vi.path))
        outcome = review_edges(llm, server, briefs, candidates, tools_per_request=config.llm_tools_per_request,
                               seed=config.seed)
        result.llm_requests += outcome.requests
        result.llm_problems.extend(outcome.problems)
        ids = {prepared.tools[i].id: i for i in members}
        for review in outcome.reviews:
            out_pos = lookup.get((ids[review.producer], "output", review.output))
            in_pos = lookup.get((ids[review.consumer], "input", review.input))
            if out_pos is not None and in_pos is not None:
                found[(out_pos, in_pos)] = ("llm", "accept" if review.verdict == "feeds" else "reject", review.reason)
    return found


def _manual_verdicts(prepared: Prepared, manual: Iterable[ManualEdge]) -> dict[tuple[int, int], tuple[Provenance, str, str]]:
    ids = {t.id: i for i, t in enumerate(prepared.tools)}
    lookup = {(prepared.views[p].tool, prepared.views[p].direction, prepared.views[p].path): p
              for p in prepared.inputs + prepared.outputs}
    found: dict[tuple[int, int], tuple[Provenance, str, str]] = {}
    for edge in manual:
        if edge.producer not in ids or edge.consumer not in ids:
            prepared.warnings.append(f"manual edge {edge.producer}.{edge.output} -> {edge.consumer}.{edge.input}: unknown tool")
            continue
        o = lookup.get((ids[edge.producer], "output", edge.output))
        i = lookup.get((ids[edge.consumer], "input", edge.input))
        if o is None or i is None:
            prepared.warnings.append(f"manual edge {edge.producer}.{edge.output} -> {edge.consumer}.{edge.input}: unknown field")
            continue
        found[(o, i)] = ("manual", edge.verdict, edge.note)
    return found


def _llm_label(prepared: Prepared, labels: dict[int, Label], llm: LLMClient, config: GraphConfig,
               result: BuildResult) -> None:
    asked = [p for p in prepared.inputs if labels[p].providable or "generated identifier" not in labels[p].reason]
    requests = [
        LabelRequest(id=prepared.param_id(p), tool=prepared.tools[prepared.views[p].tool].id,
                     tool_description=prepared.tools[prepared.views[p].tool].description, path=prepared.views[p].path,
                     type=prepared.views[p].type, description=prepared.fields[p][1].description)
        for p in asked
    ]
    outcome = llm_labels(llm, requests, batch=config.llm_label_batch, seed=config.seed)
    result.llm_requests += outcome.requests
    result.llm_problems.extend(outcome.problems or [])
    for p in asked:
        label = outcome.labels.get(prepared.param_id(p))
        if label is not None:
            labels[p] = label


def _nodes(prepared: Prepared, labels: dict[int, Label]) -> tuple[list[ToolNode | ParamNode], list[Edge]]:
    """Every tool node, then one parameter node per field (with its user-providable label) and the
    `input`/`output` edge tying it to its tool, in `prepared`'s order."""
    nodes: list[ToolNode | ParamNode] = []
    links: list[Edge] = []
    for tool in prepared.tools:
        nodes.append(tool)
    for position, (tool_index, f) in enumerate(prepared.fields):
        view = prepared.views[position]
        label = labels.get(position)
        entity = view.ref.entity if view.direction == "output" else (view.accepts[0].entity if view.accepts else ())
        attribute = view.ref.attribute if view.direction == "output" else ",".join(sorted({a.attribute for a in view.accepts}))
        node = ParamNode(
            id=prepared.param_id(position), tool=prepared.tools[tool_index].id, direction=view.direction,
            path=f.path, source_path=f.source_path, type=f.type, item_type=f.item_type, format=f.format,
            enum=list(f.enum) if f.enum is not None else None, description=f.description[:500],
            required=f.required if view.direction == "input" else False, slot=f.slot, container=f.container,
            ref=f.ref, entity=" ".join(entity), attribute=attribute,
            user_providable=label.providable if label is not None else None,
            user_providable_by=label.source if label is not None else None,
            user_providable_reason=label.reason if label is not None else "",
        )
        nodes.append(node)
        tool_node = prepared.tools[tool_index].id
        if view.direction == "input":
            links.append(Edge(source=node.id, target=tool_node, kind="input", evidence="required" if f.required else ""))
        else:
            links.append(Edge(source=tool_node, target=node.id, kind="output"))
    return nodes, links


def _depends_edges(prepared: Prepared, decided: dict[tuple[int, int], bool], schema: dict[tuple[int, int], Match],
                   cosines: dict[tuple[int, int], float],
                   verdicts: dict[tuple[int, int], tuple[Provenance, str, str]]) -> list[Edge]:
    """One `depends` edge per (producer tool, consumer tool) with an accepted `feeds` pair, sorted: the
    strongest provenance (manual > llm > schema > embedding) and best score among its pairs, and how many
    fields feed it."""
    edges: list[Edge] = []
    depends: dict[tuple[int, int], tuple[float, Provenance, int]] = {}
    strength = {"manual": 3, "llm": 2, "schema": 1, "embedding": 0}
    for pair, accepted in decided.items():
        if not accepted:
            continue
        producer, consumer = prepared.views[pair[0]].tool, prepared.views[pair[1]].tool
        if producer == consumer:  # a list call's cursor loop: a feeds edge, not a step of a chain
            continue
        score = max(schema[pair].score if pair in schema else 0.0, cosines.get(pair, 0.0),
                    1.0 if pair in verdicts else 0.0)
        provenance: Provenance = verdicts[pair][0] if pair in verdicts else ("schema" if pair in schema else "embedding")
        key = (producer, consumer)
        old = depends.get(key)
        if old is None or (strength[provenance], score) > (strength[old[1]], old[0]):
            depends[key] = (score, provenance, (old[2] if old else 0) + 1)
        else:
            depends[key] = (old[0], old[1], old[2] + 1)
    for (producer, consumer), (score, provenance, count) in sorted(depends.items()):
        edges.append(Edge(source=prepared.tools[producer].id, target=prepared.tools[consumer].id, kind="depends",
                          provenance=provenance, score=round(min(1.0, score), 4), evidence=f"{count} field(s)"))
    return edges


def _assemble(prepared: Prepared, schema: dict[tuple[int, int], Match], cosines: dict[tuple[int, int], float],
              conflicts: dict[tuple[int, int], Match], verdicts: dict[tuple[int, int], tuple[Provenance, str, str]],
              labels: dict[int, Label], config: GraphConfig, embedder: Embedder | None, llm: LLMClient | None) -> ToolGraph:
    thresholds = config.thresholds
    nodes, links = _nodes(prepared, labels)

    proposing = min(thresholds.embedding, thresholds.embedding_alone)  # embedding edges recorded from here
    pairs = set(schema) | {p for p, c in cosines.items() if c >= proposing} | set(verdicts)
    decided: dict[tuple[int, int], bool] = {}
    for pair in sorted(pairs):
        match = schema.get(pair) or conflicts.get(pair)
        accepted = decide(match, cosines.get(pair), thresholds)
        verdict = verdicts.get(pair)
        if verdict is not None:
            verdict_by, value, _ = verdict
            if verdict_by == "manual" or value == "accept" or config.llm_can_reject:
                accepted = value == "accept"
        decided[pair] = accepted
        source, target = prepared.param_id(pair[0]), prepared.param_id(pair[1])
        if pair in schema:
            links.append(Edge(source=source, target=target, kind="feeds", provenance="schema",
                              score=round(schema[pair].score, 4), accepted=accepted, evidence=schema[pair].evidence))
        cosine = cosines.get(pair)
        if cosine is not None and cosine >= proposing:
            links.append(Edge(source=source, target=target, kind="feeds", provenance="embedding",
                              score=round(min(1.0, max(0.0, cosine)), 4), accepted=accepted,
                              evidence="conflicting schemas" if pair in conflicts and conflicts[pair].conflict else ""))
        if verdict is not None:
            verdict_by, value, reason = verdict
            links.append(Edge(source=source, target=target, kind="feeds", provenance=verdict_by,
                              score=1.0 if value == "accept" else 0.0, accepted=accepted,
                              verdict="accept" if value == "accept" else "reject", evidence=reason[:200]))

    links += _depends_edges(prepared, decided, schema, cosines, verdicts)

    accepted_links = [e for e in links if e.accepted]
    info = BuildInfo(
        servers=sorted({t.server for t in prepared.tools}),
        tools=len(prepared.tools), params=len(prepared.fields),
        edges=dict(sorted(Counter(e.kind for e in accepted_links).items())),
        feeds_by_provenance=dict(sorted(Counter(e.provenance for e in accepted_links if e.kind == "feeds").items())),
        thresholds=thresholds.as_dict(),
        embedder=embedder.model_id if embedder is not None else None,
        llm=llm.model_id if llm is not None else None,
        warnings=list(prepared.warnings),
    )
    return ToolGraph(graph=info, nodes=nodes, links=links)


def feeds_key(prepared: Prepared, pair: tuple[int, int]) -> tuple[str, str]:
    return prepared.param_id(pair[0]), prepared.param_id(pair[1])


__all__ = ["BuildResult", "GraphConfig", "ManualEdge", "Prepared", "build_graph", "compact", "decide", "prepare"]
