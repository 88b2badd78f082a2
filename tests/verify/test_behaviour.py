"""Behavioural acceptance (`verify.behaviour`, `verify.behaviour_run`, `verify.behaviour_probes`, issue 19):
scenarios written from a hand-built source spec (catalog operations + proposal) catch planted
misbehaviour in small declarative environments — a required argument ignored (no scoping by the parent
path parameter), a final state that can be left, an unchecked reference — while the well-behaved
environment passes every scenario and ignores no required argument. No LLM, no catalog on disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from envfactory.runtime import Environment, load_env
from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourReport, BehaviourScenario
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour import MISSING, generate_scenarios
from envfactory.verify.behaviour_facts import spec_facts
from envfactory.verify.behaviour_run import behaviour_report, library_summary

SERVICE = "example:jobs:1"
STATUS = ["QUEUED", "RUNNING", "COMPLETED", "CANCELLED"]
JOB = {"type": "object", "properties": {
    "id": {"type": "string"}, "projectId": {"type": "string"}, "title": {"type": "string"},
    "priority": {"type": "string"}, "status": {"type": "string", "enum": STATUS}}}
PROJECT = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}


def _op(name: str, method: str, path: str, props: dict[str, Any], required: list[str], output: Any) -> Operation:
    return Operation(id=f"{SERVICE}:{name}", provider="example", service="jobs", name=name, http_method=method,
                     http_path=path, input_schema={"type": "object", "properties": props, "required": required},
                     output_schema=output)


def _operations() -> dict[str, Operation]:
    """The source spec: projects, and jobs under /projects/{projectId} with a status enum and paging."""
    s = {"type": "string"}
    job_path = "/projects/{projectId}/jobs/{jobId}"
    ops = [
        _op("create_project", "POST", "/projects", {"name": s}, ["name"], PROJECT),
        _op("get_project", "GET", "/projects/{projectId}", {"projectId": s}, ["projectId"], PROJECT),
        _op("create_job", "POST", "/projects/{projectId}/jobs", {"projectId": s, "title": s, "priority": s},
            ["projectId", "title"], JOB),
        _op("get_job", "GET", job_path, {"projectId": s, "jobId": s}, ["projectId", "jobId"], JOB),
        _op("list_jobs", "GET", "/projects/{projectId}/jobs",
            {"projectId": s, "pageSize": {"type": "integer"}, "pageToken": s}, ["projectId"],
            {"type": "object", "properties": {"jobs": {"type": "array", "items": JOB}, "nextPageToken": s}}),
        _op("update_job", "PATCH", job_path, {"projectId": s, "jobId": s, "title": s, "priority": s},
            ["projectId", "jobId"], JOB),
        _op("delete_job", "DELETE", job_path, {"projectId": s, "jobId": s}, ["projectId", "jobId"], {}),
        _op("start_job", "POST", job_path + ":start", {"projectId": s, "jobId": s}, ["projectId", "jobId"], JOB),
        _op("complete_job", "POST", job_path + ":complete", {"projectId": s, "jobId": s}, ["projectId", "jobId"], JOB),
    ]
    return {op.id: op for op in ops}


ROLES = {"create_project": ("projects", "create"), "get_project": ("projects", "read"),
         "create_job": ("jobs", "create"), "get_job": ("jobs", "read"), "list_jobs": ("jobs", "list"),
         "update_job": ("jobs", "update"), "delete_job": ("jobs", "delete"), "start_job": ("jobs", "action"),
         "complete_job": ("jobs", "action")}


def _proposal() -> Proposal:
    return Proposal.model_validate({
        "name": "jobs_service", "domain": "utilities", "title": "Jobs", "statefulness": 0.9, "usefulness": 0.9,
        "provenance": [{"resource": "example:jobs", "provider": "example"}],
        "operations": [{"operation_id": f"{SERVICE}:{n}", "name": n, "role": r, "collection": c}
                       for n, (c, r) in ROLES.items()],
    })


def _in_project(error: str = "not_found") -> list[dict[str, Any]]:
    return [{"condition": {"op": "eq", "left": {"op": "field", "path": "projectId"},
                           "right": {"op": "arg", "path": "projectId"}},
             "error": error, "message": "{key} is not in project {arg.projectId}"}]


def _tool(name: str, props: dict[str, Any], required: list[str], operation: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": name.replace("_", " "), "operation": operation,
            "input_schema": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
            "source": {"provider": "example", "service": "jobs", "operation_id": f"{SERVICE}:{name}"}}


def status(value: str) -> dict[str, Any]:
    """An `assign` setting the job's status."""
    return {"status": {"op": "const", "value": value}}


