"""Building graphs: node-link JSON over bundled environments and catalog operations, provenance of
edges, source ids and original field names on nodes, determinism, and bad input (no tools, duplicate
names, schemas without types) reported without crashing."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_helpers import operation

from envfactory.graph import (
    GraphInputError,
    ManualEdge,
    ToolGraph,
    ToolSet,
    build_graph,
    load_graph,
    save_graph,
)
from envfactory.graph.inputs import tools_from_operations
from envfactory.graph.io import graph_bytes
from envfactory.graph.model import ParamNode
from envfactory.spec import ToolSpec

S = {"type": "string"}


def tool(name: str, inputs: dict[str, object], outputs: dict[str, object], required: list[str] | None = None) -> ToolSpec:
    return ToolSpec(name=name, description=name, effect="read",
                    input_schema={"type": "object", "properties": inputs, "required": required or []},
                    output_schema={"type": "object", "properties": outputs})


def test_bundled_graph_has_every_kind_of_node_and_edge(bundled_graph: ToolGraph) -> None:
    kinds = {e.kind for e in bundled_graph.links}
    assert kinds == {"input", "output", "feeds", "depends"}
    assert {t.server for t in bundled_graph.tools()} == {"calendar", "shop", "tracker"}
    feeds = bundled_graph.feeds()
    assert feeds and all(e.provenance == "schema" and 0 < e.score <= 1 for e in feeds)
    ids = {n.id for n in bundled_graph.nodes}
    assert all(e.source in ids and e.target in ids for e in bundled_graph.links)
    pay = {(e.source, e.target) for e in feeds if e.target == "shop__pay_order:in:id"}
    assert ("shop__create_order:out:id", "shop__pay_order:in:id") in pay
    assert ("shop__create_customer:out:id", "shop__pay_order:in:id") not in pay


def test_generated_ids_are_never_user_providable(bundled_graph: ToolGraph) -> None:
    params = {p.id: p for p in bundled_graph.params()}
    assert params["shop__pay_order:in:id"].user_providable is False
    assert params["shop__create_customer:in:email"].user_providable is True
    assert all(p.user_providable is not None for p in params.values() if p.direction == "input")


def test_graph_round_trips_as_json_not_pickle(bundled_graph: ToolGraph, tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    save_graph(bundled_graph, path)
    raw = path.read_bytes()
    assert raw.startswith(b"{") and b'"format":"envfactory.tool-graph"' in raw
    assert load_graph(path) == bundled_graph


def test_same_input_same_bytes(bundled_sets: list[ToolSet], bundled_graph: ToolGraph) -> None:
    assert graph_bytes(build_graph(bundled_sets).graph) == graph_bytes(bundled_graph)


def test_catalog_operations_keep_source_ids_and_field_names() -> None:
    ops = [
        operation("tasks", "tasks.tasklists.insert", {"body": {"type": "object", "properties": {"title": S}}},
                  {"id": S}, ["body"], provider="google"),
        operation("tasks", "tasks.tasks.insert", {"tasklist": {"type": "string", "description": "Task list identifier."}},
                  {"id": S}, ["tasklist"], provider="google"),
    ]
    graph = build_graph(tools_from_operations(ops)).graph
    node = next(t for t in graph.tools() if t.name == "tasks_tasks_insert")
    assert node.source is not None and node.source.operation_id == "google:tasks:2020-01-01:tasks.tasks.insert"
    assert node.source.field_names == {"tasklist": "tasklist"}
    param = next(p for p in graph.params() if p.tool == node.id and p.path == "tasklist")
    assert param.source_path == "tasklist" and param.slot and param.user_providable is False
    assert any(e.source.endswith("tasks_tasklists_insert:out:id") and e.target == param.id for e in graph.feeds())


def test_empty_environments_duplicates_and_untyped_schemas_are_reported() -> None:
    sets = [
        ToolSet("empty", ()),
        ToolSet("shop", (tool("get", {"id": S}, {"id": S}, ["id"]), tool("get", {}, {}))),
        ToolSet("shop", (tool("find", {"odd": {"description": "no type at all"}}, {"id": S}, ["odd"]),)),
        ToolSet("bad name!", (tool("list", {}, {"items": {"type": "array", "items": S}}),)),
    ]
    info = build_graph(sets).graph.graph
    text = "\n".join(info.warnings)
    assert "empty: has no tools; skipped" in text
    assert "two tools are named 'get'" in text
    assert "already named 'shop'; this one is shop-2" in text
    assert "without a type" in text and "odd" in text
    assert "'bad name!' is used as 'bad_name'" in text
    assert info.servers == ["bad_name", "shop", "shop-2"]


def test_nothing_to_build_is_a_clear_error() -> None:
    with pytest.raises(GraphInputError, match="nothing to build a graph from: empty: has no tools"):
        build_graph([ToolSet("empty", ())])
    with pytest.raises(GraphInputError, match="no environments or operations"):
        build_graph([])


def test_manual_edges_add_and_veto() -> None:
    sets = [ToolSet("s", (tool("make", {}, {"ref": S}), tool("use", {"thing": S}, {}, ["thing"]),
                          tool("get", {}, {"thing_id": S}), tool("eat", {"thing_id": S}, {}, ["thing_id"])))]
    manual = [ManualEdge("s__make", "ref", "s__use", "thing"), ManualEdge("s__get", "thing_id", "s__eat", "thing_id", "reject"),
              ManualEdge("s__nope", "x", "s__use", "thing")]
    graph = build_graph(sets, manual=manual).graph
    feeds = {(e.source, e.target, e.provenance): e for e in graph.feeds(accepted_only=False)}
    assert feeds[("s__make:out:ref", "s__use:in:thing", "manual")].accepted
    assert not feeds[("s__get:out:thing_id", "s__eat:in:thing_id", "schema")].accepted
    assert feeds[("s__get:out:thing_id", "s__eat:in:thing_id", "manual")].verdict == "reject"
    assert any("unknown tool" in w for w in graph.graph.warnings)


def test_param_nodes_carry_required_and_slot(bundled_graph: ToolGraph) -> None:
    params = {p.id: p for p in bundled_graph.params()}
    item = params["shop__create_order:in:items[].product_id"]
    assert isinstance(item, ParamNode) and item.required and item.slot
    assert params["shop__create_order:in:items"].container and not params["shop__create_order:in:items"].slot
