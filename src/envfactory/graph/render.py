"""Pictures of a graph: hand-built SVG (and a self-contained HTML page around it), no network, no
external tools.

Contract:
- `overview_svg`: every tool, one column per server, and the strongest accepted `depends` edges
  (at most `max_edges`, best score first; colour by provenance).
- `neighbourhood_svg`: one tool in the middle with its inputs (required ones marked, user-providable
  ones marked) and outputs; on the left the tools that feed its inputs, on the right the tools its
  outputs feed, each edge labelled with the fields it connects, its provenance and score.
- `html_page` wraps an SVG with a table of the edges shown. Output is deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from types import MappingProxyType

from envfactory.graph.model import Edge, ParamNode, ToolGraph, ToolNode

COLOURS = MappingProxyType({"schema": "#2b6cb0", "embedding": "#b7791f", "llm": "#6b46c1", "manual": "#2f855a"})
FONT = "font-family='Helvetica, Arial, sans-serif'"


def _short(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(width: int, height: int, body: list[str]) -> str:
    head = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} font-size='11'>")
    legend = [f"<rect x='0' y='0' width='{width}' height='{height}' fill='white'/>"]
    x = 10
    for name, colour in COLOURS.items():
        legend.append(f"<line x1='{x}' y1='12' x2='{x + 18}' y2='12' stroke='{colour}' stroke-width='2'/>"
                      f"<text x='{x + 22}' y='16'>{name}</text>")
        x += 90
    return "\n".join([head, *legend, *body, "</svg>"]) + "\n"


def overview_svg(graph: ToolGraph, *, max_edges: int = 600) -> tuple[str, list[Edge]]:
    """The whole graph at tool level (see the module docstring); returns the SVG and the edges drawn."""
    tools = graph.tools()
    columns: dict[str, list[ToolNode]] = defaultdict(list)
    for tool in tools:
        columns[tool.server].append(tool)
    servers = sorted(columns)
    col_width, row, top = 240, 16, 60
    place: dict[str, tuple[float, float]] = {}
    body: list[str] = []
    for c, server in enumerate(servers):
        x = 20 + c * col_width
        body.append(f"<text x='{x}' y='{top - 12}' font-weight='bold'>{escape(_short(server, 30))}</text>")
        for r, tool in enumerate(columns[server]):
            y = top + r * row
            place[tool.id] = (x, y)
            body.append(f"<circle cx='{x}' cy='{y - 4}' r='3' fill='#444'/>"
                        f"<text x='{x + 6}' y='{y}'>{escape(_short(tool.name, 32))}</text>")
    depends = sorted((e for e in graph.links if e.kind == "depends" and e.accepted),
                     key=lambda e: (-e.score, e.source, e.target))[:max_edges]
    lines = []
    for edge in depends:
        if edge.source not in place or edge.target not in place:
            continue
        (x1, y1), (x2, y2) = place[edge.source], place[edge.target]
        bend = 40 if x1 == x2 else (x2 - x1) / 2
        lines.append(
            f"<path d='M{x1},{y1 - 4} C{x1 + bend},{y1 - 4} {x2 - bend if x1 != x2 else x2 + bend},{y2 - 4} {x2},{y2 - 4}' "
            f"fill='none' stroke='{COLOURS[edge.provenance]}' stroke-opacity='0.35'/>"
        )
    height = top + row * max((len(v) for v in columns.values()), default=1) + 20
    return _svg(20 + col_width * max(1, len(servers)), height, lines + body), depends


def neighbourhood_svg(graph: ToolGraph, tool_id: str, *, max_neighbours: int = 14) -> tuple[str, list[Edge]]:
    """One tool and its producers and consumers (see the module docstring)."""
    tools = {t.id: t for t in graph.tools()}
    if tool_id not in tools:
        raise KeyError(tool_id)
    params = {p.id: p for p in graph.params()}
    mine = [p for p in params.values() if p.tool == tool_id]
    inputs = sorted((p for p in mine if p.direction == "input" and (p.slot or not p.container)), key=lambda p: p.path)
    outputs = sorted((p for p in mine if p.direction == "output" and not p.container), key=lambda p: p.path)
    feeds_in = [e for e in graph.links if e.kind == "feeds" and e.accepted and e.target in params
                and params[e.target].tool == tool_id and e.source in params]
    feeds_out = [e for e in graph.links if e.kind == "feeds" and e.accepted and e.source in params
                 and params[e.source].tool == tool_id and e.target in params]
    left = _neighbours(feeds_in, params, lambda e: params[e.source].tool, max_neighbours)
    right = _neighbours(feeds_out, params, lambda e: params[e.target].tool, max_neighbours)
    row = 16
    shown_inputs, shown_outputs = inputs[:40], outputs[:40]
    centre_rows = len(shown_inputs) + len(shown_outputs) + 3
    height = max(centre_rows, len(left) * 3, len(right) * 3, 6) * row + 80
    cx, top = 420, 50
    body = [f"<rect x='{cx}' y='{top}' width='300' height='{centre_rows * row + 10}' fill='#f7fafc' stroke='#2d3748'/>",
            f"<text x='{cx + 8}' y='{top + 16}' font-weight='bold'>{escape(_short(tool_id, 46))}</text>"]
    anchor_in: dict[str, float] = {}
    anchor_out: dict[str, float] = {}
    y = top + 16 + row
    for p in shown_inputs:
        mark = ("* " if p.slot else "  ") + ("(user) " if p.user_providable else "")
        body.append(f"<text x='{cx + 8}' y='{y}'>{escape(mark + _short(p.path, 40))}</text>")
        anchor_in[p.id] = y - 4
        y += row
    y += row
    for p in shown_outputs:
        body.append(f"<text x='{cx + 292}' y='{y}' text-anchor='end'>{escape(_short(p.path, 40))} →</text>")
        anchor_out[p.id] = y - 4
        y += row
    drawn: list[Edge] = []
    for n, (other, edges) in enumerate(left):
        ty = top + 20 + n * 3 * row
        body.append(f"<text x='20' y='{ty}' font-weight='bold'>{escape(_short(other, 44))}</text>")
        for k, edge in enumerate(edges[:2]):
            label = f"{params[edge.source].path} ({edge.provenance} {edge.score:.2f})"
            body.append(f"<text x='20' y='{ty + (k + 1) * 12}' fill='#4a5568'>{escape(_short(label, 52))}</text>")
            target_y = anchor_in.get(edge.target, top + 30)
            body.append(f"<path d='M330,{ty - 4} C380,{ty - 4} 380,{target_y} {cx},{target_y}' fill='none' "
                        f"stroke='{COLOURS[edge.provenance]}'/>")
            drawn.append(edge)
    for n, (other, edges) in enumerate(right):
        ty = top + 20 + n * 3 * row
        body.append(f"<text x='800' y='{ty}' font-weight='bold'>{escape(_short(other, 44))}</text>")
        for k, edge in enumerate(edges[:2]):
            label = f"{params[edge.target].path} ({edge.provenance} {edge.score:.2f})"
            body.append(f"<text x='800' y='{ty + (k + 1) * 12}' fill='#4a5568'>{escape(_short(label, 52))}</text>")
            source_y = anchor_out.get(edge.source, top + 30)
            body.append(f"<path d='M{cx + 300},{source_y} C760,{source_y} 760,{ty - 4} 796,{ty - 4}' fill='none' "
                        f"stroke='{COLOURS[edge.provenance]}'/>")
            drawn.append(edge)
    return _svg(1120, int(height), body), drawn


def _neighbours(edges: list[Edge], params: dict[str, ParamNode], key: object, limit: int) -> list[tuple[str, list[Edge]]]:
    grouped: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        grouped[key(edge)].append(edge)  # type: ignore[operator]
    ranked = sorted(grouped.items(), key=lambda kv: (-max(e.score for e in kv[1]), kv[0]))[:limit]
    return [(other, sorted(es, key=lambda e: (-e.score, e.source, e.target))) for other, es in ranked]


def html_page(title: str, svg: str, edges: list[Edge]) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(e.source)}</td><td>{escape(e.target)}</td><td>{e.kind}</td><td>{e.provenance}</td>"
        f"<td>{e.score:.2f}</td><td>{escape(e.evidence)}</td></tr>" for e in edges
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>" + escape(title) + "</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:16px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}</style></head><body>"
        f"<h1>{escape(title)}</h1>\n{svg}\n<h2>Edges shown ({len(edges)})</h2>"
        "<table><tr><th>source</th><th>target</th><th>kind</th><th>provenance</th><th>score</th><th>evidence</th></tr>\n"
        f"{rows}\n</table></body></html>\n"
    )
