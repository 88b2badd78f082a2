"""Edge quality against hand-labelled field-level dependencies.

Contract:
- A label row (`EdgeLabel`, one JSON object per line) says whether `(producer operation, output field)`
  feeds `(consumer operation, required input)`; operations are catalog ids, fields are flattened paths
  (`graph.flatten`). `split` is `calibration` or `test`, fixed in the file before any threshold was
  tuned; `kind` is `positive`, `hard_negative` or `negative`; `note` says why; `quote` (the REST/OpenAPI set)
  quotes the spec's descriptions that justify the label.
- `score_labels` runs the same preparation and indexed schema search as a build over every operation
  of the services the labels name, and embeds only the labelled fields (so it runs in seconds), giving
  each row its schema match, cosine and (optionally) LLM verdict.
- The LLM verdict (`llm=` a client) uses the build's reviewer (`llm_edges.review_edges`, same prompt,
  same response schema, same validation) on the labelled pairs themselves: rows are grouped by
  (producer service, consumer service), in file order, into requests of at most `tools_per_request`
  tools and `pairs_per_request` pairs; each labelled pair is a candidate edge. A row whose pair the
  model calls `feeds` is an LLM edge; `does_not_feed`, no answer, or a failed request is not.
  `llm_services` restricts the review to rows whose producer service is listed (a bounded, stated
  subset); unreviewed rows keep no LLM verdict and are left out of the `llm` figures. The requests are
  deterministic, so a recorded cassette replays the run exactly.
- `evaluate` reports precision and recall per provenance (schema, embedding, llm when run: over the
  reviewed rows, next to the schema matcher on the same rows) and for the combined decision, per split;
  `calibrate` chooses thresholds on the calibration split only (maximising F1 subject to precision ≥
  `min_precision`, on a fixed grid).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from envfactory.graph.build import (
    GraphConfig,
    Prepared,
    decide,
    embedding_texts,
    prepare,
    schema_candidates,
    tool_briefs,
)
from envfactory.graph.calibration import Thresholds
from envfactory.graph.errors import GraphInputError
from envfactory.graph.inputs import tools_from_operations
from envfactory.graph.llm_edges import Candidate, ToolBrief, review_edges
from envfactory.graph.match import Match, schema_score, types_compatible
from envfactory.spec import Operation, SpecModel

if TYPE_CHECKING:
    from envfactory.llm import Embedder, LLMClient

Split = Literal["calibration", "test"]


class EdgeLabel(SpecModel):
    """One hand label: whether a producer's output field can fill a consumer's input field, and the kind of
    example it is."""
    id: str
    producer: str
    output: str
    consumer: str
    input: str
    label: bool
    kind: Literal["positive", "hard_negative", "negative"]
    split: Split
    note: str
    quote: str = ""


def default_labels_path() -> Path:
    """The packaged hand-labelled edge file of the AWS and Google services (`graph/data/edge_labels.jsonl`)."""
    from importlib import resources

    return Path(str(resources.files("envfactory.graph") / "data" / "edge_labels.jsonl"))


def openapi_labels_path() -> Path:
    """The packaged hand-labelled edge file of REST/OpenAPI services (`graph/data/edge_labels_openapi.jsonl`):
    10 services of the shipped library, split `calibration` (tuning) and `test` (held out) by service."""
    from importlib import resources

    return Path(str(resources.files("envfactory.graph") / "data" / "edge_labels_openapi.jsonl"))


def family(operation_id: str) -> str:
    """The provider family of a catalog operation id: `aws`, `google`, or `openapi` (every other provider)."""
    provider = operation_id.split(":", 1)[0]
    return provider if provider in ("aws", "google") else "openapi"


def load_labels(path: Path) -> list[EdgeLabel]:
    """Read a label file; a malformed line is a `GraphInputError` naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GraphInputError(f"{path}: cannot read the labels ({exc})") from exc
    rows: list[EdgeLabel] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(EdgeLabel.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            raise GraphInputError(f"{path}:{number}: not a valid label row ({str(exc).splitlines()[0]})") from exc
    if not rows:
        raise GraphInputError(f"{path}: no label rows")
    return rows


def label_services(rows: Iterable[EdgeLabel]) -> list[str]:
    """The catalog service ids the labels name (`provider:service:version`)."""
    return sorted({r.producer.rsplit(":", 1)[0] for r in rows} | {r.consumer.rsplit(":", 1)[0] for r in rows})


@dataclass(frozen=True, slots=True)
class Scored:
    """One labelled row with what each method said of it: the schema match, the embedding cosine, the LLM
    review, and why a row could not be scored."""
    row: EdgeLabel
    schema: Match | None
    cosine: float | None
    llm: bool | None = None
    missing: str = ""
    reviewed: bool = False


@dataclass(slots=True)
class Scoring:
    """The scored rows of an evaluation, with the counts of tools and fields and the models and LLM
    requests used."""
    rows: list[Scored] = field(default_factory=list)
    tools: int = 0
    fields: int = 0
    embedder: str | None = None
    llm: str | None = None
    llm_requests: int = 0
    llm_failed_requests: int = 0
    llm_problems: list[str] = field(default_factory=list)


def score_labels(rows: Sequence[EdgeLabel], operations: Sequence[Operation], *, embedder: Embedder | None = None,
                 config: GraphConfig | None = None, llm: LLMClient | None = None,
                 llm_services: Collection[str] | None = None, tools_per_request: int = 6, pairs_per_request: int = 6,
                 progress: Callable[[str], None] | None = None) -> Scoring:
    """Schema match, cosine and (with `llm`) LLM verdict of every labelled pair (see the module docstring)."""
    config = config or GraphConfig()
    prepared = prepare(tools_from_operations(operations), config)
    schema = schema_candidates(prepared).scores
    where: dict[tuple[str, str, str], int] = {}
    for position, view in enumerate(prepared.views):
        tool = prepared.tools[view.tool]
        op_id = tool.source.operation_id if tool.source is not None else tool.id
        where[(op_id, view.direction, view.path)] = position
    pairs: list[tuple[EdgeLabel, int | None, int | None]] = [
        (r, where.get((r.producer, "output", r.output)), where.get((r.consumer, "input", r.input))) for r in rows
    ]
    cosines = _cosines(prepared, [(o, i) for _, o, i in pairs if o is not None and i is not None], embedder)
    scoring = Scoring(tools=len(prepared.tools), fields=len(prepared.fields),
                      embedder=embedder.model_id if embedder is not None else None)
    for row, o, i in pairs:
        if o is None or i is None:
            side = f"output {row.producer} {row.output}" if o is None else f"input {row.consumer} {row.input}"
            scoring.rows.append(Scored(row, None, None, missing=f"no {side} in the catalog"))
            continue
        match = schema.get((o, i)) or schema_score(prepared.views[o], prepared.views[i])
        scoring.rows.append(Scored(row, match, cosines.get((o, i)) if embedder is not None else None))
    if llm is not None:
        wanted = [(r, o, i) for r, o, i in pairs if o is not None and i is not None
                  and (llm_services is None or r.producer.rsplit(":", 1)[0] in llm_services)]
        verdicts = _review_labelled(prepared, wanted, llm, scoring, seed=config.seed, tools_per_request=tools_per_request,
                                    pairs_per_request=pairs_per_request, progress=progress)
        scoring.llm = llm.model_id
        scoring.rows = [replace(s, llm=verdicts[s.row.id], reviewed=True) if s.row.id in verdicts else s
                        for s in scoring.rows]
    return scoring


LabelChunk = tuple[str, list[tuple[EdgeLabel, int, int]]]


def label_chunks(prepared: Prepared, pairs: Sequence[tuple[EdgeLabel, int, int]], *, tools_per_request: int,
                 pairs_per_request: int) -> list[LabelChunk]:
    """The review requests for labelled pairs (see the module docstring): `(environment text, rows)`.

    A chunk never holds two different tools of the same name (the reviewer names tools by name); a row
    whose producer and consumer share a name is left out."""
    groups: dict[tuple[str, str], list[tuple[EdgeLabel, int, int]]] = defaultdict(list)
    for row, o, i in pairs:
        servers = (prepared.tools[prepared.views[o].tool].server, prepared.tools[prepared.views[i].tool].server)
        groups[servers].append((row, o, i))
    chunks: list[LabelChunk] = []
    for (producer_server, consumer_server), members in sorted(groups.items()):
        where = producer_server if producer_server == consumer_server else f"{producer_server} and {consumer_server}"
        current: list[tuple[EdgeLabel, int, int]] = []
        names: dict[str, int] = {}
        for row, o, i in sorted(members, key=lambda m: m[0].id):
            ends = (prepared.views[o].tool, prepared.views[i].tool)
            if prepared.tools[ends[0]].name == prepared.tools[ends[1]].name:
                continue
            grown = dict(names)
            clash = False
            for tool in ends:
                name = prepared.tools[tool].name
                clash = clash or grown.get(name, tool) != tool
                grown[name] = tool
            if current and (clash or len(grown) > tools_per_request or len(current) >= pairs_per_request):
                chunks.append((where, current))
                current, grown = [], {prepared.tools[t].name: t for t in ends}
            current.append((row, o, i))
            names = grown
        if current:
            chunks.append((where, current))
    return chunks


def _review_labelled(prepared: Prepared, pairs: Sequence[tuple[EdgeLabel, int, int]], client: LLMClient,
                     scoring: Scoring, *, seed: int, tools_per_request: int, pairs_per_request: int,
                     progress: Callable[[str], None] | None) -> dict[str, bool | None]:
    briefs = tool_briefs(prepared)
    chunks = label_chunks(prepared, pairs, tools_per_request=tools_per_request, pairs_per_request=pairs_per_request)
    verdicts: dict[str, bool | None] = {}
    for number, (where, rows) in enumerate(chunks, 1):
        order: list[int] = []
        candidates: list[Candidate] = []
        for _, o, i in rows:
            vo, vi = prepared.views[o], prepared.views[i]
            order += [t for t in dict.fromkeys((vo.tool, vi.tool)) if t not in order]
            candidates.append(Candidate(briefs[vo.tool].id, vo.path, briefs[vi.tool].id, vi.path))
        if progress is not None:
            progress(f"llm review {number}/{len(chunks)}: {where}, {len(rows)} labelled pair(s)")
        tools: list[ToolBrief] = [briefs[t] for t in order]
        outcome = review_edges(client, where, tools, candidates, tools_per_request=len(tools), seed=seed)
        scoring.llm_requests += outcome.requests
        scoring.llm_failed_requests += outcome.failed_requests
        scoring.llm_problems.extend(outcome.problems)
        said = {(r.producer, r.output, r.consumer, r.input): r.verdict for r in outcome.reviews}
        for (row, _, _), candidate in zip(rows, candidates, strict=True):
            verdict = said.get((candidate.producer, candidate.output, candidate.consumer, candidate.input))
            verdicts[row.id] = None if verdict is None else verdict == "feeds"
    return verdicts


def _cosines(prepared: Prepared, pairs: Sequence[tuple[int, int]], embedder: Embedder | None) -> dict[tuple[int, int], float]:
    if embedder is None or not pairs:
        return {}
    import numpy as np

    positions = sorted({p for pair in pairs for p in pair})
    texts = embedding_texts(prepared, positions)
    unique = sorted(set(texts))
    vectors = np.asarray(embedder.embed(unique), dtype=np.float32)
    row_of = {text: n for n, text in enumerate(unique)}
    vec = {p: vectors[row_of[t]] for p, t in zip(positions, texts, strict=True)}
    result: dict[tuple[int, int], float] = {}
    for o, i in pairs:
        if types_compatible(prepared.views[o], prepared.views[i]) and prepared.views[o].tool != prepared.views[i].tool:
            result[(o, i)] = round(float(vec[o] @ vec[i]), 4)
    return result


# -- metrics --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """Confusion counts of one method on one split, and whether the method could run at all."""
    name: str
    split: str
    tp: int
    fp: int
    fn: int
    tn: int
    available: bool = True

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 0.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 0.0 when nothing was labelled positive."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """The harmonic mean of precision and recall; 0.0 when both are 0."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, object]:
        """The counts and the three rates (rounded to 4 places), JSON-ready."""
        return {"name": self.name, "split": self.split, "available": self.available, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn, "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4)}


def _count(name: str, split: str, rows: Sequence[Scored], predict: dict[str, bool], available: bool = True) -> Metric:
    tp = fp = fn = tn = 0
    for s in rows:
        guess = predict.get(s.row.id, False)
        if s.row.label and guess:
            tp += 1
        elif s.row.label:
            fn += 1
        elif guess:
            fp += 1
        else:
            tn += 1
    return Metric(name, split, tp, fp, fn, tn, available)


def predictions(rows: Sequence[Scored], thresholds: Thresholds) -> dict[str, dict[str, bool]]:
    """Per provenance (and `combined`, and `combined_without_models`): row id → predicted edge."""
    out: dict[str, dict[str, bool]] = {"schema": {}, "embedding": {}, "embedding_raw": {}, "llm": {}, "combined": {},
                                       "schema_only": {}}
    for s in rows:
        rid = s.row.id
        out["schema"][rid] = s.schema is not None and s.schema.score >= thresholds.schema_alone
        conflict = s.schema is not None and s.schema.conflict
        out["embedding"][rid] = s.cosine is not None and s.cosine >= thresholds.embedding_alone and not conflict
        out["embedding_raw"][rid] = s.cosine is not None and s.cosine >= thresholds.embedding_alone
        out["llm"][rid] = bool(s.llm)
        combined = decide(s.schema, s.cosine, thresholds)
        if s.llm is not None:
            combined = s.llm
        out["combined"][rid] = combined
        out["schema_only"][rid] = decide(s.schema, None, thresholds)
    return out


@dataclass(slots=True)
class Report:
    """An evaluation report: the thresholds used, a metric per method and split, and the rows that could
    not be found."""
    thresholds: Thresholds
    metrics: list[Metric]
    rows: int
    missing: list[str]
    embedder: str | None
    llm: str | None
    llm_rows: int = 0


SPLITS: tuple[str, ...] = ("calibration", "test", "all")


def evaluate(scoring: Scoring, thresholds: Thresholds) -> Report:
    """Precision and recall per provenance and combined, per split (combined last).

    The `llm` figures count only the rows the model reviewed; `schema, llm-reviewed rows` is the schema
    matcher on those same rows, for comparison. A split the model reviewed no row of is not available."""
    usable = [s for s in scoring.rows if not s.missing]
    guess = predictions(usable, thresholds)
    has_embedding = scoring.embedder is not None
    has_llm = scoring.llm is not None
    metrics: list[Metric] = []
    for split in SPLITS:
        part = [s for s in usable if split == "all" or s.row.split == split]
        reviewed = [s for s in part if s.reviewed]
        metrics.append(_count("schema", split, part, guess["schema"]))
        metrics.append(_count("embedding", split, part, guess["embedding"], has_embedding))
        metrics.append(_count("embedding, raw cosine", split, part, guess["embedding_raw"], has_embedding))
        metrics.append(_count("llm", split, reviewed, guess["llm"], has_llm and bool(reviewed)))
        if has_llm:
            metrics.append(_count("schema, llm-reviewed rows", split, reviewed, guess["schema"], bool(reviewed)))
        metrics.append(_count("combined without models", split, part, guess["schema_only"]))
        metrics.append(_count("combined", split, part, guess["combined"]))
    return Report(thresholds, metrics, len(scoring.rows), [s.missing for s in scoring.rows if s.missing],
                  scoring.embedder, scoring.llm, sum(s.reviewed for s in usable))


def family_metrics(scoring: Scoring, thresholds: Thresholds) -> list[Metric]:
    """The combined decision's precision and recall per provider family (of the producer) and split:
    one `Metric` named `combined, <family>` per family and split (`calibration`, `test`, `all`)."""
    usable = [s for s in scoring.rows if not s.missing]
    guess = predictions(usable, thresholds)["combined"]
    metrics: list[Metric] = []
    for fam in sorted({family(s.row.producer) for s in usable}):
        mine = [s for s in usable if family(s.row.producer) == fam]
        for split in SPLITS:
            part = [s for s in mine if split == "all" or s.row.split == split]
            metrics.append(_count(f"combined, {fam}", split, part, guess))
    return metrics


SCHEMA_GRID: tuple[float, ...] = (0.45, 0.6, 0.75, 0.8, 0.85, 0.9, 0.95)
EMBEDDING_GRID: tuple[float, ...] = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))
OFF = 1.01  # a threshold no cosine reaches: the provenance is off


