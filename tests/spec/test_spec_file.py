"""The file form of an `EnvSpec` (version 2): repeated schemas shared under `$defs`, expanded on read."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from envfactory.runtime import load_env
from envfactory.spec import EnvSpec, canonical_json
from envfactory.spec.spec_file import DEFS_KEY, MIN_SHARED_BYTES, expand_spec, pack_spec

RECORD = {"type": "object", "properties": {"id": {"type": "string", "description": "the record's id, unique"},
                                           "title": {"type": "string", "description": "a short human title"}}}


def _tool(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": name, "effect": "read", "input_schema": {"type": "object", "title": name},
            "output_schema": output}


def _document() -> dict[str, Any]:
    """A spec document whose record schema stands in the state, a get output and a list output."""
    return {
        "schema_version": 2, "meta": {"name": "records"}, "content_hash": "",
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Records"},
        "state_schema": {"type": "object", "properties": {"records": {"type": "object", "additionalProperties": RECORD}}},
        "tools": [
            _tool("get_record", copy.deepcopy(RECORD)),
            _tool("list_records", {"type": "object", "properties": {"items": {"type": "array", "items": copy.deepcopy(RECORD)}}}),
            _tool("count_records", {"type": "integer"}),
        ],
    }


def test_a_repeated_schema_is_written_once_and_expands_back() -> None:
    document = _document()
    before = copy.deepcopy(document)
    packed = pack_spec(document)
    assert document == before  # the argument is not changed
    assert list(packed[DEFS_KEY]) == ["state.records{}"]  # named where it was first met
    assert packed["tools"][0]["output_schema"] == {"$ref": "#/$defs/state.records{}"}
    assert packed["tools"][1]["output_schema"]["properties"]["items"]["items"] == {"$ref": "#/$defs/state.records{}"}
    assert len(canonical_json(packed)) < len(canonical_json(document))
    assert expand_spec(packed) == document
    assert canonical_json(pack_spec(document)) == canonical_json(packed)  # deterministic


def test_the_names_follow_the_content_not_the_key_order() -> None:
    """A freshly compiled spec and the same spec read back from sorted JSON write the same bytes."""
    document = _document()
    stamp = {"type": "string", "format": "date-time",
             "description": "when the record was last changed, in RFC 3339 form, as the service set it"}
    document["tools"][2]["output_schema"] = {"type": "object", "properties": {"b": dict(stamp), "a": dict(stamp)}}
    reordered = orjson.loads(canonical_json(document))
    assert list(reordered["tools"][2]["output_schema"]["properties"]) == ["a", "b"]
    packed = pack_spec(document)
    assert "count_records.output.a" in packed[DEFS_KEY]
    assert canonical_json(packed) == canonical_json(pack_spec(reordered))


def test_a_schema_used_once_or_too_short_to_share_stays_in_place() -> None:
    document = _document()
    short = {"type": "string", "format": "date-time"}
    assert len(canonical_json(short)) < MIN_SHARED_BYTES
    document["tools"][2]["output_schema"] = {"type": "object", "properties": {"a": short, "b": short}}
    packed = pack_spec(document)
    assert packed["tools"][2]["output_schema"] == document["tools"][2]["output_schema"]
    # the record's description strings are repeated only inside the shared record: no definition of their own
    assert all(name == "state.records{}" for name in packed[DEFS_KEY])


def test_a_document_with_its_own_references_is_written_in_full() -> None:
    document = _document()
    document["tools"][2]["input_schema"] = {"type": "object", "$defs": {"X": {"type": "string"}},
                                            "properties": {"x": {"$ref": "#/$defs/X"}}}
    packed = pack_spec(document)
    assert DEFS_KEY not in packed and packed == document
    assert expand_spec(packed) == document  # nothing to expand: its `$ref` stays the toolkit's own


def test_the_model_reads_both_versions_and_keeps_the_content_hash() -> None:
    spec = load_env("shop").spec
    assert spec.schema_version == 2
    version_1 = {**spec.model_dump(mode="json"), "schema_version": 1}
    from_v1 = EnvSpec.model_validate_json(orjson.dumps(version_1))
    assert from_v1 == spec and from_v1.content_hash == spec.content_hash
    # the hash is over the version-1 form: what every environment sealed before version 2 holds
    assert spec.compute_hash() == EnvSpec.model_validate(version_1).compute_hash()
    from_file = EnvSpec.model_validate_json(spec.to_json_bytes())
    assert from_file == spec
    assert b'"$ref"' not in canonical_json(from_file.model_dump(mode="json"))


def test_a_shipped_file_round_trips() -> None:
    from envfactory.runtime import library_env_names, library_root

    name = library_env_names()[0]
    data = (library_root() / name / "spec.json").read_bytes()
    assert DEFS_KEY in orjson.loads(data)
    spec = EnvSpec.model_validate_json(data)
    assert spec.to_json_bytes() == data


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda d: d[DEFS_KEY].clear(), "no such shared schema"),
    (lambda d: d[DEFS_KEY].update({"state.records{}": {"type": "object", "properties": {
        "again": {"$ref": "#/$defs/state.records{}"}}}}), "reference cycle"),
    (lambda d: d.update({"schema_version": 1}), "a version-1 spec has no \\$defs"),
])
def test_a_broken_file_form_is_refused_with_the_reason(edit: Any, problem: str) -> None:
    document = _document()
    document["content_hash"] = ""
    packed = pack_spec(document)
    edit(packed)
    with pytest.raises(ValidationError, match=problem):
        EnvSpec.model_validate_json(canonical_json(packed))


def test_the_exported_json_schema_accepts_both_file_forms() -> None:
    import json

    import jsonschema_rs

    from envfactory.cli.schema import artifact_schema
    from envfactory.runtime import library_env_names, library_root

    validator = jsonschema_rs.validator_for(json.loads(json.dumps(artifact_schema(EnvSpec))))
    shipped = orjson.loads((library_root() / library_env_names()[0] / "spec.json").read_bytes())
    assert DEFS_KEY in shipped and validator.is_valid(shipped)
    spec = EnvSpec.model_validate(shipped)
    assert validator.is_valid({**spec.model_dump(mode="json"), "schema_version": 1})
    assert not validator.is_valid({**shipped, "schema_version": 3})
