"""Shared pieces of the corruption classes used to test checker agreement (BFCL and τ² alike)."""

from __future__ import annotations

from typing import Any


def altered(value: Any) -> Any:
    """A different value of the same JSON type (the "alter an argument" corruption)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return [*value, value[0]] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return "x"
