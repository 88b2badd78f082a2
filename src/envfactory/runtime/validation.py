"""Compiled JSON Schema validators (jsonschema-rs; never code generated from spec text).

`CompiledSchema.check(value)` returns `None` when valid, else a message and JSON pointer naming the
first problem, so callers can turn it into an `invalid_arguments` result or a reported violation;
`violations(value, limit)` lists up to `limit` problems, each with the validator's keyword kind
(`Type`, `Required`, `AdditionalProperties`, `Enum`, ...), for callers that classify them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from envfactory.errors import SpecError


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One way a value breaks a schema: the message and the JSON pointer of the value."""
    message: str
    path: str
    kind: str = ""


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class CompiledSchema:
    """A JSON Schema compiled once and reused for every validation."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile `schema` once; `SpecError` when it is not a valid JSON Schema."""
        self.schema = schema
        try:
            self._validator = jsonschema_rs.validator_for(schema)
        except Exception as exc:  # jsonschema-rs raises ValidationError/ValueError for bad schemas
            raise SpecError(f"invalid JSON Schema: {exc}") from exc

    def is_valid(self, value: Any) -> bool:
        """True when `value` fits the schema."""
        return bool(self._validator.is_valid(value))

    def check(self, value: Any) -> SchemaViolation | None:
        """None when `value` fits; else the first violation, with its JSON-pointer path and message."""
        if self._validator.is_valid(value):
            return None
        for error in self._validator.iter_errors(value):
            path = _pointer(error.instance_path)
            where = f" at {path}" if path else ""
            return SchemaViolation(message=f"{error.message}{where}", path=path)
        return SchemaViolation(message="value does not match its schema", path="")

    def violations(self, value: Any, limit: int = 20) -> list[SchemaViolation]:
        """Up to `limit` violations of `value` in the validator's order, each with its JSON-pointer path
        and keyword kind (the name of jsonschema-rs' error kind, e.g. `Required`); empty when it fits."""
        if self._validator.is_valid(value):
            return []
        found: list[SchemaViolation] = []
        for error in self._validator.iter_errors(value):
            path = _pointer(error.instance_path)
            found.append(SchemaViolation(message=error.message, path=path, kind=type(error.kind).__name__))
            if len(found) >= limit:
                break
        return found
