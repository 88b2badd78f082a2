"""τ² telecom through our runtime (issue 18): initial states applied before the episode, the user's own
tools (offered to the user simulator only; the agent's call of one is `unknown_tool`), environment
assertions and user actions evaluated, tau2's error wording, and agreement with tau2's evaluators."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("tau2.domains.telecom.environment")
pytest.importorskip("tau2.evaluator.evaluator_env")

from envfactory.agent import AgentSettings, UserSimulator, run_episode
from envfactory.eval import tau2, tau2_agreement
from envfactory.eval.run import EvalConfig, SuiteSelection, select_tasks
from envfactory.llm import ChatMessage, ChatResponse, ScriptedClient
from envfactory.runtime import Environment, open_group, open_session
from envfactory.spec import ToolCall

AIRPLANE = "[mobile_data_issue]airplane_mode_on|user_abroad_roaming_enabled_off[PERSONA:None]"


@pytest.fixture(scope="module")
def env() -> Environment:
    return tau2.tau2_environment("telecom")


@pytest.fixture(scope="module")
def cases() -> list[tau2.Tau2Case]:
    return tau2.load_cases("telecom")


def _case(cases: list[tau2.Tau2Case], source_id: str) -> tau2.Tau2Case:
    return next(c for c in cases if c.source.id == source_id)


def test_telecom_imports_with_user_tools_initial_states_and_assertions(env: Environment, cases: Any) -> None:
    assert len(cases) == 114
    backend = env.backend
    assert isinstance(backend, tau2.Tau2Backend)
    assert {"toggle_airplane_mode", "run_speed_test", "make_payment"} <= backend.user_tools
    assert not backend.user_tools & {"get_customer_by_phone", "refuel_data"}
    for case in cases:
        assert set(case.task.user_tools) == backend.user_tools
        assert tau2.INIT_KEY in case.task.initial_state["tau2_telecom"]
        assert case.reward_basis in ({"ENV_ASSERTION"}, {"ENV_ASSERTION", "ACTION"})
        assert case.assertions, case.source.id
        # the agent's gold calls are its own actions only; the user's travel in the case with their requestor
        agent = [a for a in case.actions if a.requestor == "assistant"]
        assert [c.tool for c in case.task.turns[0].gold_calls] == [a.tool for a in agent]
    assert sum(any(a.requestor == "user" for a in c.actions) for c in cases) == 94


def test_the_initial_state_is_applied_before_the_episode(env: Environment, cases: Any) -> None:
    case = _case(cases, AIRPLANE)
    with open_session(env, case.task.initial_state["tau2_telecom"]) as session, open_session(env) as shipped:
        assert session.hash() != shipped.hash()
        user = session.state_json()["user"]
        assert user["device"]["airplane_mode"] is True and user["surroundings"]["is_abroad"] is True
        assert "Airplane Mode" in str(session.call("check_status_bar", {}).output)
        fork = session.fork()
        assert str(session.call("toggle_airplane_mode", {}).output).startswith("Airplane Mode is now OFF.")
        assert "Airplane Mode" in str(fork.call("check_status_bar", {}).output)  # forks are independent
        fork.close()


def test_errors_are_tau2_text(env: Environment, cases: Any) -> None:
    with open_session(env) as session:
        missing = session.call("get_customer_by_phone", {})
        assert missing.error is not None and missing.error.kind == "invalid_arguments"
        assert missing.error.message == ("Error: TelecomTools.get_customer_by_phone() missing 1 required "
                                         "positional argument: 'phone_number'")
        extra = session.call("get_customer_by_phone", {"phone_number": "555-123-2002", "x": 1})
        assert extra.error is not None and "unexpected keyword argument 'x'" in extra.error.message
    case = _case(cases, AIRPLANE)
    # the agent making the user's action: tau2's assistant toolkit does not know the tool, nor does ours
    steps = [tau2.Step(tool="toggle_airplane_mode")]
    assert tau2.replay(case, env, steps).outputs == ["Error: Tool 'toggle_airplane_mode' not found."]
    assert tau2_agreement.official_reward(case, steps)["outputs"] == ["Error: Tool 'toggle_airplane_mode' not found."]


def test_environment_assertions_decide_the_reward(env: Environment, cases: Any) -> None:
    case = _case(cases, AIRPLANE)
    gold = tau2.gold_steps(case)
    assert [s.requestor for s in gold] == ["user", "user"]
    verdict = tau2.check(case, env, gold)
    assert verdict.reward == 1.0 and verdict.env_assertion
    reward = tau2.reward(verdict, case.reward_basis)
    assert reward.total == 1.0 and reward.component("tau2_env_assertion") is not None
    for partial in (gold[:1], gold[1:], []):
        failed = tau2.check(case, env, partial)
        assert failed.reward == 0.0 and not failed.env_assertion and failed.detail == "failed: ENV_ASSERTION"
        assert tau2_agreement.official_reward(case, partial)["reward"] == 0.0


def test_actions_of_both_sides_are_checked(env: Environment, cases: Any) -> None:
    # the user's actions count in the action check (outside this task's basis: reported, not scored)
    case = _case(cases, AIRPLANE)
    gold = tau2.gold_steps(case)
    assert not tau2.check(case, env, gold[:1]).action
    assert tau2_agreement.official_reward(case, gold[:1])["action"] == 0.0
    # an ACTION-basis task fails without one of its agent actions, as in tau2
    scored = next(c for c in cases if "ACTION" in c.reward_basis)
    steps = tau2.gold_steps(scored)
    assert tau2.check(scored, env, steps).reward == 1.0
    agent_step = next(i for i, s in enumerate(steps) if s.is_call and s.requestor == "assistant")
    without = steps[:agent_step] + steps[agent_step + 1:]
    verdict = tau2.check(scored, env, without)
    assert not verdict.action and verdict.reward == 0.0
    assert tau2_agreement.official_reward(scored, without)["reward"] == 0.0


def test_official_evaluators_agree_on_telecom_gold_and_corruptions(env: Environment, cases: Any) -> None:
    sample = cases[::4]  # 29 tasks here; the full table (all 114) is in docs/eval.md
    table = tau2_agreement.agreement(sample, env)
    assert table["gold"].ours_pass == table["gold"].cases == len(sample)
    for kind, row in table.items():
        assert row.agree == row.cases, (kind, row.disagreements)
        assert row.agree_outputs == row.cases, (kind, row.output_mismatches)
        # tau2's own DB check (outside every telecom basis) replays gold actions without `sync_tools`
        assert set(row.component_mismatches) <= {"db"}, kind
    assert table["drop_user_call"].cases > 0 and table["swap_requestor"].cases > 0


# -- the user's tools in the agent loop ---------------------------------------------------------------
def _call(tool: str, arguments: dict[str, object] | None = None) -> ChatResponse:
    message = ChatMessage.assistant("", [ToolCall(id="call_x", tool=tool, arguments=arguments or {})])
    return ChatResponse(model="scripted", message=message, finish_reason="tool_calls")


def test_user_tools_go_to_the_simulator_only_and_are_scored_with_their_requestor(env: Environment,
                                                                                 cases: Any) -> None:
    case = _case(cases, AIRPLANE)
    task = case.task
    agent = ScriptedClient([
        _call("toggle_airplane_mode"),  # native mode: the agent tries the user's tool
        "Please turn airplane mode off, and roaming on, then run a speed test.",
        "Glad it works now.",
    ])
    user = ScriptedClient([
        "My mobile data does not work.",
        _call("toggle_airplane_mode"), _call("toggle_roaming"), _call("run_speed_test"),
        "Done, the speed test says excellent. ###STOP###",
    ], model_id="scripted-user")
    with open_group([env], task.initial_state, seed=task.seed, naming=task.tool_naming) as group:
        episode = run_episode(agent, group, task, AgentSettings(control="native", max_user_turns=3), seed=1,
                              user=UserSimulator(user))
    agent_tools = {t.name for t in agent.requests[0].tools}
    assert agent_tools and not agent_tools & set(task.user_tools)
    messages = episode.trajectory.messages
    refused = next(m.result for m in messages if m.role == "tool" and m.result and m.result.tool == "toggle_airplane_mode")
    assert refused is not None and refused.error is not None and refused.error.kind == "unknown_tool"
    user_calls = [c.tool for m in messages if m.role == "user" for c in m.tool_calls]
    assert user_calls == ["toggle_airplane_mode", "toggle_roaming", "run_speed_test"]
    speed = [m.result for m in messages if m.role == "tool" and m.result and m.result.tool == "run_speed_test"]
    assert speed and "Excellent" in str(speed[0].output)
    # the simulator was offered its own tools and saw its own results, never the agent's
    offered = {t.name for t in user.requests[1].tools}
    assert offered == set(task.user_tools)
    last = user.requests[-1].messages
    assert any(m.role == "tool" and "Excellent" in m.content for m in last)
    assert not any(m.role == "tool" and "not available" in m.content for m in last)
    # scoring takes the user's calls with requestor "user": the episode passes tau2's assertions
    steps = [tau2.Step(tool=c.tool, arguments=dict(c.arguments), requestor="user" if m.role == "user" else "assistant")
             for m in messages for c in m.tool_calls]
    assert tau2.check(case, env, steps).reward == 1.0
    assert tau2_agreement.official_reward(case, steps)["reward"] == 1.0
    assert json.loads(episode.model_dump_json())["trajectory"]["termination"] == "user_stop"


def test_eval_run_scores_the_users_calls_with_their_requestor(tmp_path: Any) -> None:
    config = EvalConfig(suites=[SuiteSelection(suite="tau2_telecom", count=None)], seed=0, model="x")
    items = select_tasks(config, sandbox=None, workdir=tmp_path)
    assert len(items) == 114
    item = next(i for i in items if i.task.origin.source_id == AIRPLANE)
    agent = ScriptedClient(["Please turn airplane mode off and roaming on."])
    user = ScriptedClient(["No mobile data.", _call("toggle_airplane_mode"), _call("toggle_roaming"),
                           "Done. ###STOP###"])
    task = item.task
    with open_group(item.envs, task.initial_state, seed=task.seed, naming=task.tool_naming) as group:
        episode = run_episode(agent, group, task, AgentSettings(control="native"), seed=0, user=UserSimulator(user))
        passed, reward, detail = item.score(task, episode, group)
    assert passed and reward.total == 1.0 and detail == ""
    # the same conversation without the user's roaming toggle fails tau2's assertions
    user = ScriptedClient(["No mobile data.", _call("toggle_airplane_mode"), "Done. ###STOP###"])
    agent = ScriptedClient(["Please turn airplane mode off."])
    with open_group(item.envs, task.initial_state, seed=task.seed, naming=task.tool_naming) as group:
        episode = run_episode(agent, group, task, AgentSettings(control="native"), seed=0, user=UserSimulator(user))
        passed, reward, detail = item.score(task, episode, group)
    assert not passed and detail == "failed: ENV_ASSERTION"
