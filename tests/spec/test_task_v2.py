"""Task v2: the synthesis fields, the migration from v1 and ids that stay stable for unchanged content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from envfactory.spec import (
    ChainProvenance,
    EnvRef,
    GoldCall,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    TaskQueries,
    Turn,
    content_hash,
    migrate_task_v1,
)

REPO = Path(__file__).resolve().parents[2]
V1_TASK_FILES = [REPO / "tests" / "fixtures" / "contamination" / "tasks.jsonl"]


def _fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "envs": [EnvRef(name="shop", version="1.0.0")],
        "initial_state": {"shop": {"collections": {}}},
        "turns": [Turn(user=ScriptedUser(text="Order two mugs"),
                       gold_calls=[GoldCall(tool="shop__create_order", arguments={"sku": "mug", "qty": 2})])],
        "origin": TaskOrigin(source="synth", explicit_query="Order two mugs"),
    }
    fields.update(overrides)
    return fields


def _v1_lines() -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for path in V1_TASK_FILES:
        lines.extend(orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return lines


def test_recorded_v1_files_load_as_v2_with_their_ids() -> None:
    documents = _v1_lines()
    assert documents and all(doc["schema_version"] == 1 for doc in documents)
    for doc in documents:
        task = Task.model_validate(doc)  # the id check inside validation proves the id is unchanged
        assert task.schema_version == 2 and task.id == doc["id"]
        assert task.id == content_hash({k: v for k, v in doc.items() if k != "id"})
        # the v2 document round-trips and keeps the id
        assert Task.model_validate_json(task.model_dump_json()).id == doc["id"]
        assert task.explicit_query == doc["origin"]["explicit_query"]  # type: ignore[index]


def test_migration_leaves_v1_meaning_and_marks_the_version() -> None:
    doc = _v1_lines()[0]
    migrated = migrate_task_v1(dict(doc))
    assert migrated["schema_version"] == 2
    assert {k: v for k, v in migrated.items() if k != "schema_version"} == {
        k: v for k, v in doc.items() if k != "schema_version"}
    assert migrate_task_v1(migrated) is migrated  # v2 passes through


def test_v1_id_kept_when_no_v2_field_is_used_and_changed_when_one_is() -> None:
    plain = Task.create(**_fields())
    v1_doc = {**plain.model_dump(mode="json", exclude={"id", "queries", "user_tools", "reward", "split_key",
                                                       "provenance"}), "schema_version": 1}
    for turn in v1_doc["turns"]:
        for call in turn["gold_calls"]:
            del call["essential_arguments"], call["result"]
    assert plain.id == content_hash(v1_doc)
    variants: list[dict[str, Any]] = [
        {"queries": TaskQueries(explicit="Order two mugs", refined="Get me a couple of mugs",
                                refinement_strength=2, refinement_operators=["omit_inferable", "weave_goals"], source="template")},
        {"split_key": "shop:create_order"},
        {"provenance": ChainProvenance(chain_id="c1", tools=["shop__create_order"], sampler="random-walk")},
        {"reward": RewardSpec(calls_weight=1.0)},
        {"turns": [Turn(user=ScriptedUser(text="Order two mugs"), gold_calls=[GoldCall(
            tool="shop__create_order", arguments={"sku": "mug", "qty": 2}, essential_arguments=["sku", "qty"])])]},
        {"turns": [Turn(user=ScriptedUser(text="Order two mugs"), gold_calls=[GoldCall(
            tool="shop__create_order", arguments={"sku": "mug", "qty": 2}, result={"id": "ord_1"})])]},
    ]
    ids = {plain.id}
    for variant in variants:
        task = Task.create(**_fields(**variant))
        assert task.id not in ids, variant
        ids.add(task.id)
        assert Task.model_validate(task.model_dump(mode="json")) == task
    # equal content => equal id, whatever the construction order
    assert Task.create(**_fields(split_key="k")).id == Task.create(**_fields(split_key="k")).id


def test_read_only_tasks_carry_no_expected_state_and_user_tools_are_not_gold() -> None:
    with pytest.raises(ValidationError, match="not scored"):
        Task.create(**_fields(reward=RewardSpec(final_state="not_scored"),
                              expected_final_hash={"shop": "abc"}))
    task = Task.create(**_fields(reward=RewardSpec(final_state="not_scored")))
    assert task.read_only
    with pytest.raises(ValidationError, match="user-only tools"):
        Task.create(**_fields(user_tools=["shop__create_order"]))
    with pytest.raises(ValidationError, match="both essential and ignored"):
        GoldCall(tool="t", essential_arguments=["a"], ignored_arguments=["a"])


def test_tampered_v2_task_is_refused() -> None:
    task = Task.create(**_fields(split_key="k"))
    tampered = {**task.model_dump(mode="json"), "split_key": "other"}
    with pytest.raises(ValidationError, match="content hash"):
        Task.model_validate(tampered)
