"""Pictures of a graph: one layout, drawn as hand-built SVG (and a self-contained HTML page around it)
or as PNG through matplotlib's Agg backend; no network, no external tools.

Contract:
- The layout functions return a `Scene` (page size, drawing primitives in SVG coordinates: y grows
  downwards, and the edges shown); `scene_svg` and `scene_png` draw the same scene.
- `overview_scene` / `overview_svg`: every tool, one column per server, and the strongest accepted
  `depends` edges (at most `max_edges`, best score first; colour by provenance).
- `neighbourhood_scene` / `neighbourhood_svg`: one tool in the middle with its inputs (required ones
  marked, user-providable ones marked) and outputs; on the left the tools that feed its inputs, on the
  right the tools its outputs feed, each edge labelled with the fields it connects, its provenance and
  score. An unknown tool id raises `KeyError`.
- `html_page` wraps an SVG with a table of the edges shown.
- Output is deterministic: the same graph gives the same SVG text and the same PNG bytes (fixed size
  and dpi, no timestamp or software tag in the PNG metadata, matplotlib's bundled font).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from types import MappingProxyType

from envfactory.graph.model import Edge, ToolGraph, ToolNode

COLOURS = MappingProxyType({"schema": "#2b6cb0", "embedding": "#b7791f", "llm": "#6b46c1", "manual": "#2f855a"})
FONT = "font-family='Helvetica, Arial, sans-serif'"
FONT_SIZE = 11
PNG_DPI = 100
PNG_MAX_PIXELS = 16_000  # Agg refuses images wider or taller than 2**16 px; a huge overview is scaled down


@dataclass(frozen=True, slots=True)
class Label:
    """A text item of a scene at a position."""
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG text-anchor: start or end
    bold: bool = False
    fill: str = "#000000"


@dataclass(frozen=True, slots=True)
class Dot:
    """A filled circle of a scene."""
    x: float
    y: float
    r: float
    fill: str


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of a scene."""
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str


@dataclass(frozen=True, slots=True)
class Curve:
    """A cubic Bézier from `points[0]` to `points[3]` with control points `points[1]`, `points[2]`."""

    points: tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
    stroke: str
    opacity: float = 1.0


Item = Label | Dot | Box | Curve


