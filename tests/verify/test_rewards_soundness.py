"""Reward soundness (issue #17): failed writes cost, extra writes cost without a floor, malformed calls
cannot be diluted, read-only tasks score their answer, a restored state earns nothing. On the bundled
shop environment, episodes run in the runtime."""

from __future__ import annotations

from typing import Any

import pytest

from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.spec import EnvRef, GoldCall, Message, RewardSpec, ScriptedUser, Task, Turn
from envfactory.verify import task_reward

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ORDER = {"customer_id": "cus_0001", "items": [{"product_id": "HM-010", "quantity": 2}], "shipping_address": ADDRESS}
GOLD = [("shop__create_order", ORDER), ("shop__pay_order", {"id": "ord_00002"}),
        ("shop__top_up_wallet", {"id": "cus_0002", "amount": 15})]
LOOKUP = ("shop__get_customer", {"id": "cus_0002"})


@pytest.fixture(scope="module")
def shop() -> Environment:
    return load_env("shop")


def run(shop: Environment, calls: list[tuple[str, Any]]) -> SessionGroup:
    group = open_group([shop], seed=1)
    for tool, args in calls:
        group.call(tool, args)
    return group


def ref(shop: Environment) -> EnvRef:
    return EnvRef(name="shop", version=shop.spec.version, content_hash=shop.spec.content_hash)


@pytest.fixture(scope="module")
def task(shop: Environment) -> Task:
    return Task.create(
        envs=[ref(shop)], initial_state={"shop": shop.default_state()}, seed=1,
        turns=[Turn(user=ScriptedUser(text="Order two mugs for Ada and pay; add 15 to Grace's wallet."),
                    gold_calls=[GoldCall(tool=t, arguments=a) for t, a in GOLD])],
        expected_final_state={"shop": run(shop, GOLD).sessions["shop"].state_json()},
    )


@pytest.fixture(scope="module")
def lookup_task(shop: Environment) -> Task:
    name = run(shop, [LOOKUP]).log[0][1].output["name"]  # type: ignore[index]
    return Task.create(
        envs=[ref(shop)], initial_state={"shop": shop.default_state()}, seed=1,
        reward=RewardSpec(final_state="not_scored"),
        turns=[Turn(user=ScriptedUser(text="What is the name of customer cus_0002?"),
                    gold_calls=[GoldCall(tool=LOOKUP[0], arguments=LOOKUP[1])], expected_outputs=[name])],
    )


def total(task: Task, group: SessionGroup, **kw: Any) -> float:
    return task_reward(task, group, **kw).total


def said(text: str) -> list[Message]:
    return [Message(role="user", content="Who is it?"), Message(role="assistant", content=text)]


def test_gold_still_scores_one(shop: Environment, task: Task) -> None:
    assert total(task, run(shop, GOLD)) == pytest.approx(1.0)


def test_a_policy_that_guesses_scores_below_one_that_looks_first(shop: Environment, task: Task) -> None:
    looks = run(shop, [GOLD[0], ("shop__list_orders", {"customer_id": "cus_0001"}), *GOLD[1:]])
    guesses = run(shop, [GOLD[0], ("shop__pay_order", {"id": "ord_00003"}), *GOLD[1:]])
    assert total(task, looks) == pytest.approx(1.0)
    assert total(task, guesses) < total(task, looks)
    assert task_reward(task, guesses).component("failed_writes").score == pytest.approx(0.8)  # type: ignore[union-attr]


@pytest.mark.parametrize(("failures", "at_most"), [(1, 0.8), (3, 0.52), (50, 1e-4)])
def test_every_failing_write_counts(shop: Environment, task: Task, failures: int, at_most: float) -> None:
    failing = [("shop__pay_order", {"id": f"ord_9{i:04d}"}) for i in range(failures)]
    assert total(task, run(shop, [*GOLD, *failing])) <= at_most


def test_failed_reads_are_free(shop: Environment, task: Task) -> None:
    misses = [("shop__get_order", {"id": f"ord_9{i:04d}"}) for i in range(5)]
    assert total(task, run(shop, [*misses, *GOLD])) == pytest.approx(1.0)


