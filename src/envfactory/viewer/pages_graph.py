"""The tool graph page and its data: tools as nodes, `feeds` edges lifted to tool → tool edges, filtered
by environment (server), edge provenance and acceptance, or narrowed to one tool's neighbourhood.

The page is rendered on the server (information, filters, the chosen tool's edges as a table); the
drawing is done in the browser by the vendored Cytoscape.js from `/graph/data.json`, which takes the
same query parameters. Graphs are read through `models.GraphView` (tolerant; see `models`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from envfactory.viewer import pages_records
from envfactory.viewer.models import KNOWN_GRAPH_VERSIONS, GraphView, check_version
from envfactory.viewer.render import PageResult, query_int
from envfactory.viewer.workspace import GRAPH_FILES, ArtifactProblem, NotFound, WorkspaceData

PROVENANCES = ("schema", "embedding", "llm", "manual")
DEFAULT_NODE_LIMIT = 400


@dataclass(frozen=True, slots=True)
class GraphFilter:
    """What part of the graph to show (from the query string)."""

    file: str
    server: str
    tool: str
    provenances: tuple[str, ...]
    include_rejected: bool
    limit: int

    @classmethod
    def parse(cls, query: dict[str, str]) -> GraphFilter:
        """The filter a page's query asks for: unknown provenances are dropped (none left: all of them) and
        `limit` is clamped to 1–5000; never raises."""
        chosen = tuple(p for p in query.get("provenance", "").split(",") if p in PROVENANCES)
        return cls(file=query.get("file", ""), server=query.get("server", ""), tool=query.get("tool", ""),
                   provenances=chosen or PROVENANCES, include_rejected=query.get("rejected", "") == "1",
                   limit=max(1, min(query_int(query, "limit", DEFAULT_NODE_LIMIT), 5000)))

    def query(self, **changes: str) -> str:
        """This filter as a query string, with `changes` applied."""
        values = {"file": self.file, "server": self.server, "tool": self.tool,
                  "provenance": ",".join(self.provenances) if self.provenances != PROVENANCES else "",
                  "rejected": "1" if self.include_rejected else ""}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


def load_graph(data: WorkspaceData, key: str) -> tuple[str, GraphView]:
    """The graph file `key` (or the first one found) and its contents."""
    files = data.data_files(GRAPH_FILES)
    if not files:
        raise NotFound("no tool graph in this workspace (build one with `envfactory graph build`)")
    item = next((f for f in files if f.key == key), None) if key else files[0]
    if item is None:
        raise NotFound(f"no graph file {key!r}")
    raw = data.json(item.path)
    problem = check_version(raw, KNOWN_GRAPH_VERSIONS, item.key)
    if problem is None and raw.get("format") != "envfactory.tool-graph":
        problem = f"{item.key}: not an envfactory tool graph (no \"format\": \"envfactory.tool-graph\")"
    if problem:
        raise ArtifactProblem(problem)
    return item.key, data.model(item.path, GraphView, "tool graph")


def tool_edges(graph: GraphView, selection: GraphFilter) -> list[dict[str, Any]]:
    """`feeds` edges lifted to tool → tool, with the parameter names, filtered by `selection`."""
    owner = {n.id: (n.tool, n.path) for n in graph.nodes if n.kind == "param"}
    servers = {n.id: n.server for n in graph.nodes if n.kind == "tool"}
    edges = []
    for edge in graph.links:
        if edge.kind != "feeds" or edge.provenance not in selection.provenances:
            continue
        if not edge.accepted and not selection.include_rejected:
            continue
        source, output = owner.get(edge.source, ("", ""))
        target, input_ = owner.get(edge.target, ("", ""))
        if not source or not target:
            continue
        if selection.server and selection.server not in (servers.get(source), servers.get(target)):
            continue
        if selection.tool and selection.tool not in (source, target):
            continue
        edges.append({"source": source, "target": target, "output": output, "input": input_,
                      "provenance": edge.provenance, "score": edge.score, "accepted": edge.accepted,
                      "evidence": edge.evidence})
    return edges


def graph_elements(graph: GraphView, selection: GraphFilter) -> dict[str, Any]:
    """Cytoscape elements for the selection; at most `limit` nodes (the rest is counted, not drawn)."""
    tools = {n.id: n for n in graph.nodes if n.kind == "tool"}
    edges = tool_edges(graph, selection)
    wanted: list[str] = []
    if selection.tool:
        wanted.append(selection.tool)
    elif selection.server:
        wanted += [t for t, n in tools.items() if n.server == selection.server]
    for edge in edges:
        wanted += [edge["source"], edge["target"]]
    ordered = [t for t in dict.fromkeys(wanted) if t in tools]
    shown = set(ordered[:selection.limit])
    nodes = [{"data": {"id": t, "label": tools[t].name, "server": tools[t].server, "effect": tools[t].effect,
                       "focus": t == selection.tool}} for t in ordered[:selection.limit]]
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for edge in edges:
        if edge["source"] in shown and edge["target"] in shown:
            key = (edge["source"], edge["target"])
            entry = pairs.setdefault(key, {"id": f"e{len(pairs)}", "source": key[0], "target": key[1],
                                           "provenance": edge["provenance"], "accepted": edge["accepted"],
                                           "label": []})
            entry["label"].append(f"{edge['output']} → {edge['input']}")
            entry["accepted"] = entry["accepted"] or edge["accepted"]
    links = [{"data": {**e, "label": "; ".join(e["label"][:3])}} for e in pairs.values()]
    return {"nodes": nodes, "edges": links, "hidden_nodes": max(0, len(ordered) - len(nodes))}


def graph_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/graph`: build information, filters, the drawing and the chosen tool's neighbourhood."""
    selection = GraphFilter.parse(query)
    if not data.data_files(GRAPH_FILES):
        return PageResult("graph_empty.html", {"title": "Tool graph"})
    key, graph = load_graph(data, selection.file)
    selection = GraphFilter(key, selection.server, selection.tool, selection.provenances,
                            selection.include_rejected, selection.limit)
    tools = {n.id: n for n in graph.nodes if n.kind == "tool"}
    if selection.tool and selection.tool not in tools:
        raise NotFound(f"no tool {selection.tool!r} in {key}")
    servers = sorted({n.server for n in tools.values()})
    neighbourhood = tool_edges(graph, selection) if selection.tool else []
    focus = tools.get(selection.tool)
    params = [n for n in graph.nodes if n.kind == "param" and n.tool == selection.tool] if focus else []
    chains, chain_count = pages_records.chains_through(data, selection.tool) if focus else ([], 0)
    return PageResult("graph.html", {
        "title": "Tool graph", "key": key, "graph": graph, "selection": selection, "servers": servers,
        "provenances": PROVENANCES, "files": [f.key for f in data.data_files(GRAPH_FILES)],
        "focus": focus, "params": params, "neighbourhood": neighbourhood, "chains": chains,
        "chain_count": chain_count,
        "data_url": "/graph/data.json?" + selection.query(limit=str(selection.limit)),
    })


def graph_data(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/graph/data.json`: the elements of `graph_page`'s drawing, as JSON."""
    selection = GraphFilter.parse(query)
    _, graph = load_graph(data, selection.file)
    body = orjson.dumps(graph_elements(graph, selection))
    return PageResult(body=body, content_type="application/json")
