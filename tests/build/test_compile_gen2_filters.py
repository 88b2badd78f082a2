"""Compiler generation 2: required arguments that generation 1 accepted and ignored (issue 19, deliverable 2)
now act, and the Twilio gaps the behavioural suites showed: a list filters by the key it takes (Fraud
Detector `GetDetectors(detectorId)`), by a plural array of a field (`PolicyNames` -> `PolicyName`), a
`<noun>_sid` argument names a record as `<noun>_id` does, "up to N characters" in a field's
description bounds the argument, an action keeps the reason it is given, and an AWS search argument
(`filters: [{name, operator, values}]`) selects records. Generation 1 compiles each as before. No LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok, recorded_proposal
from tests.build.test_compile_scopes import _compile, _empty_session, _op

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.errors import ToolError
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import load_env, open_session
from envfactory.runtime.declarative.guards import search_match
from envfactory.spec import Operation

_PROJECT = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                                         "project_sid": {"type": "string"}}}


def _jobs(generation: int, *, title: str = "The title.") -> CompiledEnv:
    body = {"type": "object", "properties": {"title": {"type": "string", "description": title},
                                             "project_sid": {"type": "string"}}, "required": ["title"]}
    listing = _op("listJobs", "GET", "/jobs", output={"type": "array", "items": _JOB})
    query = {"titles": {"type": "array", "items": {"type": "string"}, "x-in": "query"}}
    listing = listing.model_copy(update={"input_schema": {**listing.input_schema, "properties": query}})
    ops: list[Operation] = [
        _op("createProject", "POST", "/projects", body={"type": "object", "properties": {"name": {"type": "string"}}},
            output=_PROJECT),
        _op("getProject", "GET", "/projects/{id}", output=_PROJECT),
        _op("createJob", "POST", "/jobs", body=body, output=_JOB),
        _op("getJob", "GET", "/jobs/{id}", output=_JOB),
        listing,
    ]
    return _compile(ops, {op.name: ("projects" if "Project" in op.name else "jobs") for op in ops}, generation)


def test_a_plural_array_argument_lists_only_the_records_it_names(tmp_path: Path) -> None:
    s = _empty_session(_jobs(2), tmp_path)
    for title in ("a", "b", "c"):
        ok(s, "create_job", {"title": title})
    listed: Any = ok(s, "list_jobs", {"titles": ["a", "c"]})
    assert sorted(r["title"] for r in listed) == ["a", "c"]
    assert len(ok(s, "list_jobs", {})) == 3  # type: ignore[arg-type]
    assert all(f.arg != "titles" for t in _jobs(1).source.tools if t.operation.listing for f in t.operation.listing.filters)


def test_a_noun_sid_argument_names_a_record_that_must_exist(tmp_path: Path) -> None:
    s = _empty_session(_jobs(2), tmp_path)
    made: Any = ok(s, "create_project", {"name": "p"})
    project = made["id"]
    ok(s, "create_job", {"title": "a", "project_sid": project})
    before = s.hash()
    result = s.call("create_job", {"title": "b", "project_sid": "no-such-project"})
    assert result.error is not None and result.error.kind == "not_found" and s.hash() == before
    assert all(r.field != "project_sid" for r in _jobs(1).source.collections["jobs"].references)


def test_up_to_n_characters_in_a_fields_description_bounds_the_argument(tmp_path: Path) -> None:
    compiled = _jobs(2, title="The title, up to 5 characters.")
    create: Any = next(t for t in compiled.source.tools if t.name == "create_job").input_schema
    assert create["properties"]["title"]["maxLength"] == 5
    s = _empty_session(compiled, tmp_path)
    ok(s, "create_job", {"title": "abcde"})
    result = s.call("create_job", {"title": "abcdef"})
    assert result.error is not None and result.error.kind == "invalid_arguments"
    shipped: Any = next(t for t in _jobs(1, title="The title, up to 5 characters.").source.tools if t.name == "create_job")
    assert "maxLength" not in shipped.input_schema["properties"]["title"]


@pytest.fixture(scope="module")
def frauddetector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["frauddetector"])], tmp_path_factory.mktemp("gen2-filters")) as built:
        yield built


def test_get_detectors_with_a_detector_id_answers_that_detector_only(frauddetector: Catalog, tmp_path: Path) -> None:
    proposal = recorded_proposal("frauddetector_detectors_detector_versions")
    operations = {o.operation_id: frauddetector.operation(o.operation_id) for o in proposal.operations}
    listing: dict[int, Any] = {}
    for generation in (1, 2):
        compiled = compile_proposal(proposal, operations, generation=generation)
        tool = next(t for t in compiled.source.tools if t.name == "get_detectors")
        assert tool.operation.listing is not None
        listing[generation] = [f.arg for f in tool.operation.listing.filters]
    assert "detectorId" not in listing[1] and "detectorId" in listing[2]
    write_env_dir(compiled, tmp_path)
    s = open_session(load_env(tmp_path), {"collections": {}, "counters": {}})
    for name in ("d-one", "d-two"):
        ok(s, "put_detector", {"detectorId": name, "eventTypeName": "sale"})
    answered: Any = ok(s, "get_detectors", {"detectorId": "d-two"})
    assert [d["detectorId"] for d in answered["detectors"]] == ["d-two"]


@pytest.fixture(scope="module")
def agreements(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["marketplace-agreement"])], tmp_path_factory.mktemp("gen2-reasons")) as built:
        yield built


def test_withdrawing_a_cancellation_request_keeps_its_reason(agreements: Catalog, tmp_path: Path) -> None:
    name = "marketplace_agreement_agreement_cancell_e7dfd66e"
    proposal = recorded_proposal(name)
    operations = {o.operation_id: agreements.operation(o.operation_id) for o in proposal.operations}
    shipped = compile_proposal(proposal, operations, generation=1)
    assert "cancellationReason" not in next(t for t in shipped.source.tools
                                            if t.name == "cancel_agreement_cancellation_request").operation.assign
    write_env_dir(compile_proposal(proposal, operations, generation=2), tmp_path)
    s = open_session(load_env(tmp_path), {"collections": {}, "counters": {}})
    made: Any = ok(s, "send_agreement_cancellation_request", {"agreementId": "agmt-1", "reasonCode": "OTHER"})
    key = made.get("agreementCancellationRequestId") or made["agreementCancellationRequest"]["agreementCancellationRequestId"]
    ok(s, "cancel_agreement_cancellation_request", {"agreementCancellationRequestId": key,
                                                    "cancellationReason": "sent by mistake"})
    read: Any = ok(s, "get_agreement_cancellation_request", {"agreementCancellationRequestId": key})
    assert "sent by mistake" in str(read)


@pytest.fixture(scope="module")
def braket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["braket"])], tmp_path_factory.mktemp("gen2-search")) as built:
        yield built


def test_braket_search_filters_select_records(braket: Catalog) -> None:
    proposal = recorded_proposal("braket_jobs")
    operations = {o.operation_id: braket.operation(o.operation_id) for o in proposal.operations}
    matches = {}
    for generation in (1, 2):
        tool = next(t for t in compile_proposal(proposal, operations, generation=generation).source.tools
                    if t.name == "search_jobs")
        assert tool.operation.listing is not None
        matches[generation] = {f.arg: f.match for f in tool.operation.listing.filters}
    assert "filters" not in matches[1] and matches[2]["filters"] == "search"


def test_search_match_reads_name_operator_and_values() -> None:
    record = {"jobName": "alpha", "status": "RUNNING", "createdAt": "2026-01-02"}
    fields = record.keys()
    assert search_match(record, [{"name": "jobName", "operator": "EQUAL", "values": ["beta", "alpha"]}], fields)
    assert not search_match(record, [{"name": "jobName", "operator": "EQUAL", "values": ["beta"]}], fields)
    assert search_match(record, [{"name": "createdAt", "operator": "BETWEEN", "values": ["2026-01-01", "2026-01-03"]},
                                 {"name": "jobName", "operator": "CONTAINS", "values": ["lph"]}], fields)
    assert not search_match(record, [{"name": "createdAt", "operator": "GT", "values": ["2026-01-02"]}], fields)
    assert not search_match(record, [{"name": "nothing", "operator": "EQUAL", "values": ["alpha"]}], fields)
    with pytest.raises(ToolError) as refused:
        search_match(record, [{"name": "jobName", "operator": "LIKE", "values": ["a"]}], fields)
    assert refused.value.kind == "invalid_arguments"


def test_a_create_keeps_the_query_parameters_its_source_requires(tmp_path: Path) -> None:
    create = _op("createProject", "POST", "/projects", output=_PROJECT)
    create = create.model_copy(update={"input_schema": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "x-in": "query"}}}})
    ops = [create, _op("getProject", "GET", "/projects/{id}", output=_PROJECT)]
    required: dict[int, Any] = {}
    for generation in (1, 2):
        compiled = _compile(ops, {op.name: "projects" for op in ops}, generation)
        required[generation] = next(t for t in compiled.source.tools if t.name == "create_project").input_schema.get("required")
    assert not required[1] and required[2] == ["name"]
    s = _empty_session(compiled, tmp_path)
    before = s.hash()
    result = s.call("create_project", {})
    assert result.error is not None and result.error.kind == "invalid_arguments" and s.hash() == before
    ok(s, "create_project", {"name": "p"})


def test_a_required_query_parameter_the_record_lacks_is_stored(tmp_path: Path) -> None:
    create = _op("createProject", "POST", "/projects", output=_PROJECT)
    create = create.model_copy(update={"input_schema": {"type": "object", "required": ["region"], "properties": {
        "region": {"type": "string", "x-in": "query"}, "name": {"type": "string", "x-in": "query"}}}})
    ops = [create, _op("getProject", "GET", "/projects/{id}", output=_PROJECT)]
    compiled = _compile(ops, {op.name: "projects" for op in ops}, 2)
    fields: Any = compiled.source.collections["projects"].record_schema["properties"]
    shipped: Any = _compile(ops, {op.name: "projects" for op in ops}, 1).source.collections["projects"].record_schema
    assert "region" in fields and "region" not in shipped["properties"]
    s = _empty_session(compiled, tmp_path)
    made: Any = ok(s, "create_project", {"region": "eu", "name": "p"})
    read: Any = ok(s, "get_project", {"id": made["id"]})
    assert read["region"] == "eu"
