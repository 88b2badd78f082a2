"""`GraphIndex`: a `ToolGraph` compiled for sampling and checking (integers and tuples, no models).

Contract:
- Built once from a graph (`GraphIndex.from_graph`); read-only afterwards, so samplers can share it.
- Tools keep the graph's node order. For each tool: its required input slots and optional inputs,
  each with `user_providable` and its producers — `(producer tool, output path, score)` from the
  accepted `feeds` edges, best score first, ties by tool order and path; and its successors (accepted
  `depends` edges).
- A slot whose `user_providable` is unknown (None) counts as not providable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from envfactory.graph.model import ParamNode, ToolGraph, ToolNode


@dataclass(frozen=True, slots=True)
class Producer:
    """A tool (by index) whose output field can fill a slot, with the edge's score."""
    tool: int
    output: str
    score: float


@dataclass(frozen=True, slots=True)
class Slot:
    """An input of a tool that a chain must fill: its path, whether it is required or providable by the
    user, and the tools that can produce it."""
    path: str
    required: bool
    providable: bool
    producers: tuple[Producer, ...]
    by_tool: dict[int, Producer]  # the best producer of each producing tool


def make_slot(path: str, required: bool, providable: bool, producers: tuple[Producer, ...]) -> Slot:
    """A `Slot` with, for each producing tool, the first of its producers as listed."""
    best: dict[int, Producer] = {}
    for producer in producers:
        best.setdefault(producer.tool, producer)
    return Slot(path, required, providable, producers, best)


@dataclass(frozen=True, slots=True)
class GraphIndex:
    """A tool graph laid out for sampling: tools, ids and servers by index, each tool's required and
    optional slots, and its successors."""
    tools: tuple[ToolNode, ...]
    ids: tuple[str, ...]
    servers: tuple[int, ...]
    server_names: tuple[str, ...]
    slots: tuple[tuple[Slot, ...], ...]
    optional: tuple[tuple[Slot, ...], ...]
    successors: tuple[tuple[int, ...], ...]
    position: dict[str, int]
    feeds: frozenset[tuple[int, str, int, str]]

    @classmethod
    def from_graph(cls, graph: ToolGraph) -> GraphIndex:
        """Lay out `graph` for sampling: tools by position in the graph's order, accepted `feeds` edges as
        the producers of each input slot (best score first), accepted `depends` edges as successors.
        Deterministic: the same graph gives the same index."""
        tools = tuple(graph.tools())
        position = {t.id: i for i, t in enumerate(tools)}
        server_names = tuple(sorted({t.server for t in tools}))
        server_of = {name: i for i, name in enumerate(server_names)}
        params: dict[str, ParamNode] = {p.id: p for p in graph.params()}
        producers: dict[str, list[Producer]] = defaultdict(list)
        feeds: set[tuple[int, str, int, str]] = set()
        seen_pairs: set[tuple[str, str]] = set()
        successors: dict[int, set[int]] = defaultdict(set)
        for edge in graph.links:
            if not edge.accepted:
                continue
            if edge.kind == "feeds":
                if (edge.source, edge.target) in seen_pairs:
                    continue
                seen_pairs.add((edge.source, edge.target))
                out, inp = params.get(edge.source), params.get(edge.target)
                if out is None or inp is None or out.tool not in position or inp.tool not in position:
                    continue
                if out.tool == inp.tool:  # a cursor loop (next-page token into the same call) binds no chain step
                    continue
                producers[edge.target].append(Producer(position[out.tool], out.path, edge.score))
                feeds.add((position[out.tool], out.path, position[inp.tool], inp.path))
            elif edge.kind == "depends" and edge.source in position and edge.target in position:
                successors[position[edge.source]].add(position[edge.target])
        slots: list[list[Slot]] = [[] for _ in tools]
        optional: list[list[Slot]] = [[] for _ in tools]
        for param in params.values():
            if param.direction != "input" or param.tool not in position:
                continue
            found = tuple(sorted(producers.get(param.id, ()), key=lambda p: (-p.score, p.tool, p.output)))
            slot = make_slot(param.path, param.slot, bool(param.user_providable), found)
            if param.slot:
                slots[position[param.tool]].append(slot)
            elif found and not param.container:
                optional[position[param.tool]].append(slot)
        return cls(
            tools=tools, ids=tuple(t.id for t in tools), servers=tuple(server_of[t.server] for t in tools),
            server_names=server_names,
            slots=tuple(tuple(sorted(s, key=lambda x: x.path)) for s in slots),
            optional=tuple(tuple(sorted(s, key=lambda x: x.path)) for s in optional),
            successors=tuple(tuple(sorted(successors.get(i, ()))) for i in range(len(tools))),
            position=position, feeds=frozenset(feeds),
        )

    def __len__(self) -> int:
        return len(self.tools)