def _good_env() -> dict[str, Any]:
    """A well-behaved environment of the spec above."""
    s, key = {"type": "string"}, {"projectId": {"type": "string"}, "jobId": {"type": "string"}}
    addressed = {"collection": "jobs", "key_arg": "jobId", "requires": _in_project()}
    return {
        "format": "envfactory.declarative", "schema_version": 1,
        "meta": {"name": "jobs_service", "version": "1.0.0", "domain": "utilities", "description": "Jobs."},
        "collections": {
            "projects": {"id_prefix": "prj_", "id_width": 3, "record_schema": {**PROJECT, "required": ["id", "name"]}},
            "jobs": {
                "id_prefix": "job_", "id_width": 4, "record_schema": {**JOB, "required": ["id", "projectId", "title"]},
                "references": [{"field": "projectId", "collection": "projects"}],
                "transitions": [{"field": "status", "initial": ["QUEUED"], "allowed": {
                    "QUEUED": ["RUNNING", "COMPLETED", "CANCELLED"], "RUNNING": ["COMPLETED", "CANCELLED"],
                    "COMPLETED": [], "CANCELLED": []}}],
            },
        },
        "tools": [
            _tool("create_project", {"name": s}, ["name"], {"kind": "create", "collection": "projects"}),
            _tool("get_project", {"projectId": s}, ["projectId"],
                  {"kind": "get", "collection": "projects", "key_arg": "projectId"}),
            _tool("create_job", {"projectId": s, "title": s, "priority": s}, ["projectId", "title"],
                  {"kind": "create", "collection": "jobs", "assign": status("QUEUED")}),
            _tool("get_job", key, ["projectId", "jobId"], {"kind": "get", **addressed}),
            _tool("list_jobs", {"projectId": s, "pageSize": {"type": "integer", "minimum": 1}, "pageToken": s},
                  ["projectId"], {"kind": "list", "collection": "jobs", "listing": {
                      "filters": [{"arg": "projectId", "field": "projectId"}],
                      "page_size_arg": "pageSize", "page_token_arg": "pageToken"}}),
            _tool("update_job", {**key, "title": s, "priority": s}, ["projectId", "jobId"], {"kind": "patch", **addressed}),
            _tool("delete_job", key, ["projectId", "jobId"], {"kind": "delete", **addressed}),
            _tool("start_job", key, ["projectId", "jobId"],
                  {"kind": "patch", "fields_from_args": False, "assign": status("RUNNING"), **addressed}),
            _tool("complete_job", key, ["projectId", "jobId"],
                  {"kind": "patch", "fields_from_args": False, "assign": status("COMPLETED"), **addressed}),
        ],
    }


def _load(tmp_path: Path, document: dict[str, Any], name: str) -> Environment:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return load_env(path)


def _report(tmp_path: Path, document: dict[str, Any], name: str, *, probe: bool = False) -> BehaviourReport:
    return behaviour_report(_load(tmp_path, document, name), _proposal(), _operations(), seed=0, probe=probe)


def _failed_kinds(report: BehaviourReport) -> set[str]:
    return {s.kind for s in report.scenarios if report.verdicts[s.id] == "failed"}


def test_facts_come_from_the_spec() -> None:
    assert spec_facts([], _proposal(), _operations()) == {}  # no tool implements the proposal: nothing to say
    tools = [ToolSpec(name=t["name"], description=t["description"], input_schema=t["input_schema"],
                      output_schema={}, effect="read", source=t["source"]) for t in _good_env()["tools"]]
    jobs = spec_facts(tools, _proposal(), _operations())["jobs"]
    assert (jobs.key_arg, jobs.parent_args) == ("jobId", ("projectId",))
    assert (jobs.status_field, jobs.final_values) == ("status", ("COMPLETED", "CANCELLED"))
    assert (jobs.size_arg, jobs.token_arg, jobs.token_field) == ("pageSize", "pageToken", "nextPageToken")


def test_generated_scenarios_cover_every_kind_with_three_calls_and_are_deterministic(tmp_path: Path) -> None:
    env = _load(tmp_path, _good_env(), "good")
    tools = [t.spec for t in env.tools.values()]
    scenarios, skipped = generate_scenarios(tools, _proposal(), _operations(), seed=3)
    again, _ = generate_scenarios(tools, _proposal(), _operations(), seed=3)
    assert [s.model_dump() for s in scenarios] == [s.model_dump() for s in again]
    kinds = {(s.kind, s.collection) for s in scenarios}
    assert {("lifecycle", "jobs"), ("scoping", "jobs"), ("reference", "jobs"), ("state_machine", "jobs"),
            ("pagination", "jobs")} <= kinds
    assert all(len(s.steps) >= 3 for s in scenarios)
    assert any("projects" in reason and "scoping" in reason for reason in skipped)
    reference = next(s for s in scenarios if s.kind == "reference" and s.collection == "jobs")
    assert any(step.arguments.get("jobId") == MISSING and step.expect.error_kinds == ["not_found"]
               for step in reference.steps)
    # versioned, typed, round-trips
    assert BehaviourScenario.model_validate_json(scenarios[0].model_dump_json()) == scenarios[0]


