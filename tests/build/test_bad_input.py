"""Bad input to the compiler and the proposer: malformed, huge and cyclic schemas, operations without
schemas, hostile strings. Each is skipped or dropped with a recorded reason and the rest still
builds. Hand-written `Operation`s (no catalog, no LLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.build.helpers import ok, session_of

from envfactory.build.compile import compile_proposal
from envfactory.build.naming import collection_name, env_name, field_name, tool_name
from envfactory.build.propose import permissive_licence, proposals_for_resource
from envfactory.resources.model import Resource
from envfactory.spec import Operation, ResourceSource
from envfactory.spec.schema_tools import MAX_NODES, flatten

HOSTILE = "Robert'); DROP TABLE x;-- {{7*7}} __import__('os').system('rm -rf /') \u202e"


def op(name: str, method: str, path: str, inputs: dict[str, Any] | None = None, output: dict[str, Any] | None = None,
       description: str = "") -> Operation:
    return Operation(
        id=f"openapi:shop:1:{name}", provider="shop.example", service="shop", name=name, http_method=method,
        http_path=path, input_schema=inputs if inputs is not None else {"type": "object", "properties": {}},
        output_schema=output or {}, description=description,
    )


def body(props: dict[str, Any], defs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"body": {"type": "object", "properties": props, "x-in": "body"}, **extra}}
    if defs:
        schema["$defs"] = defs
    return schema


ITEM = {"type": "object", "properties": {"id": {"type": "string", "x-in": "path"}}, "required": ["id"]}
NODE = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}}}


def shop(extra: list[Operation]) -> Resource:
    base = [
        op("createNode", "POST", "/nodes", body({"name": {"type": "string"}, "parent": {"$ref": "#/$defs/Node"}}, {"Node": NODE}),
           {"$ref": "#/$defs/Node", "$defs": {"Node": NODE}}, description=HOSTILE),
        op("getNode", "GET", "/nodes/{id}", ITEM, {"$ref": "#/$defs/Node", "$defs": {"Node": NODE}}),
        op("listNodes", "GET", "/nodes", {"type": "object", "properties": {"name": {"type": "string", "x-in": "query"}}}),
        op("deleteNode", "DELETE", "/nodes/{id}", ITEM),
    ]
    return Resource(id="shop.example:shop:1", kind="openapi", provider="shop.example", service="shop", version="1",
                    licence="MIT", source=ResourceSource(licence="MIT"), operations=base + extra)


def test_cyclic_refs_flatten_with_an_open_object() -> None:
    flat = flatten({"$ref": "#/$defs/Node", "$defs": {"Node": NODE}})
    assert flat is not None
    assert flat["properties"]["name"] == {"type": "string"}
    assert flat["properties"]["child"] == {"type": "object"}  # the cycle stops at the first repeat


def test_unresolvable_refs_drop_the_field_only() -> None:
    flat = flatten({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}, "b": {"type": "string"}}})
    assert flat == {"type": "object", "properties": {"b": {"type": "string"}}}


def test_hostile_strings_stay_data_and_the_env_works(tmp_path: Path) -> None:
    hostile_field = op("patchNode", "PATCH", "/nodes/{id}", {
        "type": "object",
        "properties": {"id": {"type": "string", "x-in": "path"},
                       "body": {"type": "object", "x-in": "body", "properties": {"name; rm -rf": {"type": "string", "enum": [HOSTILE]}}}},
        "required": ["id"]})
    resource = shop([hostile_field])
    proposals, _ = proposals_for_resource(resource, None, "commerce")
    ops = {o.id: o for o in resource.operations}
    compiled = compile_proposal(proposals[0], ops)
    tools = {t.name: t for t in compiled.source.tools}
    assert tools["create_node"].description == HOSTILE  # kept verbatim, as data
    patch = tools["patch_node"]
    assert "name_rm_rf" in patch.input_schema["properties"]
    assert patch.source is not None and patch.source.field_names["name_rm_rf"] == "name; rm -rf"
    s = session_of(compiled, tmp_path)
    node = ok(s, "create_node", {"name": HOSTILE})
    assert node["name"] == HOSTILE  # type: ignore[index]
    patched = ok(s, "patch_node", {"id": node["id"], "name_rm_rf": HOSTILE})  # type: ignore[index]
    assert patched["name_rm_rf"] == HOSTILE  # type: ignore[index]


def test_operations_without_schemas_and_actions_are_dropped_with_reasons(tmp_path: Path) -> None:
    no_schema = op("getThing", "GET", "/things/{thing}", {})
    action = op("archiveNode", "POST", "/nodes/{id}/archive", ITEM)
    resource = shop([no_schema, action])
    proposals, _ = proposals_for_resource(resource, None, "commerce")
    assert len(proposals) == 1  # /things has no create: not proposed
    assert "getThing" not in {o.name for o in proposals[0].operations}
    ops = {o.id: o for o in resource.operations}
    extended = proposals[0].model_copy(update={"operations": [*proposals[0].operations]})
    compiled = compile_proposal(extended, ops)
    session_of(compiled, tmp_path)  # what is left loads


def test_huge_schema_is_dropped_and_the_rest_builds(tmp_path: Path) -> None:
    wide = {f"f{i}": {"type": "object", "properties": {f"g{j}": {"type": "string"} for j in range(20)}} for i in range(MAX_NODES // 10)}
    huge = op("updateNode", "PUT", "/nodes/{id}", {**ITEM, "properties": {**ITEM["properties"], "body": {"type": "object", "x-in": "body", "properties": wide}}})
    resource = shop([huge])
    proposals, _ = proposals_for_resource(resource, None, "commerce")
    compiled = compile_proposal(proposals[0], {o.id: o for o in resource.operations})
    assert [(d.operation_id, str(MAX_NODES) in d.reason) for d in compiled.dropped] == [("openapi:shop:1:updateNode", True)]
    assert {t.name for t in compiled.source.tools} == {"create_node", "get_node", "list_nodes", "delete_node"}
    session_of(compiled, tmp_path)


def test_malformed_specs_give_no_proposal_with_a_reason() -> None:
    empty = Resource(id="x:y:1", kind="openapi", provider="x", service="y", licence="MIT")
    assert proposals_for_resource(empty, None, "commerce") == ([], "no operations")
    only_reads = shop([]).model_copy(update={"operations": [op("getNode", "GET", "/nodes/{id}", ITEM)]})
    proposals, why = proposals_for_resource(only_reads, None, "commerce")
    assert proposals == [] and "created and read back" in why


def test_names_always_fit_their_patterns() -> None:
    for text in ["", "!!!", HOSTILE, "0day", "a" * 300, "tasks.tasklists.insert", "GetQueueAttributes", "über-Größe"]:
        assert tool_name(text)
        assert field_name(text)[0].isalpha() or field_name(text)[0] == "_"
        name = env_name(text, text)
        assert name[0].isalpha() and len(name) <= 48 and "__" not in name
        assert collection_name(text)[0].isalpha()
    assert tool_name("GetQueueAttributes") == "get_queue_attributes"


def test_licences() -> None:
    for ok_ in ["Apache-2.0", "Apache 2.0", "Apache License 2.0", "MIT", "CC-BY-4.0", "CC0-1.0", "Creative Commons Attribution 3.0"]:
        assert permissive_licence(ok_), ok_
    for bad in ["", "eBay API License Agreement", "Creative Commons Attribution NonCommercial 4.0 (CC-BY-NC)",
                "Creative Commons CC BY-NC-ND 2.0", "GPL-3.0", "CC-BY-SA-4.0"]:
        assert not permissive_licence(bad), bad


def test_a_proposal_with_nothing_compilable_raises_with_the_reasons() -> None:
    import pytest

    from envfactory.build.errors import CompileError

    actions = [op("archiveNode", "POST", "/nodes/{id}/archive", ITEM), op("ping", "POST", "/ping/{id}", ITEM)]
    resource = shop([])
    proposal = proposals_for_resource(resource, None, "commerce")[0][0]
    only_actions = proposal.model_copy(update={"operations": [
        o.model_copy(update={"operation_id": a.id, "name": a.name, "role": "action"})
        for o, a in zip(proposal.operations, actions, strict=False)
    ]})
    with pytest.raises(CompileError, match=r"no operation compiles.*archiveNode: not CRUD"):
        compile_proposal(only_actions, {a.id: a for a in actions})
