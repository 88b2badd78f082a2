"""Idempotency tokens in generated behavioural suites (issue 19): a generation-2 environment refuses one
token for two different creates, so each call of a tool with a token sends a token not sent before in
its scenario; without tokens (generation 1) the arguments are as they were."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.verify.test_behaviour import SERVICE, _good_env, _load, _operations, _proposal

from envfactory.build.compile_limits import TOKENS_COLLECTION, _tokens_collection
from envfactory.spec import Operation
from envfactory.verify.behaviour import generate_scenarios
from envfactory.verify.behaviour_suite import idempotency_args


def _with_token() -> tuple[dict[str, Any], dict[str, Operation]]:
    """The jobs spec with a `requestId` idempotency token on create_job (named like a reference, so the
    seed pool would otherwise fill it)."""
    doc = copy.deepcopy(_good_env())
    create = next(t for t in doc["tools"] if t["name"] == "create_job")
    create["input_schema"]["properties"]["requestId"] = {"type": "string", "maxLength": 64}
    ops = dict(_operations())
    op = ops[f"{SERVICE}:create_job"]
    schema = copy.deepcopy(op.input_schema)
    schema["properties"]["requestId"] = {"type": "string", "maxLength": 64}
    schema["required"] = [*schema["required"], "requestId"]
    ops[op.id] = op.model_copy(update={"input_schema": schema})
    create["input_schema"]["required"] = [*create["input_schema"]["required"], "requestId"]
    return doc, ops


def _tokens_per_scenario(scenarios: list[Any]) -> list[list[Any]]:
    return [[step.arguments["requestId"] for step in s.steps if step.tool == "create_job"] for s in scenarios]


def test_each_create_sends_a_token_of_its_own_when_the_environment_declares_one(tmp_path: Path) -> None:
    doc, ops = _with_token()
    tools = [t.spec for t in _load(tmp_path, doc, "tok").tools.values()]
    pool = {"requestId": ["req-seeded"]}
    before, _ = generate_scenarios(tools, _proposal(), ops, pool=pool, seed=0)
    # generation 1: the seed's token is reused by every create (what generation 2 refuses as a conflict)
    assert any(len(t) >= 2 and len(set(t)) < len(t) for t in _tokens_per_scenario(before))
    after, _ = generate_scenarios(tools, _proposal(), ops, pool=pool, seed=0, tokens={"create_job": "requestId"})
    per = [t for t in _tokens_per_scenario(after) if t]
    assert per and all(len(set(t)) == len(t) and "req-seeded" not in t for t in per)
    assert [s.id for s in after] == [s.id for s in before]  # the same scenarios, only the tokens differ
    again, _ = generate_scenarios(tools, _proposal(), ops, pool=pool, seed=0, tokens={"create_job": "requestId"})
    assert [s.model_dump() for s in again] == [s.model_dump() for s in after]


def test_only_generation_2_environments_name_their_tokens(tmp_path: Path) -> None:
    doc, _ = _with_token()
    idem = {"arg": "requestId", "collection": "idempotency_tokens"}
    doc["collections"][TOKENS_COLLECTION] = _tokens_collection().model_dump(mode="json")
    next(t for t in doc["tools"] if t["name"] == "create_job")["operation"]["idempotency"] = idem
    doc["meta"]["provenance"] = [{"resource": "example:jobs", "provider": "example", "generation": 2}]
    assert idempotency_args(_load(tmp_path, doc, "gen2")) == {"create_job": "requestId"}
    doc["meta"]["provenance"] = [{"resource": "example:jobs", "provider": "example"}]
    assert idempotency_args(_load(tmp_path, doc, "gen1")) == {}
