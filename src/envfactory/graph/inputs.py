"""What a graph is built from: named groups of `ToolSpec`s ("servers"), made from environment specs,
plain tool lists or catalog `Operation`s.

Contract:
- A `ToolSet` is one server: an environment, or one catalog service. Tool node ids are
  `<server>__<tool>`; server names keep only `[A-Za-z0-9_-]`.
- `tools_from_operations` keeps each operation's source id (`ToolSource.operation_id`), its provider and
  service, and the original field names (`field_names`, our name → the source's). Operation names that
  are not valid tool names (`tasks.tasklists.insert`) are rewritten (`tasks_tasklists_insert`); the
  original name stays in `operation_id`.
- `normalise` turns the caller's sets into the ones the graph uses and reports, instead of failing on,
  what it had to change: sets with no tools are skipped, a duplicate server name gets a `-2` suffix,
  a duplicate tool name inside one set keeps the first. Only an input with no tools at all raises
  `GraphInputError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from envfactory.graph.errors import GraphInputError
from envfactory.spec import EnvSpec, Operation, ToolSource, ToolSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_READ_PREFIXES = ("Get", "List", "Describe", "Search", "Query", "Scan", "BatchGet", "Check", "Lookup", "Head",
                  "Test", "Validate", "Verify", "Estimate", "Preview")


@dataclass(frozen=True, slots=True)
class ToolSet:
    """The tools of one server (an environment or a catalog service) and where they came from."""
    server: str
    tools: tuple[ToolSpec, ...]
    origin: str = ""


@dataclass(slots=True)
class Normalised:
    """Tool sets with unique, safe names, and a warning for each name that had to change."""
    sets: list[ToolSet] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def safe_name(text: str, limit: int = 64) -> str:
    """`text` with runs of unsafe characters made `_`, trimmed, cut to `limit` (`unnamed` when nothing is
    left)."""
    return (_UNSAFE.sub("_", text).strip("_") or "unnamed")[:limit]


def tool_id(server: str, tool: str) -> str:
    """The graph-wide id of a tool: `<server>__<tool>`."""
    return f"{server}__{tool}"


def from_env_spec(spec: EnvSpec, origin: str = "") -> ToolSet:
    """The tools of one environment as a `ToolSet` named after it."""
    return ToolSet(server=spec.meta.name, tools=tuple(spec.tools), origin=origin or f"environment {spec.meta.name}")


def _effect(op: Operation) -> str:
    if op.http_method and op.http_method.upper() in ("GET", "HEAD"):
        return "read"
    last = op.name.rsplit(".", 1)[-1]
    if last[:1].islower():  # google-style method names: get, list, insert, ...
        return "read" if last in ("get", "list", "search", "query", "export", "batchGet") else "write"
    return "read" if last.startswith(_READ_PREFIXES) else "write"


def tool_from_operation(op: Operation) -> ToolSpec:
    """A catalog operation as a `ToolSpec` (safe names; the original field names kept in its source)."""
    props = op.input_schema.get("properties")
    names = {safe_name(str(k)): str(k) for k in props} if isinstance(props, dict) else {}
    return ToolSpec(
        name=safe_name(op.name),
        description=(op.description or op.docs or op.name)[:2000],
        input_schema=op.input_schema,
        output_schema=op.output_schema,
        effect="read" if _effect(op) == "read" else "write",
        source=ToolSource(provider=op.provider, service=op.id.rsplit(":", 1)[0], operation_id=op.id,
                          field_names={k: v for k, v in names.items()}),
    )


def server_for_operation(op: Operation) -> str:
    """The server name an operation's tool is listed under: `<provider>-<service>`, made safe."""
    return safe_name(f"{op.provider}-{op.service}")


def tools_from_operations(operations: Iterable[Operation]) -> list[ToolSet]:
    """One `ToolSet` per catalog service, in first-seen order."""
    grouped: dict[str, list[ToolSpec]] = {}
    origins: dict[str, str] = {}
    for op in operations:
        server = server_for_operation(op)
        grouped.setdefault(server, []).append(tool_from_operation(op))
        origins.setdefault(server, op.id.rsplit(":", 1)[0])
    return [ToolSet(server=s, tools=tuple(t), origin=origins[s]) for s, t in grouped.items()]


def normalise(sets: Sequence[ToolSet]) -> Normalised:
    """See the module docstring."""
    out = Normalised()
    taken: set[str] = set()
    for item in sets:
        what = item.origin or item.server
        if not item.tools:
            out.warnings.append(f"{what}: has no tools; skipped")
            continue
        server = safe_name(item.server)
        if server != item.server:
            out.warnings.append(f"{what}: server name {item.server!r} is used as {server!r}")
        if server in taken:
            n = 2
            while f"{server}-{n}" in taken:
                n += 1
            out.warnings.append(f"{what}: another environment is already named {server!r}; this one is {server}-{n}")
            server = f"{server}-{n}"
        taken.add(server)
        seen: set[str] = set()
        kept: list[ToolSpec] = []
        for tool in item.tools:
            if tool.name in seen:
                out.warnings.append(f"{what}: two tools are named {tool.name!r}; the second is left out")
                continue
            seen.add(tool.name)
            kept.append(tool)
        out.sets.append(ToolSet(server=server, tools=tuple(kept), origin=item.origin))
    if not out.sets:
        detail = "; ".join(out.warnings) if out.warnings else "no environments or operations were given"
        raise GraphInputError(f"nothing to build a graph from: {detail}")
    return out
