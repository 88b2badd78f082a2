"""Compiled JSON Schema validation of structured outputs and tool arguments (jsonschema-rs).

Contract: a schema is compiled once per `SchemaValidators` instance and reused; `problems(value)`
returns readable messages with JSON pointers (empty when valid), the text fed back to a model when its
answer is retried. A schema that does not compile is the caller's bug: `SpecError`.
"""

from __future__ import annotations

import threading
from typing import Any

import jsonschema_rs

from envfactory.errors import SpecError
from envfactory.spec import JSONObject, content_hash


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class CompiledSchema:
    """One compiled JSON Schema."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: JSONObject) -> None:
        """Compile `schema`; a `SpecError` when it is not a valid JSON Schema."""
        self.schema = schema
        try:
            self._validator = jsonschema_rs.validator_for(schema)
        except Exception as exc:  # jsonschema-rs raises ValidationError or ValueError for a bad schema
            raise SpecError(f"invalid JSON Schema: {exc}") from exc

    def problems(self, value: Any, limit: int = 5) -> list[str]:
        """Up to `limit` messages naming what is wrong with `value`; empty when it is valid."""
        if self._validator.is_valid(value):
            return []
        found: list[str] = []
        for error in self._validator.iter_errors(value):
            path = _pointer(error.instance_path)
            found.append(f"{error.message} at {path}" if path else str(error.message))
            if len(found) >= limit:
                break
        return found or ["the value does not match the schema"]


class SchemaValidators:
    """A thread-safe memo of compiled schemas, keyed by their canonical hash."""

    def __init__(self) -> None:
        """An empty memo."""
        self._compiled: dict[str, CompiledSchema] = {}
        self._lock = threading.Lock()

    def get(self, schema: JSONObject) -> CompiledSchema:
        """The compiled form of `schema` (compiled once per canonical hash); a `SpecError` for an invalid one."""
        key = content_hash(schema)
        with self._lock:
            compiled = self._compiled.get(key)
        if compiled is None:
            compiled = CompiledSchema(schema)
            with self._lock:
                self._compiled.setdefault(key, compiled)
        return compiled