@dataclass(slots=True)
class Scene:
    """What a graph picture draws: its size, items and the edges it shows."""
    width: int
    height: int
    items: list[Item] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _short(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    """A coordinate as SVG text: integers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _legend() -> list[Item]:
    items: list[Item] = []
    x = 10
    for name, colour in COLOURS.items():
        items.append(Curve(((x, 12), (x + 6, 12), (x + 12, 12), (x + 18, 12)), colour))
        items.append(Label(x + 22, 16, name))
        x += 90
    return items


# -- layouts ----------------------------------------------------------------------------------------------


def overview_scene(graph: ToolGraph, *, max_edges: int = 600) -> Scene:
    """The whole graph at tool level (see the module docstring)."""
    tools = graph.tools()
    columns: dict[str, list[ToolNode]] = defaultdict(list)
    for tool in tools:
        columns[tool.server].append(tool)
    servers = sorted(columns)
    col_width, row, top = 240, 16, 60
    place: dict[str, tuple[float, float]] = {}
    nodes: list[Item] = []
    for c, server in enumerate(servers):
        x = 20 + c * col_width
        nodes.append(Label(x, top - 12, _short(server, 30), bold=True))
        for r, tool in enumerate(columns[server]):
            y = top + r * row
            place[tool.id] = (x, y)
            nodes.append(Dot(x, y - 4, 3, "#444444"))
            nodes.append(Label(x + 6, y, _short(tool.name, 32)))
    depends = sorted((e for e in graph.links if e.kind == "depends" and e.accepted),
                     key=lambda e: (-e.score, e.source, e.target))[:max_edges]
    lines: list[Item] = []
    for edge in depends:
        if edge.source not in place or edge.target not in place:
            continue
        (x1, y1), (x2, y2) = place[edge.source], place[edge.target]
        bend = 40 if x1 == x2 else (x2 - x1) / 2
        lines.append(Curve(((x1, y1 - 4), (x1 + bend, y1 - 4), (x2 - bend if x1 != x2 else x2 + bend, y2 - 4), (x2, y2 - 4)),
                           COLOURS[edge.provenance], 0.35))
    height = top + row * max((len(v) for v in columns.values()), default=1) + 20
    return Scene(20 + col_width * max(1, len(servers)), height, [*_legend(), *lines, *nodes], depends)


def neighbourhood_scene(graph: ToolGraph, tool_id: str, *, max_neighbours: int = 14) -> Scene:
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
    left = _neighbours(feeds_in, lambda e: params[e.source].tool, max_neighbours)
    right = _neighbours(feeds_out, lambda e: params[e.target].tool, max_neighbours)
    row = 16
    shown_inputs, shown_outputs = inputs[:40], outputs[:40]
    centre_rows = len(shown_inputs) + len(shown_outputs) + 3
    height = max(centre_rows, len(left) * 3, len(right) * 3, 6) * row + 80
    cx, top = 420, 50
    body: list[Item] = [Box(cx, top, 300, centre_rows * row + 10, "#f7fafc", "#2d3748"),
                        Label(cx + 8, top + 16, _short(tool_id, 46), bold=True)]
    anchor_in: dict[str, float] = {}
    anchor_out: dict[str, float] = {}
    y = top + 16 + row
    for p in shown_inputs:
        mark = ("* " if p.slot else "  ") + ("(user) " if p.user_providable else "")
        body.append(Label(cx + 8, y, mark + _short(p.path, 40)))
        anchor_in[p.id] = y - 4
        y += row
    y += row
    for p in shown_outputs:
        body.append(Label(cx + 292, y, f"{_short(p.path, 40)} →", anchor="end"))
        anchor_out[p.id] = y - 4
        y += row
    drawn: list[Edge] = []
    for n, (other, edges) in enumerate(left):
        ty = top + 20 + n * 3 * row
        body.append(Label(20, ty, _short(other, 44), bold=True))
        for k, edge in enumerate(edges[:2]):
            label = f"{params[edge.source].path} ({edge.provenance} {edge.score:.2f})"
            body.append(Label(20, ty + (k + 1) * 12, _short(label, 52), fill="#4a5568"))
            target_y = anchor_in.get(edge.target, top + 30)
            body.append(Curve(((330, ty - 4), (380, ty - 4), (380, target_y), (cx, target_y)), COLOURS[edge.provenance]))
            drawn.append(edge)
    for n, (other, edges) in enumerate(right):
        ty = top + 20 + n * 3 * row
        body.append(Label(800, ty, _short(other, 44), bold=True))
        for k, edge in enumerate(edges[:2]):
            label = f"{params[edge.target].path} ({edge.provenance} {edge.score:.2f})"
            body.append(Label(800, ty + (k + 1) * 12, _short(label, 52), fill="#4a5568"))
            source_y = anchor_out.get(edge.source, top + 30)
            body.append(Curve(((cx + 300, source_y), (760, source_y), (760, ty - 4), (796, ty - 4)),
                              COLOURS[edge.provenance]))
            drawn.append(edge)
    return Scene(1120, int(height), [*_legend(), *body], drawn)


def _neighbours(edges: list[Edge], key: Callable[[Edge], str], limit: int) -> list[tuple[str, list[Edge]]]:
    grouped: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        grouped[key(edge)].append(edge)
    ranked = sorted(grouped.items(), key=lambda kv: (-max(e.score for e in kv[1]), kv[0]))[:limit]
    return [(other, sorted(es, key=lambda e: (-e.score, e.source, e.target))) for other, es in ranked]


# -- SVG and HTML -----------------------------------------------------------------------------------------


def _svg_item(item: Item) -> str:
    if isinstance(item, Label):
        extra = (" text-anchor='end'" if item.anchor == "end" else "") + (" font-weight='bold'" if item.bold else "")
        extra += f" fill='{item.fill}'" if item.fill != "#000000" else ""
        return f"<text x='{_num(item.x)}' y='{_num(item.y)}'{extra}>{escape(item.text)}</text>"
    if isinstance(item, Dot):
        return f"<circle cx='{_num(item.x)}' cy='{_num(item.y)}' r='{_num(item.r)}' fill='{item.fill}'/>"
    if isinstance(item, Box):
        return (f"<rect x='{_num(item.x)}' y='{_num(item.y)}' width='{_num(item.width)}' height='{_num(item.height)}' "
                f"fill='{item.fill}' stroke='{item.stroke}'/>")
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = item.points
    opacity = f" stroke-opacity='{item.opacity:g}'" if item.opacity < 1 else ""
    return (f"<path d='M{_num(x0)},{_num(y0)} C{_num(x1)},{_num(y1)} {_num(x2)},{_num(y2)} {_num(x3)},{_num(y3)}' "
            f"fill='none' stroke='{item.stroke}'{opacity}/>")


def scene_svg(scene: Scene) -> str:
    """A laid-out scene as a standalone SVG document."""
    head = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{scene.width}' height='{scene.height}' "
            f"viewBox='0 0 {scene.width} {scene.height}' {FONT} font-size='{FONT_SIZE}'>")
    background = f"<rect x='0' y='0' width='{scene.width}' height='{scene.height}' fill='white'/>"
    return "\n".join([head, background, *(_svg_item(i) for i in scene.items), "</svg>"]) + "\n"


def overview_svg(graph: ToolGraph, *, max_edges: int = 600) -> tuple[str, list[Edge]]:
    """The whole graph at tool level as SVG, and the edges drawn."""
    scene = overview_scene(graph, max_edges=max_edges)
    return scene_svg(scene), scene.edges


def neighbourhood_svg(graph: ToolGraph, tool_id: str, *, max_neighbours: int = 14) -> tuple[str, list[Edge]]:
    """One tool's neighbourhood as SVG, and the edges drawn."""
    scene = neighbourhood_scene(graph, tool_id, max_neighbours=max_neighbours)
    return scene_svg(scene), scene.edges


def html_page(title: str, svg: str, edges: list[Edge]) -> str:
    """An HTML page with the SVG and a table of the edges (every text escaped)."""
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


# -- PNG --------------------------------------------------------------------------------------------------


def scene_png(scene: Scene, *, dpi: int = PNG_DPI) -> bytes:
    """The scene as PNG bytes (matplotlib, Agg backend; the `viz` extra). One scene unit is one pixel at
    `dpi`, scaled down only where a side would pass `PNG_MAX_PIXELS`. Raises `ImportError` without
    matplotlib."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch, PathPatch
    from matplotlib.path import Path as MplPath

    scale = min(1.0, PNG_MAX_PIXELS / max(scene.width, scene.height))
    # A Figure with its own Agg canvas, never pyplot: no global figure registry, nothing left behind.
    figure = Figure(figsize=(scene.width * scale / dpi, scene.height * scale / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0, scene.width)
    axes.set_ylim(scene.height, 0)  # SVG coordinates: y grows downwards
    axes.set_axis_off()
    points_per_unit = 72 / dpi * scale  # font sizes and line widths are in points
    font = {"family": "DejaVu Sans", "size": FONT_SIZE * points_per_unit}
    for item in scene.items:
        if isinstance(item, Label):
            axes.text(item.x, item.y, item.text, ha="right" if item.anchor == "end" else "left", va="baseline",
                      color=item.fill, fontweight="bold" if item.bold else "normal", fontdict=font, clip_on=False)
        elif isinstance(item, Dot):
            radius = item.r
            axes.add_patch(FancyBboxPatch((item.x - radius, item.y - radius), 2 * radius, 2 * radius,
                                          boxstyle=f"round,pad=0,rounding_size={radius}", facecolor=item.fill,
                                          edgecolor="none"))
        elif isinstance(item, Box):
            axes.add_patch(FancyBboxPatch((item.x, item.y), item.width, item.height, boxstyle="square,pad=0",
                                          facecolor=item.fill, edgecolor=item.stroke,
                                          linewidth=max(0.5, points_per_unit)))
        else:
            path = MplPath(list(item.points), [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4])
            axes.add_patch(PathPatch(path, facecolor="none", edgecolor=item.stroke, alpha=item.opacity,
                                     linewidth=max(0.5, points_per_unit)))
    buffer = io.BytesIO()
    # No Software/Creation-time tags: the same scene gives the same bytes in any run.
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
