"""The behavioural instrument's parents for lists (issue 19): a list that requires another collection's
record as an argument that is no path parameter (AWS `ListImportJobs(AddressListId)`) is asked under a
record the scenario created first, in reference scenarios (framing the call that must fail) and in
pagination walks (every page-walked record created under the same one); a list's optional key argument
is not sent; a list asked for records by name (`PolicyNames`) or by AWS search filters names every
record the scenario created.
Scenarios are written from the spec alone (no environment runs). No LLM, no catalog."""

from __future__ import annotations

from typing import Any

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourScenario
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour import generate_scenarios
from envfactory.verify.behaviour_facts import list_selection, spec_facts

SERVICE = "example:mail:1"
S: dict[str, Any] = {"type": "string"}
LIST = {"type": "object", "properties": {"AddressListId": S, "Name": S}}
JOB = {"type": "object", "properties": {"JobId": S, "AddressListId": S, "Name": S}}
POLICY = {"type": "object", "properties": {"PolicyName": S, "Policy": S}}
OPS: dict[str, tuple[str, str, dict[str, Any], list[str], Any]] = {  # name -> collection, role, args, required, output
    "create_address_list": ("address_lists", "create", {"Name": S}, ["Name"], LIST),
    "get_address_list": ("address_lists", "read", {"AddressListId": S}, ["AddressListId"], LIST),
    "create_import_job": ("import_jobs", "create", {"AddressListId": S, "Name": S}, ["AddressListId", "Name"], JOB),
    "get_import_job": ("import_jobs", "read", {"JobId": S}, ["JobId"], JOB),
    "list_import_jobs": ("import_jobs", "list", {"AddressListId": S, "JobId": S, "MaxResults": {"type": "integer"},
                                                 "NextToken": S}, ["AddressListId"],
                         {"type": "object", "properties": {"ImportJobs": {"type": "array", "items": JOB}, "NextToken": S}}),
    "put_policy": ("policies", "create", {"PolicyName": S, "Policy": S}, ["PolicyName", "Policy"], POLICY),
    "delete_policy": ("policies", "delete", {"PolicyName": S}, ["PolicyName"], {}),
    "get_policies": ("policies", "list", {"PolicyNames": {"type": "array", "items": S}}, ["PolicyNames"],
                     {"type": "object", "properties": {"Policies": {"type": "array", "items": POLICY}}}),
}


def _spec() -> tuple[list[ToolSpec], Proposal, dict[str, Operation]]:
    operations = {f"{SERVICE}:{n}": Operation(
        id=f"{SERVICE}:{n}", provider="example", service="mail", name=n,
        input_schema={"type": "object", "properties": args, "required": req}, output_schema=out)
        for n, (_, _, args, req, out) in OPS.items()}
    tools = [ToolSpec(name=n, description=n, output_schema={}, effect="read",
                      input_schema={"type": "object", "properties": args, "required": req},
                      source={"provider": "example", "service": "mail", "operation_id": f"{SERVICE}:{n}"})
             for n, (_, _, args, req, _) in OPS.items()]
    proposal = Proposal.model_validate({
        "name": "mail", "domain": "utilities", "title": "Mail", "statefulness": 0.9, "usefulness": 0.9,
        "provenance": [{"resource": "example:mail", "provider": "example"}],
        "operations": [{"operation_id": f"{SERVICE}:{n}", "name": n, "role": r, "collection": c}
                       for n, (c, r, _, _, _) in OPS.items()]})
    return tools, proposal, operations


def _scenarios() -> dict[str, BehaviourScenario]:
    scenarios, _ = generate_scenarios(*_spec(), seed=0)
    return {s.id: s for s in scenarios}


def _created_lists(scenario: BehaviourScenario) -> set[str]:
    """The `${var}`s of the address lists the scenario's setup creates."""
    return {f"${{{var}}}" for step in scenario.steps if step.tool == "create_address_list" for var in step.capture}


def test_a_reference_scenario_lists_under_an_address_list_it_created() -> None:
    reference = _scenarios()["reference:import_jobs:get_import_job:JobId"]
    lists = [step for step in reference.steps if step.tool == "list_import_jobs"]
    assert len(lists) == 2 and lists[0].arguments["AddressListId"] == lists[1].arguments["AddressListId"]
    assert lists[0].arguments["AddressListId"] in _created_lists(reference)
    assert reference.steps[0].tool == "create_address_list" and reference.steps[0].expect.outcome == "setup"


def test_a_pagination_walk_creates_every_record_under_the_list_it_walks() -> None:
    walk = _scenarios()["pagination:import_jobs"]
    creates = [step.arguments["AddressListId"] for step in walk.steps if step.tool == "create_import_job"]
    listing = next(step for step in walk.steps if step.tool == "list_import_jobs")
    assert len(creates) == 3 and set(creates) == {listing.arguments["AddressListId"]}
    assert "JobId" not in listing.arguments  # an optional key argument would narrow the list to one record


def test_a_list_by_names_names_every_record_the_scenario_created() -> None:
    listed = _scenarios()["lifecycle:policies:all_listed"]
    names = [step.arguments["PolicyName"] for step in listed.steps if step.tool == "put_policy"]
    listing = next(step for step in listed.steps if step.tool == "get_policies")
    assert len(names) == 2 and listing.arguments["PolicyNames"] == names


def test_a_search_list_selects_every_record_the_scenario_created() -> None:
    search = {"type": "array", "items": {"type": "object", "properties": {
        "name": S, "operator": {"type": "string", "enum": ["LT", "EQUAL"]}, "values": {"type": "array", "items": S}}}}
    tools, proposal, operations = _spec()
    tools = [t.model_copy(update={"input_schema": {"type": "object", "properties": {"filters": search}, "required": ["filters"]}})
             if t.name == "list_import_jobs" else t for t in tools]
    jobs = spec_facts(tools, proposal, operations)["import_jobs"]
    listing = jobs.first("list")
    assert listing is not None
    made = [{"AddressListId": "l-1", "Name": "first"}, {"AddressListId": "l-1", "Name": "second"}]
    assert list_selection(listing, jobs, made) == {
        "filters": [{"name": "AddressListId", "operator": "EQUAL", "values": ["l-1"]}]}
    assert list_selection(listing, jobs, []) == {}
