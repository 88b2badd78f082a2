"""The deterministic parts of trajectory synthesis: over-specification, query validation, operator
choice, turn splitting, selection and the funnel's interval. No model is involved."""

from __future__ import annotations

import random

import pytest
from traj_fixtures import shop_tasks

from envfactory.llm.scripted import ScriptedClient
from envfactory.spec import Reward, RewardComponent, Task, ToolSpec
from envfactory.spec.synth_trajectories import REFINE_OPERATORS, SolverAttempt, SynthTrajectoriesConfig
from envfactory.synth.overspec import env_produced_values, score_overspecification, unknowable_values
from envfactory.synth.queries import QueryFailure, choose_operators, query_problems, write_query
from envfactory.synth.solve import select, split_turns
from envfactory.synth.trajectory_funnel import wilson_interval


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return shop_tasks()


def test_the_id_a_chain_produces_is_env_only_and_unknowable(tasks: list[Task]) -> None:
    order_and_pay = tasks[0]
    assert "ord_00002" in env_produced_values(order_and_pay)
    assert {"cus_0001", "HM-010", "ord_00002"} <= unknowable_values(order_and_pay)
    assert "Springfield" not in unknowable_values(order_and_pay)  # a user knows their city


def test_overspecification_counts_tool_and_parameter_names_and_ids(tasks: list[Task]) -> None:
    task = tasks[0]
    leaky = score_overspecification(
        "Call create_order with customer_id=cus_0001, product_id HM-010 x2, then pay_order ord_00002.", task)
    natural = score_overspecification("Please order two of those mugs for me and pay with my wallet.", task)
    assert leaky.tool_names == ["create_order", "pay_order"]
    assert "customer_id" in leaky.parameter_names and "product_id" in leaky.parameter_names
    assert {"cus_0001", "HM-010", "ord_00002"} <= set(leaky.values)
    assert leaky.score > 0.5 and natural.score == 0.0
    assert leaky.candidates == natural.candidates > 0
    # a one-word parameter name is ordinary English unless written as an assignment
    assert "id" not in score_overspecification("my id please", task).parameter_names
    assert "id" in score_overspecification("id: cus_0001", task).parameter_names


def test_query_problems_refuse_tool_names_env_ids_refusals_and_missing_values(tasks: list[Task]) -> None:
    task = tasks[0]
    assert query_problems("Use create_order for me", task) == ["it names tools: create_order"]
    assert "only the service" in query_problems("Pay order ord_00002", task)[0]
    assert "refusal" in query_problems("I'm sorry, as an AI I cannot do that", task)[0]
    assert "leaves out" in query_problems("Order mugs", task, required_values=["cus_0001"])[0]
    assert query_problems("Order two HM-010 mugs for customer cus_0001 and pay.", task,
                          required_values=["cus_0001", "HM-010"]) == []
    assert query_problems("  ", task) == ["the query is empty"]


def test_write_query_retries_with_feedback_then_drops_with_an_id_free_reason(tasks: list[Task]) -> None:
    task = tasks[1]  # top up cus_0002 by 15
    tools: dict[str, ToolSpec] = {}
    good = '{"persona": "Grace, a regular customer.", "steps": ["Please add 15 to the wallet of customer cus_0002"]}'
    client = ScriptedClient(["not json", good])
    written = write_query(client, task, task.gold_calls(), tools, seed=3, attempts=2)
    assert written.query == "Please add 15 to the wallet of customer cus_0002." and written.problems
    assert written.completed == ()
    assert "That does not work" in client.requests[1].messages[-1].content
    assert all(r.seed in (3, 4) for r in client.requests)
    leaky = '{"persona": "p", "steps": ["Run top_up_wallet for cus_0002 with 15."]}'
    with pytest.raises(QueryFailure) as failure:
        write_query(ScriptedClient([leaky, leaky]), task, task.gold_calls(), tools, seed=3, attempts=2)
    assert failure.value.reason == "tool_names"


