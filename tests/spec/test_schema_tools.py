"""`spec.schema_tools`: the JSON-Schema helpers every layer shares (references, walking, merging)."""

from __future__ import annotations

from typing import Any

import pytest

from envfactory.spec.schema_tools import (
    definitions,
    deref,
    local_definition,
    merge,
    pointer_target,
    property_names,
    ref_name,
    walk,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queue": {"$ref": "#/$defs/Queue"},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}}}},
        "pick": {"anyOf": [{"type": "object", "properties": {"left": {}}}, {"type": "null"}]},
    },
    "$defs": {
        "Queue": {"type": "object", "properties": {"url": {"type": "string"}, "dlq": {"$ref": "#/$defs/Queue"}}},
        "a/b": {"type": "string"},
    },
    "definitions": {"Old": {"type": "integer"}},
}


def test_references_resolve_locally_and_say_when_they_do_not() -> None:
    assert pointer_target(SCHEMA, "#/$defs/Queue") is SCHEMA["$defs"]["Queue"]
    assert pointer_target(SCHEMA, "#/$defs/a~1b") == {"type": "string"}  # RFC 6901 escapes
    assert pointer_target(SCHEMA, "#/properties/pick/anyOf/1") == {"type": "null"}  # list indexes
    with pytest.raises(ValueError, match="only local"):
        pointer_target(SCHEMA, "other.json#/Queue")
    with pytest.raises(ValueError, match="cannot resolve"):
        pointer_target(SCHEMA, "#/$defs/Nope")
    assert deref({"$ref": "#/$defs/Queue"}, SCHEMA) is SCHEMA["$defs"]["Queue"]
    assert deref({"$ref": "#/$defs/Nope"}, SCHEMA) is None
    assert deref({"$ref": "Queue"}, SCHEMA) == {"$ref": "Queue"}  # not local: left as it is
    cycle = {"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}
    assert deref({"$ref": "#/$defs/A"}, cycle, max_hops=5) in cycle["$defs"].values()  # ends
    assert local_definition(SCHEMA, "#/definitions/Old") == {"type": "integer"}
    assert local_definition(SCHEMA, "#/properties/queue") is None  # not a definition
    assert ref_name("#/components/schemas/Queue") == "Queue"
    assert set(definitions(SCHEMA)) == {"Queue", "a/b", "Old"}


def test_walk_is_depth_first_in_document_order_and_follows_refs_only_when_told() -> None:
    assert list(property_names(SCHEMA, through=("properties", "items", "anyOf"))) == [
        "queue", "tags", "key", "pick", "left"]
    followed = list(property_names(SCHEMA, root=SCHEMA, through=("properties",), max_depth=3))
    assert followed == ["queue", "url", "dlq", "url", "dlq", "url", "dlq", "tags", "pick"]  # the cycle is cut
    keywords = [keyword for keyword, _, _ in walk(SCHEMA)]
    assert keywords.count("$defs") == 2 and "definitions" not in keywords  # only what `through` names


def test_merge_combines_properties_and_required_and_lets_the_rest_override() -> None:
    merged = merge({"type": "object", "properties": {"a": {}}, "required": ["a"]},
                   {"type": "array", "properties": {"b": {}}, "required": ["b", "a"]})
    assert merged == {"type": "array", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}
