"""The pure converters: conversations, reasoning, OpenAI and LlamaFactory rows, RL rows."""

from __future__ import annotations

import json

import pytest
from tests.export.conftest import load_tasks, load_trajectories

from envfactory.export import (
    ExportRowError,
    TurnStates,
    conversation,
    llamafactory_row,
    openai_record,
    rl_rows,
    sft_row,
    split_reasoning,
    task_tools,
    verl_record,
)
from envfactory.export.formats import verl_schema_problem
from envfactory.runtime import load_env
from envfactory.spec import Message, ToolCall
from envfactory.spec.dataset import ExportConfig, RLEpisode, RLGroundTruth

TASKS = {t.id: t for t in load_tasks()}
TRAJECTORIES = {t.id: t for t in load_trajectories()}
ENVS = {name: load_env(name).spec for name in ("shop", "tracker")}


def _pair(name: str):  # type: ignore[no-untyped-def]
    trajectory = TRAJECTORIES[f"traj-{name}"]
    return TASKS[trajectory.task_id], trajectory


def test_split_reasoning_joins_blocks_and_treats_an_unclosed_tag_as_thought() -> None:
    assert split_reasoning("<think>a</think>Hi <think>b</think>there") == ("a\n\nb", "Hi there")
    assert split_reasoning("Answer <think>cut off") == ("cut off", "Answer")
    assert split_reasoning("plain") == ("", "plain")


@pytest.mark.parametrize("think", ["keep", "drop"])
def test_reasoning_is_kept_or_dropped_and_never_in_arguments(think: str) -> None:
    _, trajectory = _pair("shop-order-pay")
    messages = conversation(trajectory, "SYSTEM", think)  # type: ignore[arg-type]
    assistant = [m for m in messages if m.role == "assistant"]
    has_think = ["<think>" in m.content for m in assistant]
    assert all(has_think) if think == "keep" else not any(has_think)
    for message in assistant:
        for call in message.tool_calls or []:
            assert "<think>" not in call.function.arguments
            assert isinstance(json.loads(call.function.arguments), dict)


def test_reasoning_leaked_into_arguments_or_malformed_arguments_refuse_the_row() -> None:
    _, trajectory = _pair("shop-topup")
    leaked = ToolCall(id="c1", tool="shop__top_up_wallet", arguments={"id": "<think>hmm</think>cus_0002", "amount": 1})
    bad = trajectory.model_copy(update={"messages": [*trajectory.messages[:1],
                                                     Message(role="assistant", tool_calls=[leaked])]})
    with pytest.raises(ExportRowError) as caught:
        conversation(bad, "S", "keep")
    assert caught.value.reason == "reasoning_in_arguments"
    raw = ToolCall(id="c1", tool="shop__top_up_wallet", raw_arguments="{not json")
    bad = trajectory.model_copy(update={"messages": [Message(role="assistant", tool_calls=[raw])]})
    with pytest.raises(ExportRowError) as caught:
        conversation(bad, "S", "keep")
    assert caught.value.reason == "malformed_arguments"


def test_openai_record_holds_every_call_with_json_text_arguments_and_results_answer_calls() -> None:
    task, trajectory = _pair("shop-parallel")
    record = openai_record(sft_row(task, trajectory, "train", ENVS, ExportConfig()))
    assert set(record) == {"messages", "tools"}
    messages = record["messages"]
    assert messages[0]["role"] == "system"  # type: ignore[index]
    calls = [c for m in messages for c in m.get("tool_calls", [])]  # type: ignore[union-attr]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (call.tool, call.arguments) for call in trajectory.tool_calls()
    ]
    assert len([m for m in messages if m.get("tool_calls")]) == 1  # type: ignore[union-attr]  # one parallel message
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]  # type: ignore[index]
    assert answered == [c["id"] for c in calls]
    names = {t["function"]["name"] for t in record["tools"]}  # type: ignore[index, union-attr]
    assert "shop__get_customer" in names and len(names) == len(ENVS["shop"].tools)


def test_llamafactory_row_alternates_and_merges_parallel_calls_and_results() -> None:
    task, trajectory = _pair("shop-parallel")
    result = llamafactory_row(sft_row(task, trajectory, "train", ENVS, ExportConfig()))
    roles = [turn.from_ for turn in result.row.conversations]
    assert roles == ["human", "function_call", "observation", "gpt"]
    calls = json.loads(result.row.conversations[1].value)
    assert [c["name"] for c in calls] == ["shop__get_customer", "shop__get_product"]
    assert len(result.row.conversations[2].value.splitlines()) == 2
    assert isinstance(json.loads(result.row.tools), list)


def test_llamafactory_keeps_reasoning_before_the_call_when_asked() -> None:
    task, trajectory = _pair("shop-order-pay")
    row = llamafactory_row(sft_row(task, trajectory, "train", ENVS, ExportConfig(think="keep"))).row
    value = row.conversations[1].value
    assert value.startswith("<think>") and json.loads(value.split("</think>")[1])["name"] == "shop__create_order"


