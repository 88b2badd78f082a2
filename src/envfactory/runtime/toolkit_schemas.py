"""JSON Schema derivation helpers for python toolkits (`toolkit.py`): pydantic's generator without
made-up titles, generation whose warnings become `SpecError`s, and the refusal of sets (whose JSON
order would vary between processes).

Pure functions; deterministic for a given type.
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Callable
from typing import Annotated, Any

from pydantic.errors import PydanticUserError
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, PydanticJsonSchemaWarning

from envfactory.errors import SpecError
from envfactory.spec import JSONObject


def type_name(tp: Any) -> str:
    """A readable name of a type annotation, for messages and descriptions."""
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)


class ToolSchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator without the per-field titles it makes up from field names (noise to an agent)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Never: field titles are left out."""
        return False


def tool_json_schema(build: Callable[[], dict[str, Any]], where: str) -> JSONObject:
    """Run `build` (a pydantic JSON Schema generation); a warning or unsupported type becomes a `SpecError` at `where`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PydanticJsonSchemaWarning)
        try:
            schema = build()
        except PydanticJsonSchemaWarning as exc:
            raise SpecError(f"{where}: {exc}") from exc
        except PydanticUserError as exc:
            raise SpecError(f"{where}: no JSON Schema for this type: {exc}") from exc
    return schema


def unordered_collections(schema: Any, path: str = "") -> str | None:
    """The first place where a schema holds a set (its JSON order would depend on `PYTHONHASHSEED`)."""
    if isinstance(schema, dict):
        if schema.get("uniqueItems") is True:
            return path or "/"
        for key, value in schema.items():
            found = unordered_collections(value, f"{path}/{key}")
            if found is not None:
                return found
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found = unordered_collections(value, f"{path}/{index}")
            if found is not None:
                return found
    return None


def refuse_sets(schema: JSONObject, where: str) -> None:
    """Raise `SpecError` when `schema` holds a set (no canonical JSON order)."""
    found = unordered_collections(schema)
    if found is not None:
        raise SpecError(
            f"{where}: a set or frozenset (schema at {found}) has no canonical JSON order, so hashes and "
            "outputs would vary between processes; use a list (sorted where order does not matter)"
        )


def has_field_description(annotation: Any) -> bool:
    """Whether an `Annotated[...]` parameter carries a `Field(description=...)`."""
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in typing.get_args(annotation)[1:])