def _pick(part: Sequence[Scored], name: str, grid: Sequence[float], make: Callable[[float], Thresholds],
          min_precision: float) -> float:
    best: tuple[tuple[float, float, float], float] | None = None
    for value in grid:
        metric = _count(name, "calibration", part, predictions(part, make(value))[name])
        ok = metric.precision >= min_precision and metric.tp > 0
        key = (1.0 if ok else 0.0, metric.f1 if ok else metric.precision, value)
        if best is None or key > best[0]:
            best = (key, value)
    assert best is not None
    return best[1] if best[0][0] else OFF


def calibrate(scoring: Scoring, *, min_precision: float = 0.9) -> tuple[Thresholds, Metric]:
    """Thresholds from the calibration split only (never the test split).

    Each provenance on its own: `schema_alone` maximises the schema matcher's F1 with precision ≥
    `min_precision`; `embedding_alone` does the same for embedding edges (cosine, vetoed where the
    schemas conflict). The combined pair (`schema`, `embedding`) maximises the combined decision's F1
    under the same precision floor, searched jointly. Ties go to the higher thresholds; a provenance
    that cannot reach the precision floor is off (1.01)."""
    part = [s for s in scoring.rows if not s.missing and s.row.split == "calibration"]
    schema_alone = _pick(part, "schema", SCHEMA_GRID, lambda v: Thresholds(OFF, OFF, v, OFF), min_precision)
    embedding_alone = OFF
    grid: tuple[float, ...] = (OFF,)
    if scoring.embedder is not None:
        embedding_alone = _pick(part, "embedding", EMBEDDING_GRID, lambda v: Thresholds(OFF, OFF, OFF, v), min_precision)
        grid = (*EMBEDDING_GRID, OFF)
    best: tuple[tuple[float, float, float, float], Thresholds, Metric] | None = None
    for ts in SCHEMA_GRID:
        for te in grid:
            thresholds = Thresholds(ts, te, schema_alone, embedding_alone)
            metric = _count("combined", "calibration", part, predictions(part, thresholds)["combined"])
            ok = metric.precision >= min_precision
            key = (1.0 if ok else 0.0, metric.f1 if ok else metric.precision, ts, te)
            if best is None or key > best[0]:
                best = (key, thresholds, metric)
    assert best is not None
    return best[1], best[2]
