"""Edge quality against hand-labelled field-level dependencies.

Contract:
- A label row (`EdgeLabel`, one JSON object per line) says whether `(producer operation, output field)`
  feeds `(consumer operation, required input)`; operations are catalog ids, fields are flattened paths
  (`graph.flatten`). `split` is `calibration` or `test`, fixed in the file before any threshold was
  tuned; `kind` is `positive`, `hard_negative` or `negative`; `note` says why.
- `score_labels` runs the same preparation and indexed schema search as a build over every operation
  of the services the labels name, and embeds only the labelled fields (so it runs in seconds), giving
  each row its schema match, cosine and (optionally) LLM verdict.
- `evaluate` reports precision and recall per provenance (schema, embedding, llm when run) and for the
  combined decision, per split; `calibrate` chooses thresholds on the calibration split only
  (maximising F1 subject to precision ≥ `min_precision`, on a fixed grid).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from envfactory.graph.build import GraphConfig, Prepared, decide, embedding_texts, prepare, schema_candidates
from envfactory.graph.calibration import Thresholds
from envfactory.graph.errors import GraphInputError
from envfactory.graph.inputs import tools_from_operations
from envfactory.graph.match import Match, schema_score, types_compatible
from envfactory.spec import Operation, SpecModel

if TYPE_CHECKING:
    from envfactory.llm import Embedder

Split = Literal["calibration", "test"]


class EdgeLabel(SpecModel):
    id: str
    producer: str
    output: str
    consumer: str
    input: str
    label: bool
    kind: Literal["positive", "hard_negative", "negative"]
    split: Split
    note: str


def default_labels_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("envfactory.graph") / "data" / "edge_labels.jsonl"))


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
    row: EdgeLabel
    schema: Match | None
    cosine: float | None
    llm: bool | None = None
    missing: str = ""


@dataclass(slots=True)
class Scoring:
    rows: list[Scored] = field(default_factory=list)
    tools: int = 0
    fields: int = 0
    embedder: str | None = None


def score_labels(rows: Sequence[EdgeLabel], operations: Sequence[Operation], *, embedder: Embedder | None = None,
                 config: GraphConfig | None = None) -> Scoring:
    """Schema match and cosine of every labelled pair (see the module docstring)."""
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
    return scoring


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
    name: str
    split: str
    tp: int
    fp: int
    fn: int
    tn: int
    available: bool = True

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, object]:
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
    thresholds: Thresholds
    metrics: list[Metric]
    rows: int
    missing: list[str]
    embedder: str | None
    llm: str | None


SPLITS: tuple[str, ...] = ("calibration", "test", "all")


def evaluate(scoring: Scoring, thresholds: Thresholds, *, llm: str | None = None) -> Report:
    """Precision and recall per provenance and combined, per split (combined last)."""
    usable = [s for s in scoring.rows if not s.missing]
    guess = predictions(usable, thresholds)
    has_embedding = scoring.embedder is not None
    has_llm = llm is not None
    metrics: list[Metric] = []
    for split in SPLITS:
        part = [s for s in usable if split == "all" or s.row.split == split]
        metrics.append(_count("schema", split, part, guess["schema"]))
        metrics.append(_count("embedding", split, part, guess["embedding"], has_embedding))
        metrics.append(_count("embedding, raw cosine", split, part, guess["embedding_raw"], has_embedding))
        metrics.append(_count("llm", split, part, guess["llm"], has_llm))
        metrics.append(_count("combined without models", split, part, guess["schema_only"]))
        metrics.append(_count("combined", split, part, guess["combined"]))
    return Report(thresholds, metrics, len(scoring.rows), [s.missing for s in scoring.rows if s.missing],
                  scoring.embedder, llm)


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
