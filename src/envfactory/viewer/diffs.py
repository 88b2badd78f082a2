"""The state diffs a trajectory recorded (`spec.CallStateDiff`) shaped for the trajectory page: changes
grouped by record, each record added, removed or changed with its fields before and after.

Contract:
- `diff_view(diff)` reads the JSON pointers of the diff's changes. A pointer
  `/collections/<collection>/<key>` is a whole record added or removed (its fields listed with their
  value, before or after) or replaced; a longer pointer is a field of that record changed, added or
  removed. Any other pointer (counters, the state of a Python environment) is listed as it is.
- Values are compact JSON, cut at `VALUE_LIMIT` characters; nothing here escapes HTML (the templates
  do, always).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from envfactory.spec import CallStateDiff, StateChange

VALUE_LIMIT = 400
ABSENT = ""


@dataclass(slots=True)
class FieldChange:
    """One field of a record: its value before and after the call ("" where it did not exist)."""

    name: str
    before: str
    after: str


@dataclass(slots=True)
class RecordChange:
    """One record a call touched: `kind` is `added`, `removed` or `changed`."""

    collection: str
    key: str
    kind: str
    fields: list[FieldChange] = field(default_factory=list)


@dataclass(slots=True)
class DiffView:
    """A call's state diff for display: the records it touched and any other changes."""

    env: str
    records: list[RecordChange]
    other: list[tuple[str, str, str, str]]
    """(op, path, before, after) of changes outside the collections"""

    @property
    def summary(self) -> str:
        """E.g. `1 added, 2 changed` (records), with `3 other` for changes outside the collections."""
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.kind] = counts.get(record.kind, 0) + 1
        parts = [f"{counts[k]} {k}" for k in ("added", "removed", "changed") if k in counts]
        if self.other:
            parts.append(f"{len(self.other)} other")
        return ", ".join(parts)


def compact(value: Any, limit: int = VALUE_LIMIT) -> str:
    """`value` as compact JSON, cut at `limit` characters."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _tokens(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]


def _whole(change: StateChange) -> tuple[str, list[FieldChange]]:
    """A whole record's change: its kind and every field before and after."""
    kind = {"add": "added", "remove": "removed"}.get(change.op, "changed")
    if not isinstance(change.old, dict) and not isinstance(change.new, dict):
        return kind, [FieldChange("(value)", compact(change.old) if change.op != "add" else ABSENT,
                                  compact(change.new) if change.op != "remove" else ABSENT)]
    old = change.old if isinstance(change.old, dict) else {}
    new = change.new if isinstance(change.new, dict) else {}
    fields = []
    for name in sorted(set(old) | set(new)):
        if change.op == "replace" and name in old and name in new and old[name] == new[name]:
            continue
        fields.append(FieldChange(name, compact(old[name]) if name in old else ABSENT,
                                  compact(new[name]) if name in new else ABSENT))
    return kind, fields


def diff_view(diff: CallStateDiff) -> DiffView:
    """`diff` grouped by record (see the module contract)."""
    records: dict[tuple[str, str], RecordChange] = {}
    other: list[tuple[str, str, str, str]] = []
    for change in diff.changes:
        tokens = _tokens(change.path)
        if len(tokens) < 3 or tokens[0] != "collections":
            other.append((change.op, change.path, compact(change.old) if change.op != "add" else ABSENT,
                          compact(change.new) if change.op != "remove" else ABSENT))
            continue
        record = records.setdefault((tokens[1], tokens[2]), RecordChange(tokens[1], tokens[2], "changed"))
        if len(tokens) == 3:
            record.kind, fields = _whole(change)
            record.fields.extend(fields)
        else:
            record.fields.append(FieldChange("/".join(tokens[3:]),
                                             compact(change.old) if change.op != "add" else ABSENT,
                                             compact(change.new) if change.op != "remove" else ABSENT))
    return DiffView(env=diff.env, records=list(records.values()), other=other)
