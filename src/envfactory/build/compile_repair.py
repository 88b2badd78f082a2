"""The compiler's last step: drop what the declarative format's compiler refuses until the rest compiles.

`repair_source(source)` compiles a generated source; each tool (or collection) the format compiler names
in its error is dropped with the reason, a collection referring to a dropped one goes too, and the
compile is tried again, at most `_MAX_REPAIR_ROUNDS` times. Split from `build.compile` by responsibility.
"""

from __future__ import annotations

import re

from envfactory.build.errors import CompileError
from envfactory.errors import SpecError
from envfactory.runtime.declarative.compile import compile_source
from envfactory.spec import DeclarativeToolDecl
from envfactory.spec.build import DroppedOperation
from envfactory.spec.declarative import DeclarativeEnvSource

__all__ = ["repair_source"]

_MAX_REPAIR_ROUNDS = 40
_PROBLEM_TOOL = re.compile(r"^\s*- tools\.([A-Za-z0-9_-]+)[.:]")
_PROBLEM_COLLECTION = re.compile(r"^\s*- collections\.([a-z][a-z0-9_]*)[.:]")


def repair_source(source: DeclarativeEnvSource) -> tuple[DeclarativeEnvSource, list[DroppedOperation]]:
    """Drop the tools (and collections) the format's compiler refuses until the rest compiles."""
    dropped: list[DroppedOperation] = []
    for _ in range(_MAX_REPAIR_ROUNDS):
        if not source.tools:
            break
        try:
            compile_source(source)
            return source, dropped
        except SpecError as exc:
            message = str(exc)
            bad_tools = {m.group(1) for line in message.splitlines() if (m := _PROBLEM_TOOL.match(line))}
            bad_colls = {m.group(1) for line in message.splitlines() if (m := _PROBLEM_COLLECTION.match(line))}
            if not bad_tools and not bad_colls:
                raise CompileError(f"{source.meta.name}: {message}") from exc
            source, lost = _without(source, bad_tools, bad_colls, message)
            dropped.extend(lost)
    raise CompileError(f"{source.meta.name}: no tool survives compilation")


def _without(
    source: DeclarativeEnvSource, tools: set[str], collections: set[str], message: str
) -> tuple[DeclarativeEnvSource, list[DroppedOperation]]:
    doomed_colls = set(collections)
    changed = True
    while changed:  # a collection referring to a dropped one goes too
        changed = False
        for name, decl in source.collections.items():
            if name not in doomed_colls and any(r.collection in doomed_colls for r in decl.references):
                doomed_colls.add(name)
                changed = True
    lost: list[DroppedOperation] = []
    kept: list[DeclarativeToolDecl] = []
    for tool in source.tools:
        if tool.name in tools or tool.operation.collection in doomed_colls:
            reason = next((line.strip("- ").strip() for line in message.splitlines()
                           if f"tools.{tool.name}" in line or f"collections.{tool.operation.collection}" in line), message)
            op_id = tool.source.operation_id if tool.source else tool.name
            lost.append(DroppedOperation(operation_id=op_id, tool_name=tool.name, stage="compile", reason= f"refused by the format compiler: {reason[:300]}"))
        else:
            kept.append(tool)
    colls = {n: d for n, d in source.collections.items() if n not in doomed_colls}
    return source.model_copy(update={"tools": kept, "collections": colls}), lost

