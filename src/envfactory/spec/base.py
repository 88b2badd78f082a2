"""Base classes and canonical JSON helpers shared by every artifact model.

Contract:
- Every model that crosses a process or disk boundary derives from `SpecModel` (frozen, extra fields
  forbidden) and carries a `schema_version` literal; a newer major version is a new literal.
- `canonical_json` is *the* byte encoding used for hashing: keys sorted, no whitespace, UTF-8.
  Identical values give identical bytes in every process regardless of `PYTHONHASHSEED`.
- `content_hash` is the sha256 of that encoding, hex encoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, Union

import orjson
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeAliasType

JSONScalar: TypeAlias = str | int | float | bool | None
if TYPE_CHECKING:  # mypy understands recursive aliases; pydantic needs a named TypeAliasType at runtime
    JSONValue: TypeAlias = Union[str, int, float, bool, list["JSONValue"], dict[str, "JSONValue"], None]  # noqa: UP007
else:
    JSONValue = TypeAliasType(
        "JSONValue",
        Union[str, int, float, bool, list["JSONValue"], dict[str, "JSONValue"], None],  # noqa: UP007
    )
JSONObject: TypeAlias = dict[str, JSONValue]

_CANONICAL = orjson.OPT_SORT_KEYS
_M = TypeVar("_M", bound=BaseModel)


class CanonicalJSONError(ValueError):
    """A value cannot be encoded canonically (non-string key, NaN, unsupported type)."""


def canonical_json(value: Any) -> bytes:
    """Encode a JSON value canonically (sorted keys, compact, UTF-8).

    Raises:
        CanonicalJSONError: for values JSON cannot represent faithfully (NaN, infinities, non-str keys).
    """
    try:
        encoded = orjson.dumps(value, option=_CANONICAL)
    except TypeError as exc:  # orjson raises TypeError (JSONEncodeError) for unsupported values
        raise CanonicalJSONError(str(exc)) from exc
    # orjson silently writes NaN/inf as null; a hash over such a value would lie, so refuse it.
    if b"null" in encoded and _has_non_finite(value):
        raise CanonicalJSONError("NaN and infinite numbers are not JSON values")
    return encoded


_INFINITIES = (float("inf"), float("-inf"))


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity (a float or float subclass) sits anywhere in dicts', lists' and tuples' values.

    A loop over an explicit stack that tests exact types first: it runs whenever a state holds a `null`,
    i.e. on most states sandbox workers hash after each write (issue 18's BFCL replay), where the recursive
    generator walk it replaces took about 15 µs a state against 2 µs; no recursion limit either."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif kind is float:
            if item != item or item in _INFINITIES:
                return True
        elif kind is str or kind is int or kind is bool or item is None:
            continue
        elif isinstance(item, float):
            if item != item or item in _INFINITIES:
                return True
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of raw bytes."""
    return hashlib.sha256(data).hexdigest()


def content_hash(value: Any) -> str:
    """Hex sha256 of the canonical JSON encoding of `value`."""
    return sha256_hex(canonical_json(value))


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text (raises `orjson.JSONDecodeError`, a `ValueError`, on malformed input)."""
    return orjson.loads(text)


def json_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, scalar) pairs of a JSON value, in its own key order; list items keep their parent's path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from json_leaves(item, path)
    else:
        yield path, value


def trusted_construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """Build a model from values that are already known valid, without validation.

    For hot paths only (the runtime builds a `ToolResult` per call from schema-checked data). `values`
    must name every field. About 10x cheaper than `model_construct`.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class SpecModel(BaseModel):
    """Base of every serialised artifact: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON bytes of this model (what hashes and files are made of)."""
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    def canonical_hash(self) -> str:
        """sha256 of `to_json_bytes()`."""
        return sha256_hex(self.to_json_bytes())
