"""Where a JSON Schema holds sub-schemas, and the one rebuild step over them.

Kept apart from `schema_tools` (which re-exports all of it) because it imports nothing of envfactory:
the spec models use it while `envfactory.spec` is being imported, before `envfactory.errors` (which
`schema_tools` needs) can be.

Contract:
- `SUBSCHEMA_KEYWORDS`: the keywords whose values hold sub-schemas, in the order `schema_tools.walk`
  visits them by default; `MAP_KEYWORDS` hold a map of named sub-schemas, `LIST_KEYWORDS` a list.
- `map_subschemas(schema, fn)` is a copy of one schema node whose direct sub-schemas are `fn`'s answers;
  pure, keys in their order, `fn` called in document order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LIST_KEYWORDS", "MAP_KEYWORDS", "SUBSCHEMA_KEYWORDS", "map_subschemas"]

SUBSCHEMA_KEYWORDS = (
    "properties", "items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "$defs",
)
"""Keywords whose values hold sub-schemas, in the order `walk` visits them by default."""
MAP_KEYWORDS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
"""Keywords whose value maps names to sub-schemas."""
LIST_KEYWORDS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
"""Keywords whose value is a list of sub-schemas."""


def map_subschemas(schema: Mapping[str, Any], fn: Callable[[str, str | int | None, Any], Any]) -> dict[str, Any]:
    """A copy of `schema` whose direct sub-schemas are `fn(keyword, key, sub)`; every other value is kept.

    The sub-schemas are the members of `MAP_KEYWORDS` maps (`key`: the member's name) and `LIST_KEYWORDS`
    lists (`key`: the index), and an object under `items` or `additionalProperties` (`key`: None).
    """
    out = dict(schema)
    for keyword, value in schema.items():
        if keyword in MAP_KEYWORDS and isinstance(value, Mapping):
            out[keyword] = {name: fn(keyword, str(name), sub) for name, sub in value.items()}
        elif keyword in LIST_KEYWORDS and isinstance(value, list):
            out[keyword] = [fn(keyword, i, sub) for i, sub in enumerate(value)]
        elif keyword in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[keyword] = fn(keyword, None, value)
    return out
