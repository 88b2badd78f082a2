"""Gated tasks on the bundled `shop` environment for the trajectory-stage tests, built by running their
gold calls in the runtime (so gold results, expected final states and replays are real), and a task stage
holding them, written the way `synth tasks` writes its output (`tasks.jsonl` and a finished manifest)."""

from __future__ import annotations

from typing import Any

from envfactory.runtime import Environment, load_env, open_group
from envfactory.spec import (
    EnvRef,
    GoldCall,
    OutputContainsCheck,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    Turn,
)
from envfactory.store import StageDir, Workspace

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


def _task(shop: Environment, calls: list[tuple[str, dict[str, Any], list[str]]], *, read_only: bool,
          facts: list[str] = ()) -> Task:  # type: ignore[assignment]
    group = open_group([shop], {"shop": shop.default_state()}, seed=1)
    gold = []
    for tool, arguments, essential in calls:
        result = group.call(tool, arguments)
        assert result.ok, (tool, result)
        gold.append(GoldCall(tool=tool, arguments=arguments, essential_arguments=essential, result=result.output))
    fields: dict[str, Any] = {
        "envs": [EnvRef(name="shop", version=shop.spec.version, content_hash=shop.spec.content_hash)],
        "initial_state": {"shop": shop.default_state()}, "seed": 1,
        "turns": [Turn(user=ScriptedUser(text="(template) " + "; ".join(t for t, _, _ in calls)), gold_calls=gold)],
        "origin": TaskOrigin(source="synth", domain="commerce"),
    }
    if read_only:
        fields["reward"] = RewardSpec(final_state="not_scored")
        fields["checks"] = [OutputContainsCheck(text=fact) for fact in facts]
    else:
        fields["expected_final_state"] = {"shop": group.sessions["shop"].state_json()}
    return Task.create(**fields)


def shop_tasks() -> list[Task]:
    """Three tasks: order and pay (an id produced by the chain), a wallet top-up, a read-only look-up."""
    shop = load_env("shop")
    order = {"customer_id": "cus_0001", "items": [{"product_id": "HM-010", "quantity": 2}], "shipping_address": ADDRESS}
    return [
        _task(shop, [("shop__create_order", order, ["customer_id", "items"]),
                     ("shop__pay_order", {"id": "ord_00002"}, ["id"])], read_only=False),
        _task(shop, [("shop__top_up_wallet", {"id": "cus_0002", "amount": 15}, ["id", "amount"])], read_only=False),
        _task(shop, [("shop__get_product", {"sku": "BK-001"}, ["sku"])], read_only=True, facts=["45.5"]),
    ]


def write_task_stage(workspace: Workspace, run_id: str, tasks: list[Task]) -> StageDir:
    """A finished `synth-tasks` stage holding `tasks`."""
    stage = StageDir.open(workspace, run_id, "synth-tasks")
    stage.write_jsonl("tasks.jsonl", [t.model_dump(mode="json") for t in tasks])
    stage.finish(outputs=["tasks.jsonl"], seeds={"main": 0})
    return stage
