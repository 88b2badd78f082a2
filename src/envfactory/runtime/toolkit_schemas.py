"""JSON Schema derivation helpers for python toolkits (`toolkit.py`): pydantic's generator without
made-up titles, generation whose warnings become `SpecError`s, the refusal of sets (whose JSON
order would vary between processes), a tool's argument fields and description from its signature
and Google docstring, and whether its arguments pass through conversion unchanged (`plain_arguments`).

Pure functions; deterministic for a given type.
"""

from __future__ import annotations

import inspect
import types
import typing
import warnings
from collections.abc import Callable
from typing import Annotated, Any

from docstring_parser import Docstring, DocstringStyle
from docstring_parser import parse as parse_docstring
from pydantic import BaseModel, Field
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


def argument_fields(where: str, parameters: list[inspect.Parameter], hints: dict[str, Any],
                    documented: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The arguments model's fields (`p<index>`, aliased to the parameter name, with the docstring's
    description) and the (field, parameter) mapping; `SpecError` for a parameter a tool may not have."""
    fields: dict[str, Any] = {}
    mapping: list[tuple[str, str]] = []
    for index, param in enumerate(parameters):
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise SpecError(f"{where}: {star}{param.name} is not allowed; tools take named, typed parameters")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SpecError(f"{where}: parameter {param.name!r} is positional-only; tools are called by name")
        if param.annotation is inspect.Parameter.empty or param.name not in hints:
            raise SpecError(f"{where}: parameter {param.name!r} has no type annotation")
        annotation = hints[param.name]
        text = documented.get(param.name) or None
        if text and has_field_description(annotation):
            raise SpecError(f"{where}: parameter {param.name!r} is described twice (docstring and Field)")
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Fields get neutral names and the parameter name as alias, so parameters may be called
        # anything (`json`, `copy`, `model_id`, `_x`) without clashing with BaseModel's attributes.
        field = f"p{index}"
        fields[field] = (annotation, Field(default, alias=param.name, description=text))
        mapping.append((field, param.name))
    return fields, mapping


def tool_docstring(where: str, func: Callable[..., Any]) -> tuple[Docstring, str, dict[str, str]]:
    """The parsed Google docstring, the description the agent sees (summary and body) and each documented
    parameter's text; `SpecError` when there is no docstring or no summary line."""
    doc = inspect.getdoc(func)
    if not doc or not doc.strip():
        raise SpecError(f"{where}: no docstring (its summary is the description the agent sees)")
    parsed = parse_docstring(doc, style=DocstringStyle.GOOGLE)
    summary = (parsed.short_description or "").strip()
    if not summary:
        raise SpecError(f"{where}: the docstring has no summary line")
    description = summary + (f"\n\n{parsed.long_description.strip()}" if parsed.long_description else "")
    documented = {p.arg_name: (p.description or "").strip() for p in parsed.params}
    return parsed, description, documented


def _passes_through(annotation: Any) -> bool:
    """Whether pydantic returns every value the JSON Schema of `annotation` admits unchanged: `str`, `bool`,
    `None`, a `Literal` of strings, and unions of these (`str | None`)."""
    if annotation in (str, bool, type(None)):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return all(isinstance(value, str) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return all(_passes_through(arg) for arg in typing.get_args(annotation))
    return False


def plain_arguments(model: type[BaseModel], input_schema: JSONObject) -> bool:
    """Whether converting arguments that fit `input_schema` (derived from `model`) is the identity: every field
    is of a type pydantic passes through (`_passes_through`) with no constraint or validator attached, and the
    schema closes the object (`additionalProperties: false`) and requires exactly the fields without a
    default. Then a tool's arguments, once the session has checked them against the schema, are its keyword
    arguments as they are, and `model_validate` would return the same values (checked in tests/runtime)."""
    if input_schema.get("additionalProperties") is not False:
        return False
    required = {info.alias or name for name, info in model.model_fields.items() if info.is_required()}
    listed = input_schema.get("required", [])
    if not isinstance(listed, list) or set(map(str, listed)) != required:
        return False
    return all(not info.metadata and _passes_through(info.annotation) for info in model.model_fields.values())
