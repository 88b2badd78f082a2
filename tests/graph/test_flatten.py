"""Schema flattening: nested objects, arrays, `$ref`s (and cycles), allOf/anyOf, enumerated map keys,
`required` propagation, input slots, untyped fields and the breadth-first field cap."""

from __future__ import annotations

from typing import Any

from envfactory.graph.flatten import flatten


def paths(schema: dict[str, Any], *, inputs: bool) -> dict[str, Any]:
    return {f.path: f for f in flatten(schema, inputs=inputs).fields}


def test_nested_objects_and_arrays() -> None:
    schema = {
        "type": "object",
        "properties": {
            "Queue": {"type": "object", "properties": {"Url": {"type": "string"}, "Tags": {"type": "object"}}},
            "Messages": {"type": "array", "items": {"type": "object", "properties": {"Id": {"type": "string"}}}},
            "Urls": {"type": "array", "items": {"type": "string"}},
        },
    }
    found = paths(schema, inputs=False)
    assert set(found) == {"Queue", "Queue.Url", "Queue.Tags", "Messages", "Messages[]", "Messages[].Id", "Urls", "Urls[]"}
    assert found["Queue"].container and not found["Queue.Url"].container
    assert found["Urls"].type == "array" and found["Urls"].item_type == "string" and found["Urls[]"].type == "string"


def test_refs_are_followed_named_and_cycles_stop() -> None:
    schema = {
        "$ref": "#/$defs/Task",
        "$defs": {
            "Task": {"type": "object", "properties": {"id": {"type": "string"}, "parent": {"$ref": "#/$defs/Task"},
                                                      "links": {"type": "array", "items": {"$ref": "#/$defs/Link"}}}},
            "Link": {"type": "object", "properties": {"href": {"type": "string", "format": "uri"}}},
        },
    }
    found = paths(schema, inputs=False)
    assert found["id"].parent_ref == "Task"
    assert found["parent"].type == "object" and found["parent"].ref == "Task"
    assert found["links[]"].ref == "Link" and found["links[].href"].format == "uri"
    assert not any(p.startswith("parent.parent") for p in found)


def test_required_holds_only_when_every_enclosing_field_is_required() -> None:
    schema = {
        "type": "object", "required": ["body", "name"],
        "properties": {
            "name": {"type": "string"},
            "note": {"type": "string"},
            "body": {"type": "object", "required": ["role"], "properties": {"role": {"type": "string"},
                                                                               "extra": {"type": "string"}}},
            "opt": {"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}},
            "free": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    found = paths({**schema, "required": ["body", "name", "free"]}, inputs=True)
    assert found["name"].required and found["name"].slot
    assert not found["note"].required
    assert found["body"].required and not found["body"].slot  # its required field is the slot
    assert found["body.role"].slot and not found["body.extra"].required
    assert not found["opt.x"].required  # the enclosing object is optional
    assert found["free"].slot  # a required object none of whose fields is required


def test_array_of_objects_input_slots_are_the_item_fields() -> None:
    schema = {"type": "object", "required": ["Entries"], "properties": {"Entries": {
        "type": "array", "items": {"type": "object", "required": ["Id"], "properties": {"Id": {"type": "string"}}}}}}
    found = paths(schema, inputs=True)
    assert not found["Entries"].slot and found["Entries[].Id"].slot


def test_enumerated_map_keys_become_output_fields() -> None:
    schema = {"type": "object", "properties": {"Attributes": {
        "type": "object", "additionalProperties": {"type": "string"}, "propertyNames": {"enum": ["QueueArn", "Policy"]}}}}
    found = paths(schema, inputs=False)
    assert {"Attributes.QueueArn", "Attributes.Policy"} <= set(found)
    assert "Attributes.QueueArn" not in paths(schema, inputs=True)


def test_all_of_merges_and_any_of_contributes_optional_fields() -> None:
    schema = {"type": "object", "properties": {
        "a": {"allOf": [{"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}},
                        {"properties": {"y": {"type": "integer"}}}]},
        "b": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"z": {"type": "string"}}}]},
        "c": {"type": ["string", "null"]},
    }}
    found = paths(schema, inputs=False)
    assert found["a.x"].type == "string" and found["a.y"].type == "integer"
    assert found["b.z"].type == "string"
    assert found["c"].type == "string"


def test_untyped_fields_are_any_and_reported() -> None:
    flat = flatten({"type": "object", "properties": {"odd": {"description": "no type"}, "ok": {"type": "string"}}},
                   inputs=True)
    types = {f.path: f.type for f in flat.fields}
    assert types == {"odd": "any", "ok": "string"}
    assert flat.untyped == ["odd"]


def test_odd_schemas_do_not_raise() -> None:
    for schema in ({}, {"type": "string"}, {"$ref": "#/nowhere"}, {"type": "object", "properties": {"x": 3}},
                   {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}):
        flatten(schema, inputs=False)  # type: ignore[arg-type]
        flatten(schema, inputs=True)  # type: ignore[arg-type]
    result = {f.path for f in flatten({"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string"}}}}, inputs=False).fields}
    assert result == {"result", "result[]", "result[].id"}


def test_the_field_cap_keeps_shallow_fields_first() -> None:
    deep = {"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(50)}}
    schema = {"type": "object", "properties": {"a_deep": deep, "z_id": {"type": "string"}}}
    flat = flatten(schema, inputs=False, max_fields=10)
    assert flat.truncated
    assert "z_id" in {f.path for f in flat.fields}


def test_source_paths_keep_original_top_level_names() -> None:
    flat = flatten({"type": "object", "properties": {"x_y": {"type": "string"}}}, inputs=True,
                   field_names={"x_y": "x.y"})
    assert [(f.path, f.source_path) for f in flat.fields] == [("x_y", "x.y")]
