"""Tool arguments for checks and fuzzing: schema-guided arguments and the pool of live values.

Contract:
- `generate_arguments(schema, rng, pool)` is `spec.schema_sample.generate_value` for a tool's input
  schema, which must describe an object: a pure function of the schema, the `random.Random` state and
  the pool (see that module for the keywords supported and how the pool is used).
- `harvest_values(value, pool)` adds every string held under an object key of an output to the pool,
  in document order, so pools built from the same outputs are identical.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from envfactory.spec.schema_sample import generate_value

__all__ = ["generate_arguments", "harvest_values"]


def generate_arguments(
    schema: Mapping[str, Any], rng: random.Random, pool: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Arguments (a JSON object) that satisfy `schema` as far as the supported keywords go.

    Raises:
        ValueError: the schema does not describe an object, or contains an unresolvable `$ref`.
    """
    value = generate_value(schema, rng, pool)
    if not isinstance(value, dict):
        raise ValueError(f"the schema describes {type(value).__name__} values, not an object of arguments")
    return value


def harvest_values(value: Any, pool: dict[str, list[str]], *, limit: int = 512) -> None:
    """Add every string held under an object key in `value` to `pool[key]`, once each.

    Values keep their first-seen order, so pools built from the same outputs are identical. At most
    `limit` values are kept per key.
    """
    stack: list[tuple[str | None, Any]] = [(None, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            # reversed so that the stack pops entries in document order
            stack.extend((k, v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((key, v) for v in reversed(item))
        elif isinstance(item, str) and key is not None:
            bucket = pool.setdefault(key, [])
            if item not in bucket and len(bucket) < limit:
                bucket.append(item)
