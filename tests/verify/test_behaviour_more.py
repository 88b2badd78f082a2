"""The scenario kinds of generator version 3 (`verify.behaviour_more`, issue 19): two records each read
back with their own values, a listed record showing the values its list's items declare, a create
without an argument the spec requires (or with a value outside its enum) refused with the state
unchanged. Written from the hand-built jobs spec of `test_behaviour.py`; the well-behaved environment
passes them, planted misbehaviour fails them. No LLM, no catalog."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.verify.test_behaviour import _good_env, _load, _operations, _proposal

from envfactory.spec import ToolSpec
from envfactory.spec.behaviour import BehaviourScenario
from envfactory.verify.behaviour_facts import spec_facts
from envfactory.verify.behaviour_more import more_scenarios, spec_required
from envfactory.verify.behaviour_run import run_behaviour


def _run(tmp_path: Path, doc: dict[str, Any], name: str) -> dict[str, str]:
    env = _load(tmp_path, doc, name)
    scenarios, _ = more_scenarios([t.spec for t in env.tools.values()], _proposal(), _operations(), seed=0)
    return {s.id: run_behaviour(env, s, seed=0)[0] for s in scenarios}


def test_the_kinds_are_written_from_the_spec_and_a_good_environment_passes_them(tmp_path: Path) -> None:
    env = _load(tmp_path, _good_env(), "good")
    tools = [t.spec for t in env.tools.values()]
    scenarios, skipped = more_scenarios(tools, _proposal(), _operations(), seed=0)
    again, _ = more_scenarios(tools, _proposal(), _operations(), seed=0)
    assert [s.model_dump() for s in scenarios] == [s.model_dump() for s in again]
    ids = {s.id for s in scenarios}
    assert {"lifecycle:jobs:distinct", "lifecycle:jobs:listed_values", "validation:jobs:create_job:title"} <= ids
    assert all(len(s.steps) >= 3 and isinstance(s, BehaviourScenario) for s in scenarios)
    assert any(r.startswith("lifecycle:projects:listed_values") for r in skipped)  # projects have no list
    create_job = next(s for s in scenarios if s.id == "validation:jobs:create_job:title").steps[-2]
    assert "title" not in create_job.arguments and create_job.expect.error_kinds == ["invalid_arguments"]
    assert _run(tmp_path, _good_env(), "good2") == {s: "passed" for s in ids}


def test_spec_required_reads_the_source_operation_not_the_tool() -> None:
    doc_tools = copy.deepcopy(_good_env()["tools"])
    for tool in doc_tools:
        if tool["name"] == "create_job":
            tool["input_schema"]["required"] = ["projectId"]  # the tool relaxes what the spec requires
    tools = [ToolSpec(name=t["name"], description=t["description"], input_schema=t["input_schema"],
                      output_schema={}, effect="read", source=t["source"]) for t in doc_tools]
    create = spec_facts(tools, _proposal(), _operations())["jobs"].first("create")
    assert create is not None and spec_required(create) == ["projectId", "title"]


def test_a_create_that_does_not_require_what_the_spec_requires_fails(tmp_path: Path) -> None:
    doc = _good_env()
    create = next(t for t in doc["tools"] if t["name"] == "create_job")
    create["input_schema"]["required"] = ["projectId"]
    doc["collections"]["jobs"]["record_schema"]["required"] = ["id", "projectId"]
    verdicts = _run(tmp_path, doc, "lax")
    assert verdicts["validation:jobs:create_job:title"] == "failed"
    assert verdicts["lifecycle:jobs:distinct"] == "passed"


def test_a_read_that_answers_the_last_record_written_fails_distinct(tmp_path: Path) -> None:
    doc = _good_env()
    read = next(t for t in doc["tools"] if t["name"] == "get_job")
    # answers whatever record the list would show first: not the one its key names
    read["operation"] = {"kind": "list", "collection": "jobs", "listing": {"filters": [
        {"arg": "projectId", "field": "projectId"}], "default_page_size": 1}}
    verdicts = _run(tmp_path, doc, "sloppy")
    assert verdicts["lifecycle:jobs:distinct"] == "failed"