def test_well_behaved_environment_passes_and_ignores_no_required_argument(tmp_path: Path) -> None:
    report = _report(tmp_path, _good_env(), "good", probe=True)
    failed = {s.id: [c.observed for c in report.checks if c.scenario == s.id and not c.passed]
              for s in report.scenarios if report.verdicts[s.id] != "passed"}
    assert failed == {}
    ignored = [(p.tool, p.argument) for p in report.probes if p.required and p.effect == "none"]
    assert ignored == []
    assert all(c.expected and c.observed for c in report.checks)
    summary = library_summary([report])
    assert summary["pass_rate"] == 1.0 and summary["final_state_violations"] == 0


def test_ignored_parent_argument_is_flagged_by_scoping_and_the_probe(tmp_path: Path) -> None:
    doc = _good_env()
    listing = next(t for t in doc["tools"] if t["name"] == "list_jobs")
    listing["operation"]["listing"]["filters"] = []  # projectId accepted, never used
    report = _report(tmp_path, doc, "unscoped", probe=True)
    assert "scoping" in _failed_kinds(report)
    probe = next(p for p in report.probes if (p.tool, p.argument) == ("list_jobs", "projectId"))
    assert probe.required and probe.effect == "none"
    assert library_summary([report])["scoping_leaks"] >= 1


def test_leaving_a_final_state_is_flagged(tmp_path: Path) -> None:
    doc = _good_env()
    doc["collections"]["jobs"]["transitions"][0]["allowed"]["COMPLETED"] = ["RUNNING"]
    report = _report(tmp_path, doc, "leaky")
    assert _failed_kinds(report) == {"state_machine"}
    check = next(c for c in report.checks if c.kind == "state_machine" and not c.passed)
    assert check.tool == "start_job" and "succeeded" in check.observed
    assert library_summary([report])["final_state_violations"] == 1


def test_unchecked_reference_is_flagged_and_state_change_is_seen(tmp_path: Path) -> None:
    doc = copy.deepcopy(_good_env())
    doc["collections"]["jobs"]["references"] = []
    report = _report(tmp_path, doc, "unchecked")
    assert "reference" in _failed_kinds(report)
    check = next(c for c in report.checks if c.kind == "reference" and not c.passed)
    assert check.tool == "create_job" and check.arguments["projectId"] == MISSING
    assert library_summary([report])["reference_errors"] >= 1


def test_a_lifecycle_that_does_not_delete_fails(tmp_path: Path) -> None:
    doc = _good_env()
    delete = next(t for t in doc["tools"] if t["name"] == "delete_job")
    delete["operation"] = {"kind": "get", "collection": "jobs", "key_arg": "jobId"}  # answers, deletes nothing
    report = _report(tmp_path, doc, "undeleting")
    lifecycle = next(s for s in report.scenarios if s.kind == "lifecycle" and s.collection == "jobs")
    assert report.verdicts[lifecycle.id] == "failed"
    assert any("succeeded" in c.observed for c in report.checks if c.scenario == lifecycle.id and not c.passed)


def test_envelope_is_compared_with_the_spec_response_without_changing_verdicts(tmp_path: Path) -> None:
    report = _report(tmp_path, _good_env(), "enveloped")
    envelopes = {c.tool: c.envelope for c in report.checks if c.envelope is not None}
    # the engine lists as {"items", "next_page_token", "total"}; the spec says {"jobs", "nextPageToken"}
    assert str(envelopes["list_jobs"]).startswith("mismatch") and "items" in str(envelopes["list_jobs"])
    assert envelopes["get_job"] == "match" and envelopes["create_job"] == "match"
    assert all(v == "passed" for v in report.verdicts.values())
    counts = report.counts()
    assert 0 < counts["envelope_mismatch"] < counts["envelope_checked"]
    assert library_summary([report])["envelope_mismatches"]["tools"] == 1


def test_documented_transition_is_checked(tmp_path: Path) -> None:
    good = _report(tmp_path, _good_env(), "transitions")
    transition = next(s for s in good.scenarios if s.id == "transition:jobs:complete_job:COMPLETED")
    assert good.verdicts[transition.id] == "passed" and len(transition.steps) >= 3
    doc = _good_env()
    complete = next(t for t in doc["tools"] if t["name"] == "complete_job")
    complete["operation"]["assign"] = {}  # accepted, but the job never becomes COMPLETED
    bad = _report(tmp_path, doc, "stuck")
    assert bad.verdicts[transition.id] == "failed"
