"""Behaviour of the spec models: validation, content hashes, canonical JSON, schema export."""

from __future__ import annotations

import math

import jsonschema_rs
import pytest
from pydantic import ValidationError

from envfactory.spec import (
    ARTIFACT_MODELS,
    EnvMeta,
    EnvRef,
    GoldCall,
    Reward,
    RewardComponent,
    ScriptedUser,
    Task,
    ToolResult,
    ToolSpec,
    Turn,
    canonical_json,
    content_hash,
)
from envfactory.spec.base import CanonicalJSONError


def _task(**overrides: object) -> Task:
    fields: dict[str, object] = {
        "envs": [EnvRef(name="shop", version="1.0.0")],
        "initial_state": {"shop": {"collections": {}}},
        "turns": [Turn(user=ScriptedUser(text="Order two mugs"), gold_calls=[GoldCall(tool="shop__create_order")])],
    }
    fields.update(overrides)
    return Task.create(**fields)


def test_canonical_json_ignores_key_order_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_json({"a": [1, {"c": 3, "d": 2}], "b": 1})
    assert canonical_json({"a": 1}) == b'{"a":1}'
    with pytest.raises(CanonicalJSONError):
        canonical_json({"x": math.nan})
    with pytest.raises(CanonicalJSONError):
        canonical_json({"x": [math.inf]})


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    spec = ToolSpec(name="get_x", description="d", input_schema={"type": "object"}, output_schema={}, effect="read")
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        ToolSpec.model_validate({**spec.model_dump(), "surprise": 1})


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "", "dot.name"])
def test_tool_names_follow_the_convention(bad: str) -> None:
    with pytest.raises(ValidationError):
        ToolSpec(name=bad, description="", input_schema={}, output_schema={}, effect="read")


@pytest.mark.parametrize("bad", ["Shop", "my__env", "1shop", "shop-x"])
def test_env_names_reserve_double_underscore(bad: str) -> None:
    with pytest.raises(ValidationError):
        EnvMeta(name=bad)


def test_task_id_is_its_content_hash_and_tampering_is_refused() -> None:
    task = _task()
    assert task.id == task.compute_id() and len(task.id) == 64
    assert _task().id == task.id, "same content, same id"
    assert _task(seed=1).id != task.id, "different content, different id"
    tampered = task.model_dump()
    tampered["seed"] = 99
    with pytest.raises(ValidationError, match="content hash"):
        Task.model_validate(tampered)


def test_task_refuses_states_for_unknown_envs() -> None:
    with pytest.raises(ValidationError, match="does not use"):
        _task(initial_state={"bank": {}})


def test_reward_total_is_weighted_mean_of_scored_components() -> None:
    reward = Reward.combine(
        [
            RewardComponent(name="state", score=1.0, weight=3),
            RewardComponent(name="calls", score=0.5, weight=1),
            RewardComponent(name="rubric", score=None, weight=5),
        ]
    )
    assert reward.total == pytest.approx(0.875)
    assert Reward.combine([RewardComponent(name="rubric", score=None)]).total == 0.0
    with pytest.raises(ValidationError, match="weighted"):
        Reward(components=[RewardComponent(name="state", score=1.0)], total=0.3)


def test_tool_result_round_trips_through_json() -> None:
    result = ToolResult(call_id="c1", tool="t", output={"a": [1, 2]}, step=0)
    again = ToolResult.model_validate_json(result.model_dump_json())
    assert again == result and again.ok
    assert content_hash(result.model_dump(mode="json")) == result.canonical_hash()


@pytest.mark.parametrize("name", sorted(ARTIFACT_MODELS))
def test_exported_json_schemas_are_valid_and_accept_real_instances(name: str) -> None:
    schema = ARTIFACT_MODELS[name].model_json_schema()
    jsonschema_rs.meta.validate(schema)
    if name == "task":
        assert jsonschema_rs.validator_for(schema).is_valid(_task().model_dump(mode="json"))
