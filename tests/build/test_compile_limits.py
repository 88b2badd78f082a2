"""Compiler generation 2's pass over the assembled source (`build/compile_limits.py`), on hand-written
OpenAPI-style specs driven through the runtime: idempotency tokens, capacities and `maxItems` read from
"at most N" prose, cascades and "only when empty" restrictions read from delete descriptions, and the
seed fitted to them. Generation 1 declares none of them. No LLM, no catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.build.helpers import ok
from tests.build.test_compile_scopes import _compile, _empty_session, _op

from envfactory.build.compile import CompiledEnv
from envfactory.build.compile_limits import TOKENS_COLLECTION
from envfactory.spec import Operation

_PROJECT = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                         "project_id": {"type": "string"},
                                         "labels": {"type": "array", "items": {"type": "string"}}}}


def _described(op: Operation, text: str) -> Operation:
    return op.model_copy(update={"description": text})


def _projects_and_jobs(*, project_delete: str = "Deletes a project.", job_create: str = "Creates a job.",
                       generation: int = 2, token: dict[str, Any] | None = None) -> CompiledEnv:
    job_body: dict[str, Any] = {"type": "object", "properties": {
        "title": {"type": "string"}, "project_id": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}}, **(token or {})}, "required": ["title"]}
    ops = [
        _op("createProject", "POST", "/projects", body={"type": "object", "properties": {"name": {"type": "string"}}}, output=_PROJECT),
        _op("getProject", "GET", "/projects/{id}", output=_PROJECT),
        _described(_op("deleteProject", "DELETE", "/projects/{id}"), project_delete),
        _described(_op("createJob", "POST", "/jobs", body=job_body, output=_JOB), job_create),
        _op("getJob", "GET", "/jobs/{id}", output=_JOB),
        _op("listJobs", "GET", "/jobs", output={"type": "array", "items": _JOB}),
    ]
    collection_of = {op.name: ("projects" if "Project" in op.name else "jobs") for op in ops}
    return _compile(ops, collection_of, generation)


def _tool_ops(compiled: CompiledEnv) -> dict[str, Any]:
    return {t.name: t.operation for t in compiled.source.tools}


def test_a_client_token_makes_the_create_idempotent(tmp_path: Path) -> None:
    compiled = _projects_and_jobs(token={"clientToken": {"type": "string"}})
    assert _tool_ops(compiled)["create_job"].idempotency.arg == "clientToken"
    assert TOKENS_COLLECTION in compiled.source.collections and compiled.seeds["default"]["collections"][TOKENS_COLLECTION] == {}  # type: ignore[index]
    s = _empty_session(compiled, tmp_path)
    first = ok(s, "create_job", {"title": "a", "clientToken": "c-1"})
    assert ok(s, "create_job", {"title": "a", "clientToken": "c-1"}) == first
    assert len(ok(s, "list_jobs", {})) == 1  # the source answers a bare array, so the tool does (generation 2)
    result = s.call("create_job", {"title": "b", "clientToken": "c-1"})
    assert result.error is not None and result.error.kind == "rule_violation" and "conflict" in result.error.message
    assert _tool_ops(_projects_and_jobs(token={"clientToken": {"type": "string"}}, generation=1))["create_job"].idempotency is None


def test_an_idempotency_key_header_becomes_an_argument() -> None:
    header = {"Idempotency-Key": {"type": "string", "x-in": "header"}}
    ops = [_op("createProject", "POST", "/projects", body={"type": "object", "properties": {"name": {"type": "string"}}}, output=_PROJECT),
           _op("getProject", "GET", "/projects/{id}", output=_PROJECT)]
    ops[0] = ops[0].model_copy(update={"input_schema": {**ops[0].input_schema, "properties": {**ops[0].input_schema["properties"], **header}}})
    compiled = _compile(ops, {op.name: "projects" for op in ops})
    create = next(t for t in compiled.source.tools if t.name == "create_project")
    assert create.operation.idempotency is not None and create.operation.idempotency.arg in create.input_schema["properties"]


def test_at_most_n_in_prose_is_a_capacity_and_the_seed_leaves_room(tmp_path: Path) -> None:
    compiled = _projects_and_jobs(job_create="Creates a job. An account can have at most 3 jobs.")
    capacity = compiled.source.collections["jobs"].capacity
    assert capacity is not None and capacity.max_records == 3 and "at most 3 jobs" in capacity.quote
    assert len(compiled.seeds["default"]["collections"]["jobs"]) <= 2  # type: ignore[index,arg-type]
    s = _empty_session(compiled, tmp_path)
    for title in ("a", "b", "c"):
        ok(s, "create_job", {"title": title})
    before = s.hash()
    result = s.call("create_job", {"title": "d"})
    assert result.error is not None and result.error.kind == "rule_violation" and "at most 3" in result.error.message
    assert s.hash() == before
    assert _projects_and_jobs(job_create="Creates a job. An account can have at most 3 jobs.", generation=1).source.collections["jobs"].capacity is None


def test_at_most_n_of_an_array_field_is_max_items(tmp_path: Path) -> None:
    compiled = _projects_and_jobs(job_create="Creates a job. A job can carry at most 2 labels.")
    assert compiled.source.collections["jobs"].record_schema["properties"]["labels"]["maxItems"] == 2
    s = _empty_session(compiled, tmp_path)
    ok(s, "create_job", {"title": "a", "labels": ["x", "y"]})
    result = s.call("create_job", {"title": "b", "labels": ["x", "y", "z"]})
    assert result.error is not None and result.error.kind == "invalid_arguments"


def _project_with_job(compiled: CompiledEnv, tmp_path: Path) -> tuple[Any, str, str]:
    s = _empty_session(compiled, tmp_path)
    project = ok(s, "create_project", {"name": "p"})["id"]  # type: ignore[index]
    job = ok(s, "create_job", {"title": "a", "project_id": project})["id"]  # type: ignore[index]
    return s, project, job


def test_a_delete_that_says_it_removes_the_children_cascades(tmp_path: Path) -> None:
    plain = _projects_and_jobs()
    (ref,) = plain.source.collections["jobs"].references
    assert (ref.field, ref.on_delete) == ("project_id", "restrict")  # a named reference: restrict by default
    compiled = _projects_and_jobs(project_delete="Deletes the project and all jobs in it.")
    assert compiled.source.collections["jobs"].references[0].on_delete == "cascade"
    s, project, job = _project_with_job(compiled, tmp_path)
    ok(s, "delete_project", {"id": project})
    assert s.call("get_job", {"id": job}).error.kind == "not_found"  # type: ignore[union-attr]
    assert _projects_and_jobs(project_delete="Deletes the project and all jobs in it.", generation=1).source.collections["jobs"].references[0].on_delete == "restrict"


def test_a_delete_only_when_empty_restricts_even_a_cascade_sentence(tmp_path: Path) -> None:
    text = "Deletes the project and all jobs in it. A project can only be deleted when it is empty."
    compiled = _projects_and_jobs(project_delete=text)
    assert compiled.source.collections["jobs"].references[0].on_delete == "restrict"
    s, project, job = _project_with_job(compiled, tmp_path)
    before = s.hash()
    result = s.call("delete_project", {"id": project})
    assert result.error is not None and result.error.kind == "rule_violation" and s.hash() == before
    assert ok(s, "get_job", {"id": job})["project_id"] == project  # type: ignore[index]


def test_a_sentence_that_forbids_the_delete_is_no_cascade() -> None:
    compiled = _projects_and_jobs(project_delete="You must delete all jobs before deleting the project.")
    assert compiled.source.collections["jobs"].references[0].on_delete == "restrict"


def _releases_and_assets() -> CompiledEnv:
    base = "/repos/{owner}/{repo}/releases"
    release = {"type": "object", "properties": {"id": {"type": "string"}, "tag_name": {"type": "string"}}}
    asset = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
    ops = [
        _op("createRelease", "POST", base, body={"type": "object", "properties": {"tag_name": {"type": "string"}}}, output=release),
        _op("getRelease", "GET", base + "/{id}", output=release),
        _op("listReleases", "GET", base, output={"type": "array", "items": release}),
        _op("createAsset", "POST", base + "/{release_id}/assets", body={"type": "object", "properties": {"name": {"type": "string"}}}, output=asset),
        _op("listAssets", "GET", base + "/{release_id}/assets", output={"type": "array", "items": asset}),
    ]
    return _compile(ops, {op.name: ("assets" if "Asset" in op.name else "releases") for op in ops})


def test_seeded_children_live_under_their_parents_scope() -> None:
    compiled = _releases_and_assets()
    seed: Any = compiled.seeds["default"]
    releases, assets = seed["collections"]["releases"], seed["collections"]["assets"]
    assert assets and {"owner", "repo"} <= set(next(iter(assets.values())))
    for asset in assets.values():
        parent = releases[asset["release_id"]]
        assert (asset["owner"], asset["repo"]) == (parent["owner"], parent["repo"])


def test_the_probe_sees_scoped_list_arguments_take_effect(tmp_path: Path) -> None:
    from envfactory.build.envdir import write_env_dir
    from envfactory.runtime import load_env
    from envfactory.verify.behaviour_probes import probe_arguments

    write_env_dir(_releases_and_assets(), tmp_path)
    effects = {(p.tool, p.argument): p.effect for p in probe_arguments(load_env(tmp_path), seed=0)}
    for argument in ("owner", "repo", "release_id"):
        assert effects[("list_assets", argument)] == "output", (argument, effects)


def _counted_projects(generation: int) -> CompiledEnv:
    project = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                                "size": {"type": "integer", "description": "The number of jobs in the project."},
                                                "quota": {"type": "integer", "description": "The maximum number of jobs allowed."}}}
    job = {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}}}
    ops = [
        _op("createProject", "POST", "/projects", body={"type": "object", "properties": {"name": {"type": "string"}}}, output=project),
        _op("getProject", "GET", "/projects/{id}", output=project),
        _op("createJob", "POST", "/projects/{project_id}/jobs", body={"type": "object", "properties": {"title": {"type": "string"}}}, output=job),
        _op("deleteJob", "DELETE", "/projects/{project_id}/jobs/{id}"),
    ]
    return _compile(ops, {op.name: ("projects" if "Project" in op.name else "jobs") for op in ops}, generation)


def test_a_field_described_as_the_number_of_children_counts_them(tmp_path: Path) -> None:
    assert not any(t.operation.effects for t in _counted_projects(1).source.tools)  # generation 1 reads names only
    compiled = _counted_projects(2)
    s = _empty_session(compiled, tmp_path)
    project = ok(s, "create_project", {"name": "p"})
    assert isinstance(project, dict) and project["size"] == 0 and "quota" not in project
    job = ok(s, "create_job", {"project_id": project["id"], "title": "a"})
    ok(s, "create_job", {"project_id": project["id"], "title": "b"})
    assert ok(s, "get_project", {"id": project["id"]})["size"] == 2  # type: ignore[index]
    ok(s, "delete_job", {"project_id": project["id"], "id": job["id"]})  # type: ignore[index]
    assert ok(s, "get_project", {"id": project["id"]})["size"] == 1  # type: ignore[index]


def test_a_limit_on_one_request_is_no_capacity() -> None:
    compiled = _projects_and_jobs(job_create="Creates jobs in bulk. The request holds an array of up to 10 jobs.")
    assert compiled.source.collections["jobs"].capacity is None
