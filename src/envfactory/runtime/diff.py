"""Generic structured JSON diff (RFC 6901 pointers); backends may provide faster equivalents."""

from __future__ import annotations

from typing import Any

from envfactory.spec import StateChange, StateDiff


def escape_pointer(token: str) -> str:
    """A key as a JSON-pointer token (`~` -> `~0`, `/` -> `~1`)."""
    return token.replace("~", "~0").replace("/", "~1")


def json_diff(before: Any, after: Any, path: str = "") -> list[StateChange]:
    """Changes turning `before` into `after`: objects key by key, arrays and scalars as a whole."""
    if type(before) is not type(after) and not (_is_number(before) and _is_number(after)):
        return [StateChange(op="replace", path=path, old=before, new=after)]
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[StateChange] = []
        for key in sorted(set(before) | set(after)):
            child = f"{path}/{escape_pointer(key)}"
            if key not in after:
                changes.append(StateChange(op="remove", path=child, old=before[key]))
            elif key not in before:
                changes.append(StateChange(op="add", path=child, new=after[key]))
            elif before[key] is not after[key] and before[key] != after[key]:
                changes.extend(json_diff(before[key], after[key], child))
        return changes
    if before != after:
        return [StateChange(op="replace", path=path, old=before, new=after)]
    return []


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def diff_states(before: Any, after: Any) -> StateDiff:
    """The `StateDiff` that turns `before` into `after` (see `json_diff`)."""
    return StateDiff(changes=json_diff(before, after))