def test_a_conversation_opening_with_the_assistant_is_refused_for_llamafactory() -> None:
    task, trajectory = _pair("tracker-conversation")
    with pytest.raises(ExportRowError) as caught:
        llamafactory_row(sft_row(task, trajectory, "train", ENVS, ExportConfig()))
    assert caught.value.reason == "breaks_alternation"


def test_rl_rows_one_per_turn_carry_the_state_at_the_start_of_their_turn() -> None:
    task, trajectory = _pair("shop-two-turns")
    initial = task.initial_state["shop"]
    after = json.loads(json.dumps(initial))
    after["collections"]["products"]["BK-002"]["stock"] += 5
    states = TurnStates(start_states=[{"shop": initial}, {"shop": after}], start_hashes=["h0", "h1"],
                        end_env_hashes=[{"shop": "e0"}, {"shop": "e1"}])
    rows = rl_rows(task, trajectory, states, "train", ENVS, ExportConfig())
    assert [r.meta.turn for r in rows] == [0, 1]
    episodes = [RLEpisode.model_validate_json(r.episode) for r in rows]
    assert episodes[1].state["shop"]["collections"]["products"]["BK-002"]["stock"] == 6  # type: ignore[index, call-overload]
    assert [e.state_hash for e in episodes] == ["h0", "h1"]
    truths = [RLGroundTruth.model_validate_json(r.ground_truth) for r in rows]
    assert [c["tool"] for c in truths[0].gold_calls] == ["shop__restock_product"]
    assert truths[1].final_turn and truths[1].expected_state_hashes == {"shop": "e1"}
    assert [m.role for m in rows[0].prompt] == ["system", "user"]
    assert rows[1].prompt[-1].content == "How many copies of it are in stock now?"
    assert any(m.tool_calls for m in rows[1].prompt)  # the first turn's call is history


def test_verl_record_offers_the_turn_tools_and_gives_each_its_create_kwargs() -> None:
    task, trajectory = _pair("shop-topup")
    states = TurnStates([dict(task.initial_state)], ["h"], [{"shop": "e"}])
    row = rl_rows(task, trajectory, states, "train", ENVS, ExportConfig())[0]
    record = verl_record(row, 3)
    extra = record["extra_info"]
    assert record["agent_name"] == "tool_agent" and record["reward_model"]["style"] == "rule"  # type: ignore[index]
    assert extra["index"] == 3 and extra["need_tools_kwargs"] is True  # type: ignore[index]
    assert sorted(extra["tool_selection"]) == sorted(t["function"]["name"] for t in task_tools(task, ENVS))  # type: ignore[index]
    for name in extra["tool_selection"]:  # type: ignore[index, union-attr]
        RLEpisode.model_validate_json(extra["tools_kwargs"][name]["create_kwargs"]["episode"])  # type: ignore[index]


def test_turn_tool_lists_and_user_only_tools_are_respected() -> None:
    task, _ = _pair("shop-topup")
    turn = task.turns[0].model_copy(update={"available_tools": ["shop__top_up_wallet", "shop__get_customer"]})
    narrowed = task.model_copy(update={"turns": [turn], "user_tools": ["shop__get_customer"]})
    assert [t["function"]["name"] for t in task_tools(narrowed, ENVS, 0)] == ["shop__top_up_wallet"]  # type: ignore[index]


def test_verl_schema_problem_names_parameters_verl_cannot_load() -> None:
    good = {"type": "function", "function": {"name": "t", "description": "d", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}, "b": {"type": ["integer", "null"]}}}}}
    assert verl_schema_problem(good) is None
    untyped = json.loads(json.dumps(good))
    untyped["function"]["parameters"]["properties"]["custom"] = {"description": "any JSON"}
    assert verl_schema_problem(untyped) == "parameter 'custom' has no type"


def test_rows_offering_a_tool_verl_cannot_load_are_dropped_from_verl_only() -> None:
    from envfactory.cli._export_stage import replay
    from envfactory.export import ExportInputs, build_export

    task, trajectory = _pair("shop-topup")
    shop = ENVS["shop"]
    tools = [t.model_copy(update={"input_schema": {**t.input_schema, "properties": {
        **t.input_schema["properties"], "note": {"description": "free JSON"}}}}) if t.name == "get_customer" else t
        for t in shop.tools]  # type: ignore[dict-item]
    envs = {"shop": shop.model_copy(update={"tools": tools})}
    states = replay(task, trajectory, {"shop": load_env("shop")})
    assert isinstance(states, TurnStates)
    result = build_export(ExportInputs(tasks=[task], trajectories=[trajectory], envs=envs,
                                       turn_states={trajectory.id: states}), ExportConfig())
    drops = [d for d in result.manifest.drops if d.reason == "verl_unrepresentable_tool"]
    assert len(drops) == 1 and "shop__get_customer: parameter 'note' has no type" in drops[0].detail
    assert not any(p.startswith("verl/") and p.endswith(".parquet") for p in result.files)
    assert any(p.startswith("trl/") for p in result.files)
