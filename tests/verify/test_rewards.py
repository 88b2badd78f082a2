"""Rewards on the bundled `shop` environment: gold scores 1, no-op scores 0, corruptions lower it."""

from __future__ import annotations

from typing import Any

import pytest

from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.spec import (
    CallMadeCheck,
    EnvRef,
    GoldCall,
    Message,
    OutputContainsCheck,
    ScriptedUser,
    StateEqualsCheck,
    Task,
    Turn,
)
from envfactory.verify import RewardConfig, task_reward, volatile_fields

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ORDER = {"customer_id": "cus_0001", "items": [{"product_id": "HM-010", "quantity": 2}], "shipping_address": ADDRESS}
GOLD = [
    GoldCall(tool="shop__create_order", arguments=ORDER),
    GoldCall(tool="shop__pay_order", arguments={"id": "ord_00002"}),
    GoldCall(tool="shop__top_up_wallet", arguments={"id": "cus_0002", "amount": 15}),
]


@pytest.fixture(scope="module")
def shop() -> Environment:
    return load_env("shop")


def run(shop: Environment, calls: list[tuple[str, Any]]) -> SessionGroup:
    group = open_group([shop], seed=1)
    for tool, args in calls:
        group.call(tool, args)
    return group


@pytest.fixture(scope="module")
def task(shop: Environment) -> Task:
    gold = run(shop, [(g.tool, g.arguments) for g in GOLD])
    assert all(r.ok for _, r in gold.log)
    return Task.create(
        envs=[EnvRef(name="shop", version=shop.spec.version, content_hash=shop.spec.content_hash)],
        initial_state={"shop": shop.default_state()},
        seed=1,
        turns=[Turn(user=ScriptedUser(text="Order two mugs for Ada and pay; add 15 to Grace's wallet."),
                    gold_calls=GOLD)],
        expected_final_state={"shop": gold.sessions["shop"].state_json()},
        checks=[
            StateEqualsCheck(env="shop", pointer="/collections/orders/ord_00002/status", expected="paid"),
            CallMadeCheck(tool="shop__pay_order", arguments={"id": "ord_00002"}),
        ],
    )


def total(task: Task, group: SessionGroup, **kw: Any) -> float:
    return task_reward(task, group, **kw).total


def test_gold_replay_scores_one(shop: Environment, task: Task) -> None:
    reward = task_reward(task, run(shop, [(g.tool, g.arguments) for g in GOLD]))
    assert reward.total == pytest.approx(1.0)
    assert {c.name: c.score for c in reward.components} == {
        "final_state": 1.0, "gold_calls": 1.0, "checks": 1.0, "answer_facts": None, "malformed_calls": 1.0,
        "failed_writes": 1.0, "extra_writes": 1.0, "changed_state": 1.0, "answered": None,
    }


def test_no_op_scores_zero_even_when_some_check_would_pass(shop: Environment, task: Task) -> None:
    lenient = task.model_copy(update={"checks": [StateEqualsCheck(env="shop", pointer="/collections/customers/cus_0001/active", expected=True)], "id": ""})
    assert total(lenient, run(shop, [])) == 0.0
    assert total(task, run(shop, [("shop__get_customer", {"id": "cus_0001"})])) == 0.0


@pytest.mark.parametrize("dropped", range(len(GOLD)))
def test_dropping_any_gold_write_lowers_the_reward(shop: Environment, task: Task, dropped: int) -> None:
    calls = [(g.tool, g.arguments) for i, g in enumerate(GOLD) if i != dropped]
    assert total(task, run(shop, calls)) < 0.9


def test_altering_an_argument_lowers_the_reward(shop: Environment, task: Task) -> None:
    altered = [(g.tool, g.arguments) for g in GOLD]
    altered[2] = ("shop__top_up_wallet", {"id": "cus_0002", "amount": 16})
    assert total(task, run(shop, altered)) < 0.9


def test_extra_writes_and_malformed_calls_are_penalised(shop: Environment, task: Task) -> None:
    gold_calls = [(g.tool, g.arguments) for g in GOLD]
    extra = total(task, run(shop, [*gold_calls, ("shop__restock_product", {"sku": "BK-002", "quantity": 1})]))
    malformed = total(task, run(shop, [("shop__pay_order", "{oops"), ("shop__nope", {}), *gold_calls]))
    reads = total(task, run(shop, [("shop__get_customer", {"id": "cus_0001"}), *gold_calls]))
    assert extra < 1.0 and malformed < 1.0
    assert reads == pytest.approx(1.0), "reads are free"


def test_timestamps_stamped_by_the_clock_do_not_count(shop: Environment, task: Task) -> None:
    assert volatile_fields(shop) == {"created_at", "updated_at"}
    # Reordering independent writes changes every clock stamp but not what was done.
    reordered = [(GOLD[2].tool, GOLD[2].arguments), (GOLD[0].tool, GOLD[0].arguments), (GOLD[1].tool, GOLD[1].arguments)]
    reward = task_reward(task, run(shop, reordered))
    assert reward.component("final_state").score == 1.0  # type: ignore[union-attr]
    strict = task_reward(task, run(shop, reordered), config=RewardConfig(volatile={"shop": frozenset()}))
    assert strict.component("final_state").score < 1.0  # type: ignore[union-attr]


def test_output_checks_need_messages(shop: Environment, task: Task) -> None:
    said = task.model_copy(update={"checks": [OutputContainsCheck(text="order ord_00002 is paid")], "id": ""})
    group = run(shop, [(g.tool, g.arguments) for g in GOLD])
    assert task_reward(said, group).component("checks").score is None  # type: ignore[union-attr]
    told = [Message(role="assistant", content="Done: Order ORD_00002 is paid.")]
    assert task_reward(said, group, messages=told).component("checks").score == 1.0  # type: ignore[union-attr]


def test_naming_must_agree(shop: Environment, task: Task) -> None:
    with pytest.raises(ValueError, match="names tools"):
        task_reward(task, open_group([shop], naming="plain"))
