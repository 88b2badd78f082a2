"""The llm provenance of `graph eval`: the build's reviewer asked about the labelled pairs themselves,
grouped into bounded requests, verdicts mapped back to label rows, figures over the reviewed rows only.

The first tests use a scripted LLM client (`envfactory.llm.ScriptedClient`, answers written here, in
the shapes the real 0.5B model gives: fields written with their tool's name in front, missing
verdicts). The last one replays a cassette recorded from the bundled local model
(Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) through the CLI and checks that the printed llm figures are the
recorded ones."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from graph_helpers import operation
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.graph import DEFAULT_THRESHOLDS
from envfactory.graph.build import prepare
from envfactory.graph.evaluate import EdgeLabel, evaluate, label_chunks, score_labels
from envfactory.graph.inputs import tools_from_operations
from envfactory.llm import ChatRequest, ChatResponse, ScriptedClient, text_response

S = {"type": "string"}
OPS = [
    operation("q", "CreateQueue", {"QueueName": S}, {"QueueUrl": S, "QueueArn": S}, ["QueueName"]),
    operation("q", "SendMessage", {"QueueUrl": S, "MessageBody": S}, {"MessageId": S}, ["QueueUrl", "MessageBody"]),
    operation("t", "CreateTopic", {"Name": S}, {"TopicArn": S}, ["Name"]),
    operation("t", "Publish", {"TopicArn": S, "Message": S}, {"MessageId": S}, ["TopicArn", "Message"]),
    operation("t", "Subscribe", {"TopicArn": S, "Endpoint": S}, {"SubscriptionArn": S}, ["TopicArn", "Endpoint"]),
]
Q, T = "aws:q:2020-01-01", "aws:t:2020-01-01"


def label(n: int, producer: str, output: str, consumer: str, input_: str, truth: bool, split: str) -> EdgeLabel:
    return EdgeLabel(id=f"L{n}", producer=producer, output=output, consumer=consumer, input=input_, label=truth,
                     kind="positive" if truth else "hard_negative", split=split, note="test row")


LABELS = [
    label(1, f"{Q}:CreateQueue", "QueueUrl", f"{Q}:SendMessage", "QueueUrl", True, "test"),
    label(2, f"{Q}:CreateQueue", "QueueArn", f"{Q}:SendMessage", "QueueUrl", False, "test"),
    label(3, f"{T}:CreateTopic", "TopicArn", f"{T}:Publish", "TopicArn", True, "calibration"),
    label(4, f"{T}:CreateTopic", "TopicArn", f"{T}:Subscribe", "TopicArn", True, "calibration"),
    label(5, f"{Q}:CreateQueue", "QueueArn", f"{T}:Subscribe", "Endpoint", True, "test"),
]


def edge(producer: str, output: str, consumer: str, input_: str, verdict: str) -> dict[str, str]:
    return {"producer": producer, "output": output, "consumer": consumer, "input": input_, "verdict": verdict}


def reviewer(asked: list[str]) -> Callable[[ChatRequest], ChatResponse]:
    """Answers per environment, as the user message names it; records which environments were asked."""
    answers = {
        "aws-q": [edge("CreateQueue", "CreateQueue.QueueUrl", "SendMessage", "SendMessage.QueueUrl", "feeds"),
                  edge("CreateQueue", "QueueArn", "SendMessage", "QueueUrl", "feeds")],
        "aws-q and aws-t": [edge("CreateQueue", "QueueArn", "Subscribe", "Endpoint", "feeds")],
        # L3 rejected, L4 not answered, one answer about a field that does not exist
        "aws-t": [edge("CreateTopic", "TopicArn", "Publish", "TopicArn", "does_not_feed"),
                  edge("CreateTopic", "TopicId", "Subscribe", "TopicArn", "feeds")],
    }

    def respond(request: ChatRequest) -> ChatResponse:
        text = request.messages[-1].content or ""
        match = re.match(r"Environment: (.*)\n", text)
        assert match is not None
        asked.append(match.group(1))
        return text_response(json.dumps({"edges": answers[match.group(1)]}))
    return respond


def test_chunks_group_by_service_pair_and_respect_the_bounds() -> None:
    prepared = prepare(tools_from_operations(OPS))
    where = {(prepared.tools[v.tool].source.operation_id, v.direction, v.path): n  # type: ignore[union-attr]
             for n, v in enumerate(prepared.views)}
    pairs = [(r, where[(r.producer, "output", r.output)], where[(r.consumer, "input", r.input)]) for r in LABELS]
    chunks = label_chunks(prepared, pairs, tools_per_request=6, pairs_per_request=6)
    assert [(w, [r.id for r, _, _ in rows]) for w, rows in chunks] == [
        ("aws-q", ["L1", "L2"]), ("aws-q and aws-t", ["L5"]), ("aws-t", ["L3", "L4"])]
    one_each = label_chunks(prepared, pairs, tools_per_request=6, pairs_per_request=1)
    assert [len(rows) for _, rows in one_each] == [1, 1, 1, 1, 1]
    two_tools = label_chunks(prepared, pairs, tools_per_request=2, pairs_per_request=6)
    assert [[r.id for r, _, _ in rows] for _, rows in two_tools] == [["L1", "L2"], ["L5"], ["L3"], ["L4"]]


def test_llm_figures_count_the_reviewed_rows_and_the_verdicts() -> None:
    asked: list[str] = []
    client = ScriptedClient([reviewer(asked)] * 3)
    scoring = score_labels(LABELS, OPS, llm=client)
    assert asked == ["aws-q", "aws-q and aws-t", "aws-t"]
    verdicts = {s.row.id: s.llm for s in scoring.rows}
    assert verdicts == {"L1": True, "L2": True, "L3": False, "L4": None, "L5": True}
    assert scoring.llm == "scripted" and scoring.llm_requests == 3 and scoring.llm_failed_requests == 0
    assert any("TopicId" in p for p in scoring.llm_problems)
    report = evaluate(scoring, DEFAULT_THRESHOLDS)
    llm = {m.split: m for m in report.metrics if m.name == "llm"}
    assert (llm["all"].tp, llm["all"].fp, llm["all"].fn, llm["all"].tn) == (2, 1, 2, 0)
    assert (llm["test"].tp, llm["test"].fp) == (2, 1) and llm["calibration"].fn == 2
    combined = {m.split: m for m in report.metrics if m.name == "combined"}
    assert combined["test"].fp == 1  # the llm's wrong "feeds" overrides the schema matcher's "no"
    assert report.metrics[-1].name == "combined" and report.llm_rows == 5


def test_llm_services_bound_the_review_and_the_figures() -> None:
    asked: list[str] = []
    client = ScriptedClient([reviewer(asked)] * 2)
    scoring = score_labels(LABELS, OPS, llm=client, llm_services={Q})
    assert asked == ["aws-q", "aws-q and aws-t"] and client.remaining == 0
    assert {s.row.id for s in scoring.rows if s.reviewed} == {"L1", "L2", "L5"}
    report = evaluate(scoring, DEFAULT_THRESHOLDS)
    llm = {m.split: m for m in report.metrics if m.name == "llm"}
    assert llm["calibration"].available is False and (llm["all"].tp, llm["all"].fp, llm["all"].fn) == (2, 1, 0)
    same_rows = {m.split: m for m in report.metrics if m.name == "schema, llm-reviewed rows"}
    assert same_rows["all"].tp + same_rows["all"].fn == 2  # the two true pairs among the reviewed rows


def test_a_failed_request_leaves_its_rows_without_a_verdict() -> None:
    client = ScriptedClient(["not json", '{"edges": []}', '{"edges": []}'])
    scoring = score_labels(LABELS, OPS, llm=client)
    assert scoring.llm_failed_requests == 1 and scoring.llm_requests == 3
    assert all(s.reviewed and s.llm is None for s in scoring.rows)


CASSETTE = Path(__file__).parent / "fixtures" / "eval_llm_sqs_sns.jsonl"
RECORDED = Path(__file__).parent / "fixtures" / "eval_llm_sqs_sns.expected.json"


@pytest.mark.slow
def test_replayed_local_model_run_prints_the_recorded_figures(tmp_path: Path, catalog_cache: Path) -> None:
    """Replays the cassette recorded from the bundled local model (see docs/graph.md for the command)
    and checks the llm figures against the ones that live run printed."""
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, [
        "graph", "eval", "--no-embed", "--llm", "--provider", "replay", "--cassette", str(CASSETTE),
        *recorded["flags"], "--cache-dir", str(catalog_cache), "-w", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the failed requests' warnings go to stderr
    llm_now = [m for m in payload["metrics"] if m["name"] in ("llm", "schema, llm-reviewed rows")]
    assert llm_now == recorded["metrics"]
    assert {k: payload["llm"][k] for k in recorded["llm"]} == recorded["llm"]
    assert payload["llm"]["model"].startswith("local/qwen2.5-coder-0.5b")
    assert payload["metrics"][-1]["name"] == "combined"
