"""The labelled edge set and its evaluation: the committed file's size, balance, coverage and notes;
metrics and calibration (on the calibration split only); and, slower, scoring the real catalog."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from envfactory.graph import DEFAULT_THRESHOLDS, GraphInputError, Thresholds
from envfactory.graph.evaluate import (
    EdgeLabel,
    Scored,
    Scoring,
    calibrate,
    default_labels_path,
    evaluate,
    label_services,
    load_labels,
    score_labels,
)
from envfactory.graph.flatten import flatten
from envfactory.graph.match import Match
from envfactory.resources import Catalog


@pytest.fixture(scope="module")
def labels() -> list[EdgeLabel]:
    return load_labels(default_labels_path())


def test_committed_labels_meet_the_brief(labels: list[EdgeLabel]) -> None:
    kinds = Counter(r.kind for r in labels)
    assert len(labels) >= 300
    assert (kinds["hard_negative"] + kinds["negative"]) / len(labels) >= 0.4
    assert kinds["hard_negative"] >= 100
    assert len(label_services(labels)) >= 12
    assert all(r.note.strip() for r in labels)
    assert len({r.id for r in labels}) == len(labels)
    assert len({(r.producer, r.output, r.consumer, r.input) for r in labels}) == len(labels)
    assert all(r.producer != r.consumer for r in labels)
    assert all((r.kind == "positive") == r.label for r in labels)
    assert {r.split for r in labels} == {"calibration", "test"}
    hard = [r for r in labels if r.kind == "hard_negative"]
    for handle in ("id", "name", "arn"):  # hard negatives between ids, names and ARNs of different entities
        assert any(r.input.lower().endswith(handle) or r.input.lower() == handle for r in hard), handle


def test_splits_are_by_producer_service(labels: list[EdgeLabel]) -> None:
    by_service: dict[str, set[str]] = {}
    for row in labels:
        by_service.setdefault(":".join(row.producer.split(":")[:2]), set()).add(row.split)
    assert all(len(splits) == 1 for splits in by_service.values())


def test_malformed_label_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(GraphInputError, match=r"labels.jsonl:1: not a valid label row"):
        load_labels(bad)
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(GraphInputError, match="no label rows"):
        load_labels(tmp_path / "empty.jsonl")
    with pytest.raises(GraphInputError, match="cannot read"):
        load_labels(tmp_path / "missing.jsonl")


def _row(n: int, label: bool, split: str) -> EdgeLabel:
    return EdgeLabel(id=f"R{n}", producer="a:s:1:P", output="o", consumer="a:s:1:C", input="i", label=label,
                     kind="positive" if label else "negative", split=split, note="n")  # type: ignore[arg-type]


def test_metrics_and_calibration_use_the_calibration_split_only() -> None:
    rows = []
    for n, (label, score, cosine, split) in enumerate([
        (True, 0.95, 0.9, "calibration"), (True, 0.75, 0.8, "calibration"), (False, 0.45, 0.3, "calibration"),
        (False, 0.0, 0.7, "calibration"), (True, 0.45, 0.6, "test"), (False, 0.95, 0.9, "test"),
    ]):
        rows.append(Scored(_row(n, label, split), Match(score, score == 0.0, ""), cosine))
    scoring = Scoring(rows=rows, embedder="fake")
    thresholds, metric = calibrate(scoring, min_precision=0.9)
    assert thresholds.schema_alone == 0.75 and metric.precision == 1.0 and metric.recall == 1.0
    flipped = Scoring(rows=[*rows[:4], Scored(_row(9, False, "test"), Match(0.45, False, ""), 0.99)], embedder="fake")
    assert calibrate(flipped, min_precision=0.9)[0] == thresholds
    report = evaluate(scoring, thresholds)
    combined = {m.split: m for m in report.metrics if m.name == "combined"}
    assert (combined["test"].tp, combined["test"].fp, combined["test"].fn) == (0, 1, 1)
    assert report.metrics[-1].name == "combined"  # combined is reported last
    assert next(m for m in report.metrics if m.name == "llm").available is False


@pytest.mark.slow
def test_labels_match_the_real_schemas(labels: list[EdgeLabel], label_catalog: Catalog) -> None:
    """Every labelled field exists in the catalog's schema, and every labelled input is required."""
    for row in labels:
        producer, consumer = label_catalog.operation(row.producer), label_catalog.operation(row.consumer)
        outputs = {f.path for f in flatten(producer.output_schema, inputs=False, max_fields=5000).fields}
        inputs = {f.path: f for f in flatten(consumer.input_schema, inputs=True, max_fields=5000).fields}
        assert row.output in outputs, row.id
        assert row.input in inputs and inputs[row.input].required, row.id


@pytest.mark.slow
def test_schema_matching_on_the_labelled_set(labels: list[EdgeLabel], label_catalog: Catalog) -> None:
    """Regression floor of the model-free matcher on the held-out split (the measured figures are in
    docs/graph.md); the default thresholds are what calibration chooses."""
    ops = [op for service in label_services(labels) for op in label_catalog.resource(service).operations]
    scoring = score_labels(labels, ops)
    assert not [s.missing for s in scoring.rows if s.missing]
    thresholds, _ = calibrate(scoring)
    assert thresholds.schema == DEFAULT_THRESHOLDS.schema
    report = evaluate(scoring, Thresholds(DEFAULT_THRESHOLDS.schema, 1.01, DEFAULT_THRESHOLDS.schema, 1.01))
    test = next(m for m in report.metrics if m.name == "combined" and m.split == "test")
    assert test.precision >= 0.9 and test.recall >= 0.75
    json.dumps([m.as_dict() for m in report.metrics])
