"""Reading and writing graphs and chains: JSON only (never pickle).

Contract:
- `save_graph` writes the node-link JSON atomically (`store.write_atomic`), keys in a fixed order, so
  the same graph gives the same bytes; `load_graph` validates it and names the file in every error.
- `save_chains` writes one chain per line (JSONL).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from pydantic import ValidationError

from envfactory.graph.chain import Chain
from envfactory.graph.errors import GraphInputError
from envfactory.graph.model import ToolGraph
from envfactory.store import write_atomic


def graph_bytes(graph: ToolGraph) -> bytes:
    """The canonical file bytes of a graph (sorted keys, one trailing newline)."""
    return orjson.dumps(graph.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS) + b"\n"


def save_graph(graph: ToolGraph, path: Path) -> None:
    """Write a graph to `path` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, graph_bytes(graph))


def load_graph(path: Path) -> ToolGraph:
    """Read a graph file. Raises `GraphInputError` when it is missing, not JSON or not a valid graph."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise GraphInputError(f"{path}: no such graph file (build one with `envfactory graph build`)") from exc
    except orjson.JSONDecodeError as exc:
        raise GraphInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != "envfactory.tool-graph":
        raise GraphInputError(f"{path}: not an envfactory tool graph (no \"format\": \"envfactory.tool-graph\")")
    try:
        return ToolGraph.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GraphInputError(f"{path}: invalid graph at {where}: {first['msg']} ({exc.error_count()} problem(s))") from exc


def save_chains(chains: Iterable[Chain], path: Path) -> int:
    """Write chains as JSON lines to `path` atomically; returns how many were written."""
    lines = [orjson.dumps(c.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS) for c in chains]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, b"\n".join(lines) + (b"\n" if lines else b""))
    return len(lines)