def test_the_extra_write_penalty_grows_without_a_floor(shop: Environment, task: Task) -> None:
    def extra(n: int) -> float:
        writes = [("shop__restock_product", {"sku": "BK-002", "quantity": 1})] * n
        return task_reward(task, run(shop, [*GOLD, *writes])).component("extra_writes").score  # type: ignore[union-attr, return-value]

    scores = [extra(n) for n in (1, 3, 10, 50)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert scores[0] == pytest.approx(0.7) and scores[-1] < 1e-6


def test_malformed_calls_cannot_be_diluted_with_reads(shop: Environment, task: Task) -> None:
    junk = [("shop__pay_order", "{oops"), ("shop__nope", {})]
    plain = total(task, run(shop, [*junk, *GOLD]))
    diluted = total(task, run(shop, [*junk, *[LOOKUP] * 40, *GOLD]))
    assert plain == pytest.approx(diluted) == pytest.approx(0.64)


def test_a_read_only_task_scores_its_answer(shop: Environment, lookup_task: Task) -> None:
    name = lookup_task.turns[0].expected_outputs[0]
    assert total(lookup_task, run(shop, [])) == 0.0
    assert total(lookup_task, run(shop, [])) == total(lookup_task, run(shop, []), messages=said("Done."))
    assert total(lookup_task, run(shop, [LOOKUP] * 30)) == 0.0, "reading alone never scores"
    assert total(lookup_task, run(shop, [LOOKUP]), messages=said("I could not find it.")) == 0.0
    assert total(lookup_task, run(shop, [LOOKUP]), messages=said(f"The customer is {name}.")) == pytest.approx(1.0)
    reward = task_reward(lookup_task, run(shop, []), messages=said(f"The customer is {name}."))
    assert 0.0 < reward.total < 1.0, "stating the fact without reading it misses the gold read"


def test_stuffing_the_answer_with_the_state_does_not_pay(shop: Environment, lookup_task: Task) -> None:
    names = [c["name"] for c in shop.default_state()["collections"]["customers"].values()]  # type: ignore[index]
    emails = [c["email"] for c in shop.default_state()["collections"]["customers"].values()]  # type: ignore[index]
    group = run(shop, [LOOKUP])
    hedged = total(lookup_task, group, messages=said("It is one of " + ", ".join(names)))
    dumped = total(lookup_task, group, messages=said(" ".join(names + emails + ["HM-010", "BK-002", "ord_00001"])))
    assert hedged <= 0.5 and dumped <= 0.5
    assert total(lookup_task, group, messages=said(f"cus_0002 is {lookup_task.turns[0].expected_outputs[0]}.")) == 1.0


def test_a_restored_state_scores_as_if_no_calls_were_made(shop: Environment, task: Task) -> None:
    gold_state = run(shop, GOLD).snapshot()
    restored = run(shop, [])
    restored.restore(gold_state)
    assert total(task, restored, restart=gold_state) == 0.0
    # restoring the task's start and then solving it is an ordinary episode
    start = run(shop, []).snapshot()
    again = run(shop, [])
    again.restore(start)
    for tool, args in GOLD:
        again.call(tool, args)
    assert total(task, again, restart=start) == pytest.approx(1.0)


def test_work_before_a_restore_is_not_credited_but_still_counts(shop: Environment, task: Task) -> None:
    group = run(shop, [*GOLD, ("shop__pay_order", {"id": "ord_09999"})])
    snapshot = group.snapshot()
    group.restore(snapshot)
    reward = task_reward(task, group, restart=snapshot)
    assert reward.total == 0.0 and reward.component("failed_writes").score == pytest.approx(0.8)  # type: ignore[union-attr]


def test_restating_what_the_gold_read_returned_is_not_stuffing(shop: Environment, lookup_task: Task) -> None:
    import json

    group = run(shop, [LOOKUP])
    record = group.log[0][1].output
    assert total(lookup_task, group, messages=said(json.dumps(record))) == pytest.approx(1.0)
    everyone = shop.default_state()["collections"]["customers"]  # type: ignore[index]
    assert total(lookup_task, group, messages=said(json.dumps(everyone))) <= 0.5
