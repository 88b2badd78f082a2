"""The LLM steps of a build: per-environment edge review (verdicts and proposals validated against the
schemas; a rejection vetoes) and `user_providable` labels in batches (generated identifiers stay not
providable). Every test uses a scripted LLM client (`envfactory.llm.ScriptedClient`): no model runs,
the answers are written in the test."""

from __future__ import annotations

import json
from collections.abc import Callable

from envfactory.graph import GraphConfig, ToolSet, build_graph
from envfactory.llm import ChatRequest, ChatResponse, ScriptedClient, text_response
from envfactory.spec import ToolSpec

S = {"type": "string"}


def tool(name: str, inputs: dict[str, object], outputs: dict[str, object], required: list[str] | None = None) -> ToolSpec:
    return ToolSpec(name=name, description=f"{name} things", effect="write",
                    input_schema={"type": "object", "properties": inputs, "required": required or []},
                    output_schema={"type": "object", "properties": outputs})


SETS = [ToolSet("shop", (
    tool("create_order", {"note": S}, {"order_id": S, "total": {"type": "number"}}),
    tool("pay_order", {"order_id": S}, {"receipt": S}, ["order_id"]),
    tool("archive", {"ref": S, "label": S}, {}, ["ref", "label"]),
    tool("track", {"order_id": S}, {}, ["order_id"]),
))]


def answer(edges: list[dict[str, str]], labels: Callable[[ChatRequest], list[dict[str, object]]] | None = None,
           ) -> Callable[[ChatRequest], ChatResponse]:
    def respond(request: ChatRequest) -> ChatResponse:
        assert request.response_format is not None
        if request.response_format.name == "edges":
            return text_response(json.dumps({"edges": edges}))
        return text_response(json.dumps({"labels": labels(request) if labels else []}))
    return respond


def test_review_rejects_adds_and_drops_invalid_proposals() -> None:
    edges = [
        {"producer": "create_order", "output": "order_id", "consumer": "track", "input": "order_id", "verdict": "does_not_feed"},
        {"producer": "pay_order", "output": "receipt", "consumer": "archive", "input": "ref", "verdict": "feeds", "reason": "receipts are archived"},
        {"producer": "create_order", "output": "total", "consumer": "archive", "input": "ref", "verdict": "feeds"},
        {"producer": "ghost", "output": "x", "consumer": "archive", "input": "ref", "verdict": "feeds"},
        {"producer": "pay_order", "output": "nothing", "consumer": "archive", "input": "ref", "verdict": "feeds"},
        {"producer": "pay_order", "output": "receipt", "consumer": "pay_order", "input": "order_id", "verdict": "feeds"},
    ]
    client = ScriptedClient([answer(edges), answer([])])
    result = build_graph(SETS, GraphConfig(llm_labels=False), llm=client)
    feeds = {(e.source, e.target, e.provenance): e for e in result.graph.feeds(accepted_only=False)}
    schema_edge = feeds[("shop__create_order:out:order_id", "shop__track:in:order_id", "schema")]
    assert not schema_edge.accepted  # vetoed by the review
    assert feeds[("shop__create_order:out:order_id", "shop__track:in:order_id", "llm")].verdict == "reject"
    assert feeds[("shop__create_order:out:order_id", "shop__pay_order:in:order_id", "schema")].accepted
    added = feeds[("shop__pay_order:out:receipt", "shop__archive:in:ref", "llm")]
    assert added.accepted and added.evidence == "receipts are archived"
    assert not any(e[0].endswith("out:total") for e in feeds)  # number into string: dropped
    problems = "\n".join(result.llm_problems)
    assert "types cannot flow" in problems and "unknown tool" in problems and "no such output" in problems
    assert "cannot feed itself" in problems
    assert client.requests[0].messages[-1].content.count("->") >= 2  # candidates were shown
    assert result.graph.graph.llm == "scripted"


def test_rejections_count_only_when_allowed() -> None:
    edges = [{"producer": "create_order", "output": "order_id", "consumer": "track", "input": "order_id", "verdict": "does_not_feed"}]
    result = build_graph(SETS, GraphConfig(llm_labels=False, llm_can_reject=False), llm=ScriptedClient([answer(edges)]))
    kept = [e for e in result.graph.feeds() if e.target == "shop__track:in:order_id"]
    assert kept and all(e.accepted for e in kept)


def test_a_failed_review_keeps_the_matchers_decisions() -> None:
    result = build_graph(SETS, GraphConfig(llm_labels=False), llm=ScriptedClient([RuntimeError("endpoint down")]))
    assert any(e.target == "shop__track:in:order_id" for e in result.graph.feeds())
    assert "endpoint down" in "\n".join(result.llm_problems)


def test_labels_never_make_generated_ids_providable() -> None:
    asked: list[str] = []

    def labels(request: ChatRequest) -> list[dict[str, object]]:
        text = request.messages[-1].content
        ids = [line.split("id: ", 1)[1] for line in text.splitlines() if line.startswith("- id: ")]
        asked.extend(ids)
        return [{"id": i, "user_providable": "label" not in i, "reason": "scripted"} for i in ids] + [
            {"id": "made-up", "user_providable": True}]

    client = ScriptedClient([answer([]), answer([], labels)])
    result = build_graph(SETS, GraphConfig(llm_label_batch=32), llm=client)
    params = {p.id: p for p in result.graph.params()}
    assert "shop__pay_order:in:order_id" not in asked  # a generated id is not even asked about
    assert params["shop__pay_order:in:order_id"].user_providable is False
    assert params["shop__archive:in:label"].user_providable is False and params["shop__archive:in:label"].user_providable_by == "llm"
    assert params["shop__create_order:in:note"].user_providable_by == "llm"
    assert any("invalid label" in p for p in result.llm_problems)


def test_a_failed_label_batch_keeps_heuristic_labels() -> None:
    client = ScriptedClient([answer([]), RuntimeError("timeout")])
    result = build_graph(SETS, llm=client)
    params = {p.id: p for p in result.graph.params()}
    assert params["shop__create_order:in:note"].user_providable_by == "heuristic"
    assert "timeout" in "\n".join(result.llm_problems)