def test_the_writer_answers_one_sentence_per_gold_call_and_the_query_joins_them(tasks: list[Task]) -> None:
    task = tasks[0]  # create an order for cus_0001 with HM-010, then pay the order the first call made
    answer = '{"persona": "p", "steps": ["Order 2 HM-010 mugs for customer cus_0001", "Then pay for it!"]}'
    client = ScriptedClient([answer])
    written = write_query(client, task, task.gold_calls(), {}, seed=0, attempts=1)
    assert written.query == "Order 2 HM-010 mugs for customer cus_0001. Then pay for it!" and not written.completed
    schema = client.requests[0].response_format.json_schema  # type: ignore[union-attr]
    assert schema["properties"]["steps"]["minItems"] == schema["properties"]["steps"]["maxItems"] == 2
    one_step = '{"persona": "p", "steps": ["Order 2 HM-010 mugs for customer cus_0001 and pay."]}'
    with pytest.raises(QueryFailure, match="2 sentences"):
        write_query(ScriptedClient([one_step]), task, task.gold_calls(), {}, seed=0, attempts=1)


def test_values_the_writer_keeps_leaving_out_are_stated_by_a_template_sentence(tasks: list[Task]) -> None:
    task = tasks[1]  # top up cus_0002 by 15
    vague = '{"persona": "Grace.", "steps": ["Please top up my wallet by 15"]}'
    client = ScriptedClient([vague, vague])
    written = write_query(client, task, task.gold_calls(), {}, seed=0, attempts=2)
    assert written.query == "Please top up my wallet by 15. The id is cus_0002."
    assert written.completed == ("cus_0002",) and "sentence 1 should state cus_0002" in written.problems
    assert len(client.requests) == 2  # every attempt was used before the template stepped in
    # a problem other than missing values is never papered over
    named = '{"persona": "Grace.", "steps": ["Call top_up_wallet by 15"]}'
    with pytest.raises(QueryFailure):
        write_query(ScriptedClient([named]), task, task.gold_calls(), {}, seed=0, attempts=1)


def test_operator_choice_is_seeded_and_strength_is_their_number() -> None:
    chosen = [choose_operators(7, f"task{i}") for i in range(40)]
    assert chosen == [choose_operators(7, f"task{i}") for i in range(40)]
    assert {len(c) for c in chosen} == {1, 2, 3, 4}
    assert all(set(c) <= set(REFINE_OPERATORS) and len(set(c)) == len(c) for c in chosen)


def test_turn_split_keeps_order_and_caps_turn_length(tasks: list[Task]) -> None:
    calls = tasks[0].gold_calls() * 6
    for seed in range(20):
        turns = split_turns(calls, 5, random.Random(seed))
        assert [c for turn in turns for c in turn] == calls
        assert all(1 <= len(turn) <= 5 for turn in turns)
    assert len({len(split_turns(calls, 5, random.Random(s))) for s in range(20)}) > 1


def _attempt(index: int, total: float, verified: bool) -> SolverAttempt:
    reward = Reward.combine([RewardComponent(name="final_state", score=total)])
    return SolverAttempt(attempt=index, seed=index, query="refined", reward=reward, verified=verified)


def test_selection_is_by_verification_then_reward_then_order() -> None:
    assert select([_attempt(0, 0.9, False), _attempt(1, 1.0, True), _attempt(2, 1.0, True)]) == 1
    assert select([_attempt(0, 0.99, False)]) is None
    assert select([]) is None


def test_config_refuses_k_above_one_at_temperature_zero() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SynthTrajectoriesConfig(from_run="r", k=2)
    assert SynthTrajectoriesConfig(from_run="r", k=2, temperature=0.7).k == 2
    assert SynthTrajectoriesConfig(from_run="r", preset="rl").refines is False


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high and (low, high) == (0.2366, 0.7634)
    assert wilson_interval(0, 0) == (0.0, 0.0)


def test_a_read_only_query_may_not_state_the_answer_and_the_writer_never_sees_it(tasks: list[Task]) -> None:
    lookup = tasks[2]  # the price of BK-001 is the fact asked for: 45.5
    assert "states the answer" in query_problems("What does BK-001 cost? I think 45.5.", lookup)[0]
    assert query_problems("What does BK-001 cost?", lookup) == []
    assert query_problems("Is 145.50 the price of BK-001?", lookup) == []  # only the whole value counts
    client = ScriptedClient(['{"persona": "p", "steps": ["Is BK-001 still 45.5?"]}'] * 2)
    with pytest.raises(QueryFailure) as failure:
        write_query(client, lookup, lookup.gold_calls(), {}, seed=0, attempts=2)
    assert failure.value.reason == "states_answer"
    assert all("45.5" not in m.content for m in client.requests[0].messages)
