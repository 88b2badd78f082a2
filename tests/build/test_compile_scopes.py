"""Compiler fixes of issue 19 (deliverable 3), compiler generation 2, driven through the runtime on
hand-written OpenAPI-style specs: records scoped by parent path parameters without a parent collection
(`/repos/{owner}/{repo}/releases`), a scope parameter that names another collection's key checked as a
reference, final states of a status enum that no record leaves, the responses' envelopes; generation 1
(the shipped library's) keeps none of them. No LLM, no catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.shapes import shape_of
from envfactory.errors import SpecError
from envfactory.runtime import Session, load_env, open_session
from envfactory.runtime.declarative.compile import compile_source
from envfactory.spec import Operation, Proposal, Provenance
from envfactory.spec.build import ProposedOperation
from envfactory.spec.declarative import EnvelopeDecl


def _op(name: str, method: str, path: str, *, body: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None) -> Operation:
    props: dict[str, Any] = {p.strip("{}"): {"type": "string", "x-in": "path"} for p in path.split("/") if p.startswith("{")}
    required = list(props)
    if body is not None:
        props["body"] = {**body, "x-in": "body"}
        required.append("body")
    return Operation(
        id=f"openapi:scopes.example:1.0:{name}", provider="openapi:scopes.example", service="scopes.example",
        name=name, description=f"{method} {path}", http_method=method, http_path=path,
        input_schema={"type": "object", "properties": props, "required": required}, output_schema=output or {},
    )


def _compile(ops: list[Operation], collection_of: dict[str, str], generation: int = 2) -> CompiledEnv:
    proposed = [ProposedOperation(operation_id=op.id, name=op.name, role=shape_of(op).role,
                                  collection=collection_of[op.name]) for op in ops]
    provenance = Provenance(resource="openapi:scopes.example", provider="openapi:scopes.example",
                            service="scopes.example", licence="MIT", operations=[op.id for op in ops])
    proposal = Proposal(name="scopes_example", domain="office", title="Scopes", provenance=[provenance],
                        operations=proposed, statefulness=0.8, usefulness=0.5).with_id()
    return compile_proposal(proposal, {op.id: op for op in ops}, generation=generation)


def _empty_session(compiled: CompiledEnv, directory: Path) -> Session:
    write_env_dir(compiled, directory)
    return open_session(load_env(directory), {"collections": {}, "counters": {}})


_RELEASE = {"type": "object", "properties": {
    "id": {"type": "string"}, "tag_name": {"type": "string"}, "name": {"type": "string"},
    "state": {"type": "string", "enum": ["draft", "published", "completed"]},
}}
_RELEASE_BODY = {"type": "object", "properties": {"tag_name": {"type": "string"}, "name": {"type": "string"},
                                                 "state": {"type": "string", "enum": ["draft", "published", "completed"]}},
                 "required": ["tag_name"]}


def _releases(generation: int = 2) -> CompiledEnv:
    base = "/repos/{owner}/{repo}/releases"
    ops = [
        _op("createRelease", "POST", base, body=_RELEASE_BODY, output=_RELEASE),
        _op("listReleases", "GET", base, output={"type": "array", "items": _RELEASE}),
        _op("getRelease", "GET", base + "/{id}", output=_RELEASE),
        _op("updateRelease", "PUT", base + "/{id}", body=_RELEASE_BODY, output=_RELEASE),
        _op("deleteRelease", "DELETE", base + "/{id}"),
    ]
    return _compile(ops, {op.name: "releases" for op in ops}, generation)


def test_parent_path_parameters_scope_records_without_a_parent_collection(tmp_path: Path) -> None:
    compiled = _releases()
    releases = compiled.source.collections["releases"]
    assert {"owner", "repo"} <= set(releases.record_schema["properties"])  # stored on the record
    s = _empty_session(compiled, tmp_path)
    mine = {"owner": "alice", "repo": "app"}
    other = {"owner": "bob", "repo": "other"}
    created = ok(s, "create_release", {**mine, "tag_name": "v1"})
    assert isinstance(created, dict) and created["owner"] == "alice" and created["repo"] == "app"
    key = created["id"]
    # the spec's list answers a bare array: so does ours (generation 2)
    assert [r["id"] for r in ok(s, "list_releases", mine)] == [key]  # type: ignore[attr-defined]
    assert ok(s, "list_releases", other) == []
    assert ok(s, "list_releases", {"owner": "alice", "repo": "lib"}) == []
    before = s.hash()
    for tool, args in (("get_release", {}), ("update_release", {"tag_name": "v2"}), ("delete_release", {})):
        result = s.call(tool, {**other, "id": key, **args})
        assert result.error is not None and result.error.kind == "not_found", (tool, result)
        assert "owner" in result.error.message
    assert s.hash() == before  # refused calls change nothing
    assert ok(s, "get_release", {**mine, "id": key})["tag_name"] == "v1"  # type: ignore[index]
    ok(s, "delete_release", {**mine, "id": key})


def test_final_state_refuses_every_move_out_and_a_full_update_keeps_the_state(tmp_path: Path) -> None:
    compiled = _releases()
    (transition,) = compiled.source.collections["releases"].transitions
    assert transition.field == "state" and transition.allowed["completed"] == []
    assert transition.allowed["draft"] == ["published", "completed"]  # written from arguments: any other value
    s = _empty_session(compiled, tmp_path)
    where = {"owner": "alice", "repo": "app"}
    key = ok(s, "create_release", {**where, "tag_name": "v1", "state": "draft"})["id"]  # type: ignore[index]
    # a full update that does not name the state keeps it (moving the state is a transition of its own)
    assert ok(s, "update_release", {**where, "id": key, "tag_name": "v1.1"})["state"] == "draft"  # type: ignore[index]
    ok(s, "update_release", {**where, "id": key, "tag_name": "v1.1", "state": "completed"})
    before = s.hash()
    for state in ("draft", "published"):
        result = s.call("update_release", {**where, "id": key, "tag_name": "v1.2", "state": state})
        assert result.error is not None and result.error.kind == "rule_violation", result
        assert "final" in result.error.message
    assert s.hash() == before
    assert ok(s, "get_release", {**where, "id": key})["state"] == "completed"  # type: ignore[index]
    # a new record may still be created in any state, the final one included
    assert ok(s, "create_release", {**where, "tag_name": "v0", "state": "completed"})["state"] == "completed"  # type: ignore[index]


_ORG = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
_DEVICE = {"type": "object", "properties": {"id": {"type": "string"}, "mac": {"type": "string"}}}


def test_a_scope_parameter_naming_another_collection_is_a_checked_reference(tmp_path: Path) -> None:
    org_body = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    device_body = {"type": "object", "properties": {"mac": {"type": "string"}}, "required": ["mac"]}
    ops = [
        _op("createOrg", "POST", "/orgs", body=org_body, output=_ORG),
        _op("getOrg", "GET", "/orgs/{org_id}", output=_ORG),
        # devices live under another chain than the orgs' own path: no parent link, a scope instead
        _op("claimDevice", "POST", "/installer/orgs/{org_id}/devices", body=device_body, output=_DEVICE),
        _op("listDevices", "GET", "/installer/orgs/{org_id}/devices", output={"type": "array", "items": _DEVICE}),
    ]
    compiled = _compile(ops, {"createOrg": "orgs", "getOrg": "orgs", "claimDevice": "devices", "listDevices": "devices"})
    devices = compiled.source.collections["devices"]
    assert [(r.field, r.collection) for r in devices.references] == [("org_id", "orgs")]
    s = _empty_session(compiled, tmp_path)
    org = ok(s, "create_org", {"name": "acme"})["id"]  # type: ignore[index]
    before = s.hash()
    result = s.call("claim_device", {"org_id": "no-such-org", "mac": "aa:bb"})
    assert result.error is not None and result.error.kind == "not_found", result
    assert s.hash() == before
    device = ok(s, "claim_device", {"org_id": org, "mac": "aa:bb"})
    assert [d["id"] for d in ok(s, "list_devices", {"org_id": org})] == [device["id"]]  # type: ignore[attr-defined,index]


_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}}}


def test_results_take_the_envelopes_the_responses_define(tmp_path: Path) -> None:
    body = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    page = {"type": "object", "properties": {"jobs": {"type": "array", "items": _JOB}, "nextPageToken": {"type": "string"},
                                             "totalSize": {"type": "integer"}}}
    ops = [
        _op("createJob", "POST", "/jobs", body=body, output={"type": "object", "properties": {"job": _JOB}}),
        _op("getJob", "GET", "/jobs/{id}", output={"type": "object", "properties": {"job": _JOB}}),
        _op("listJobs", "GET", "/jobs", output=page),
        _op("deleteJob", "DELETE", "/jobs/{id}"),
    ]
    ops[2] = ops[2].model_copy(update={"input_schema": {"type": "object", "properties": {
        "pageToken": {"type": "string", "x-in": "query"}, "pageSize": {"type": "integer", "x-in": "query"}}}})
    compiled = _compile(ops, {op.name: "jobs" for op in ops})
    envelopes = {t.name: t.operation.envelope for t in compiled.source.tools}
    assert envelopes["delete_job"] is None
    assert envelopes["get_job"] is not None and envelopes["get_job"].records == "job"
    listing = envelopes["list_jobs"]
    assert listing is not None and (listing.records, listing.next_token, listing.total) == ("jobs", "nextPageToken", "totalSize")
    s = _empty_session(compiled, tmp_path)
    created = ok(s, "create_job", {"title": "a"})
    assert isinstance(created, dict) and set(created) == {"job"} and created["job"]["title"] == "a"
    ok(s, "create_job", {"title": "b"})
    assert ok(s, "get_job", {"id": created["job"]["id"]}) == {"job": created["job"]}
    first = ok(s, "list_jobs", {"pageSize": 1})
    assert isinstance(first, dict) and set(first) == {"jobs", "nextPageToken", "totalSize"} and first["totalSize"] == 2
    second = ok(s, "list_jobs", {"pageSize": 1, "pageToken": first["nextPageToken"]})
    assert [j["title"] for j in first["jobs"] + second["jobs"]] == ["a", "b"]  # type: ignore[index]
    # the last page leaves the token out, as the source does (its schema says string, never null)
    assert set(second) == {"jobs", "totalSize"}
    # the served output schemas say the same
    tools = {t.name: t for t in load_env(tmp_path).spec.tools}
    served = tools["list_jobs"].output_schema
    assert set(served["properties"]) == {"jobs", "nextPageToken", "totalSize"}
    assert served["properties"]["nextPageToken"] == {"type": "string"} and set(served["required"]) == {"jobs", "totalSize"}
    assert ok(s, "delete_job", {"id": created["job"]["id"]}) == {"deleted": created["job"]["id"]}


def test_a_list_whose_response_is_an_array_answers_a_bare_array(tmp_path: Path) -> None:
    compiled = _releases()
    listing = next(t for t in compiled.source.tools if t.name == "list_releases")
    assert listing.operation.envelope == EnvelopeDecl(records=None)
    served = {t.name: t for t in compile_source(compiled.source).tools}["list_releases"].output_schema
    assert served["type"] == "array" and served["items"]["type"] == "object"
    assert all(t.operation.envelope is None for t in _releases(1).source.tools)  # generation 1: {items, next_page_token, total}
    # only a list answers a bare array, and with no token or total
    get = next(t for t in compiled.source.tools if t.name == "get_release")
    for tool, envelope in ((get, EnvelopeDecl(records=None)), (listing, EnvelopeDecl(records=None, total="n"))):
        bad = tool.model_copy(update={"operation": tool.operation.model_copy(update={"envelope": envelope})})
        source = compiled.source.model_copy(update={"tools": [bad if t.name == tool.name else t for t in compiled.source.tools]})
        with pytest.raises(SpecError, match=r"bare array"):
            compile_source(source)


def test_an_envelope_is_left_out_of_the_file_when_absent_and_checked_when_present() -> None:
    compiled = _releases()
    delete = next(t for t in compiled.source.tools if t.name == "delete_release")
    assert delete.operation.envelope is None and "envelope" not in delete.operation.model_dump(mode="json")
    bad = delete.model_copy(update={"operation": delete.operation.model_copy(update={"envelope": EnvelopeDecl(records="x")})})
    source = compiled.source.model_copy(update={"tools": [bad if t.name == "delete_release" else t for t in compiled.source.tools]})
    with pytest.raises(SpecError, match=r"delete_release\.operation\.envelope"):
        compile_source(source)


def test_generation_1_compiles_as_the_shipped_library_and_records_no_generation(tmp_path: Path) -> None:
    first, second = _releases(1), _releases(2)
    assert "generation" not in first.source.meta.provenance[0].model_dump(mode="json")  # hashes as before
    assert [p.generation for p in second.source.meta.provenance] == [2]
    releases = first.source.collections["releases"]
    assert "owner" not in releases.record_schema["properties"] and releases.transitions == []
    assert all(t.operation.envelope is None and not t.operation.keep_transitions for t in first.source.tools)
    s = _empty_session(first, tmp_path)
    key = ok(s, "create_release", {"owner": "alice", "repo": "app", "tag_name": "v1"})["id"]  # type: ignore[index]
    # generation 1 still ignores the parent path: the release shows under another owner
    assert ok(s, "get_release", {"owner": "bob", "repo": "other", "id": key})["tag_name"] == "v1"  # type: ignore[index]


def test_records_take_the_responses_spelling_of_request_members(tmp_path: Path) -> None:
    body = {"type": "object", "properties": {"FriendlyName": {"type": "string"}}, "required": ["FriendlyName"]}
    service = {"type": "object", "properties": {"sid": {"type": "string"}, "friendly_name": {"type": "string"}}}
    ops = [
        _op("createService", "POST", "/Services", body=body, output=service),
        _op("fetchService", "GET", "/Services/{Sid}", output=service),
    ]
    first = _compile(ops, {op.name: "services" for op in ops}, 1)
    assert {"FriendlyName", "Sid"} <= set(first.source.collections["services"].record_schema["properties"])
    compiled = _compile(ops, {op.name: "services" for op in ops})
    services = compiled.source.collections["services"]
    assert services.key == "sid" and "FriendlyName" not in services.record_schema["properties"]
    create = next(t for t in compiled.source.tools if t.name == "create_service")
    assert create.source is not None and create.source.field_names["friendly_name"] == "FriendlyName"
    s = _empty_session(compiled, tmp_path)
    made = ok(s, "create_service", {"friendly_name": "main"})
    assert isinstance(made, dict) and made["friendly_name"] == "main" and isinstance(made["sid"], str)
    assert ok(s, "fetch_service", {"Sid": made["sid"]}) == made


def test_a_create_answers_every_field_its_response_requires(tmp_path: Path) -> None:
    body = {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                                             "labels": {"type": "array", "items": {"type": "string"}}}, "required": ["name"]}
    group = {"type": "object", "required": ["id", "name", "description", "labels", "createdOn", "slug"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
        "slug": {"type": "string", "minLength": 3},  # no empty value fits: left out, the create still succeeds
        "labels": {"type": "array", "items": {"type": "string"}}, "createdOn": {"type": "string", "format": "date-time"}}}
    ops = [_op("createGroup", "POST", "/groups", body=body, output=group), _op("getGroup", "GET", "/groups/{id}", output=group)]
    first = _compile(ops, {op.name: "groups" for op in ops}, 1)
    assert next(t for t in first.source.tools if t.name == "create_group").operation.assign == {}
    s = _empty_session(_compile(ops, {op.name: "groups" for op in ops}), tmp_path)
    bare = ok(s, "create_group", {"name": "a"})
    assert isinstance(bare, dict) and (bare["description"], bare["labels"]) == ("", []) and bare["createdOn"].startswith("20")
    assert "slug" not in bare
    given = ok(s, "create_group", {"name": "b", "description": "the b team", "labels": ["x"]})
    assert isinstance(given, dict) and (given["description"], given["labels"]) == ("the b team", ["x"])
