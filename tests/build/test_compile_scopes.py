"""The declarative format's response envelopes (issue 19 deliverable 3) on a hand-written OpenAPI-style
spec: an operation without one serialises without the key (content hashes of earlier environments stay),
and the format compiler refuses one on a delete. No LLM, no catalog.

The compiler fixes themselves (scope fields for parent path parameters, final states, envelopes emitted
from the responses) and their tests wait on branch `library-v2` for the library rebuild they require."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


def _compile(ops: list[Operation], collection_of: dict[str, str]) -> CompiledEnv:
    proposed = [ProposedOperation(operation_id=op.id, name=op.name, role=shape_of(op).role,
                                  collection=collection_of[op.name]) for op in ops]
    provenance = Provenance(resource="openapi:scopes.example", provider="openapi:scopes.example",
                            service="scopes.example", licence="MIT", operations=[op.id for op in ops])
    proposal = Proposal(name="scopes_example", domain="office", title="Scopes", provenance=[provenance],
                        operations=proposed, statefulness=0.8, usefulness=0.5).with_id()
    return compile_proposal(proposal, {op.id: op for op in ops})


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


def _releases() -> CompiledEnv:
    base = "/repos/{owner}/{repo}/releases"
    ops = [
        _op("createRelease", "POST", base, body=_RELEASE_BODY, output=_RELEASE),
        _op("listReleases", "GET", base, output={"type": "array", "items": _RELEASE}),
        _op("getRelease", "GET", base + "/{id}", output=_RELEASE),
        _op("updateRelease", "PUT", base + "/{id}", body=_RELEASE_BODY, output=_RELEASE),
        _op("deleteRelease", "DELETE", base + "/{id}"),
    ]
    return _compile(ops, {op.name: "releases" for op in ops})


_ORG = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
_DEVICE = {"type": "object", "properties": {"id": {"type": "string"}, "mac": {"type": "string"}}}


_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}}}


def test_an_envelope_is_left_out_of_the_file_when_absent_and_checked_when_present() -> None:
    compiled = _releases()
    delete = next(t for t in compiled.source.tools if t.name == "delete_release")
    assert delete.operation.envelope is None and "envelope" not in delete.operation.model_dump(mode="json")
    bad = delete.model_copy(update={"operation": delete.operation.model_copy(update={"envelope": EnvelopeDecl(records="x")})})
    source = compiled.source.model_copy(update={"tools": [bad if t.name == "delete_release" else t for t in compiled.source.tools]})
    with pytest.raises(SpecError, match=r"delete_release\.operation\.envelope"):
        compile_source(source)
