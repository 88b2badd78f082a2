"""The person's own steps (issue 22, deliverable 3) with scripted models: a hand-made environment (the
bundled `shop` with `pay_order` marked as the account holder's in `meta.user_tools`) and the scripted
oracle of `traj_fixtures`, its user side extended to pay when the agent has done its part. In `sft-conv`
and `rl` the person's call leaves the agent's gold calls, the task marks the tool, the agent is never
offered it, the user simulator is told and makes the call, and the reward counts it through the state
and never as the agent's extra write; `sft-single` keeps the whole chain for the agent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from traj_fixtures import ADDRESS, OracleClient, _task, write_task_stage

from envfactory.agent import STOP_TOKEN
from envfactory.llm import ChatMessage, ChatRequest, ChatResponse
from envfactory.llm.scripted import text_response
from envfactory.runtime import Environment, load_env, open_group
from envfactory.runtime.loader import bundled_envs_root
from envfactory.spec import GoldCall, SimulatedUser, Task, ToolCall, Trajectory
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel, TrajectoryItem
from envfactory.store import Workspace
from envfactory.synth.person import PersonSplit, person_tools
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories
from envfactory.verify.rewards import task_reward

STAGE = Path("runs/ci/synth-trajectories")
ORDER = {"customer_id": "cus_0001", "items": [{"product_id": "HM-010", "quantity": 2}], "shipping_address": ADDRESS}
PAY = "shop__pay_order"


def _marked_shop(root: Path, tools: list[str]) -> Environment:
    """The bundled shop, its spec marking `tools` as the person's (a hand-made environment)."""
    directory = root / "shop"
    shutil.copytree(bundled_envs_root() / "shop", directory)
    document = json.loads((directory / "env.json").read_text(encoding="utf-8"))
    document["meta"]["user_tools"] = tools
    (directory / "env.json").write_text(json.dumps(document), encoding="utf-8")
    return load_env(directory)


def _order_and_pay(shop: Environment) -> Task:
    return _task(shop, [("shop__create_order", ORDER, ["customer_id", "items"]), (PAY, {"id": "ord_00002"}, ["id"])],
                 read_only=False)


class PersonOracle(OracleClient):
    """The oracle, solving only the agent's calls; as the user, it pays (its own tool) once the agent has
    answered, then stops. Every request is kept."""

    def __init__(self, tasks: list[Task]) -> None:
        agent_view = [t.model_copy(update={"turns": [turn.model_copy(update={"gold_calls": [
            c for c in turn.gold_calls if c.tool != PAY]}) for turn in t.turns]}) for t in tasks]
        super().__init__(agent_view)
        self.seen: list[ChatRequest] = []

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.seen.append(request)
        if request.messages[0].content.startswith("You are a customer") and request.tools:
            if any(m.role == "tool" for m in request.messages):
                return text_response(STOP_TOKEN)
            if any(m.role == "assistant" for m in request.messages):  # the agent answered: the person pays
                call = ToolCall(id="u0", tool=PAY, arguments={"id": "ord_00002"})
                return ChatResponse(model="oracle", finish_reason="tool_calls",
                                    message=ChatMessage.assistant(tool_calls=[call]))
        return super().chat(request)


def _run(root: Path, preset: str, shop: Environment, tasks: list[Task]) -> tuple[Path, PersonOracle]:
    workspace = Workspace(root)
    write_task_stage(workspace, "ci", tasks)
    oracle = PersonOracle(tasks)
    deps = TrajectoryDeps(writer=oracle, solver=oracle, load=lambda name: shop)  # type: ignore[arg-type]
    run_synth_trajectories(SynthTrajectoriesConfig(from_run="ci", preset=preset, seed=3), workspace, deps)
    return root / STAGE, oracle


def test_the_spec_marks_the_persons_tools_and_each_persons_call_joins_the_turn_of_the_agents_call_before_it(
        tmp_path: Path) -> None:
    shop = _marked_shop(tmp_path, ["pay_order"])
    assert person_tools(_order_and_pay(shop), [shop]) == {PAY}
    assert person_tools(_order_and_pay(shop), [load_env("shop")]) == frozenset()  # the bundled shop marks none
    a, b, c = (GoldCall(tool=f"shop__{n}") for n in ("create_order", "get_order", "cancel_order"))
    pay = GoldCall(tool=PAY)
    split = PersonSplit.of([pay, a, pay, b, c], frozenset({PAY}))
    assert split.agent == [a, b, c] and [before for before, _ in split.person] == [-1, 0]
    assert split.per_turn([[a], [b, c]]) == [[pay, pay], []]
    assert PersonSplit.of([a, b, pay], frozenset({PAY})).per_turn([[a], [b]]) == [[], [pay]]


@pytest.mark.parametrize("preset", ["sft-conv", "rl"])
def test_the_user_simulator_takes_the_persons_step_and_the_attempt_verifies(tmp_path: Path, preset: str) -> None:
    shop = _marked_shop(tmp_path, ["pay_order"])
    original = _order_and_pay(shop)
    stage, oracle = _run(tmp_path / "ws", preset, shop, [original])
    funnel = TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes())
    assert funnel.stages["verified"] == 1 and funnel.conversational == 1, funnel
    item = TrajectoryItem.model_validate_json(next((stage / "items").iterdir()).read_bytes())
    task = item.task
    assert task is not None and task.user_tools == [PAY]
    assert [c.tool for c in task.gold_calls()] == ["shop__create_order"]  # the agent's calls only
    turn = task.turns[0].user
    assert isinstance(turn, SimulatedUser) and "only you can do yourself" in turn.instructions
    assert "pay order" in turn.instructions and "ord_00002" not in turn.instructions  # produced: told by the agent
    assert task.expected_final_state == original.expected_final_state  # the person's payment is expected
    selected = item.attempts[item.selected or 0]
    trajectory = selected.trajectory
    assert trajectory is not None and selected.verified
    person_calls = [(m.role, c.tool) for m in trajectory.messages for c in m.tool_calls]
    assert person_calls == [("assistant", "shop__create_order"), ("user", PAY)]
    assert selected.reward is not None
    assert {c.name: c.score for c in selected.reward.components}["extra_writes"] == 1.0
    writing = ("query", "refined_query")
    agent_requests = [r for r in oracle.seen if not r.messages[0].content.startswith("You are a customer")
                      and not (r.response_format is not None and r.response_format.name in writing)]
    assert agent_requests  # the agent's catalogue (system text) and tools never hold the person's tool
    assert all(PAY not in r.messages[0].content and all(t.name != PAY for t in r.tools or []) for r in agent_requests)
    user_requests = [r for r in oracle.seen if r.messages[0].content.startswith("You are a customer")]
    assert any(t.name == PAY for r in user_requests for t in r.tools or [])
    kept = [Trajectory.model_validate_json(x) for x in (stage / "trajectories.jsonl").read_bytes().splitlines()]
    assert [t.id for t in kept] == [trajectory.id]


def test_the_persons_write_is_scored_by_the_state_never_as_the_agents_extra_write(tmp_path: Path) -> None:
    shop = _marked_shop(tmp_path, ["pay_order"])
    task = _order_and_pay(shop)
    as_solver_sees_it = Task.create(**{**task.model_dump(exclude={"id", "turns"}), "user_tools": [PAY], "turns": [
        task.turns[0].model_copy(update={"gold_calls": task.turns[0].gold_calls[:1]}).model_dump()]})
    group = open_group([shop], task.initial_state, seed=task.seed)
    group.call("shop__create_order", ORDER)
    group.call(PAY, {"id": "ord_00002"})  # the person's call (the loop runs it for the user simulator)
    assert task_reward(as_solver_sees_it, group).total == pytest.approx(1.0)
    unmarked = Task.create(**{**as_solver_sees_it.model_dump(exclude={"id"}), "user_tools": []})
    penalised = {c.name: c.score for c in task_reward(unmarked, group).components}
    assert penalised["extra_writes"] == pytest.approx(0.7)  # without the mark it would be the agent's extra write


def test_sft_single_keeps_the_whole_chain_for_the_agent(tmp_path: Path) -> None:
    shop = _marked_shop(tmp_path, ["pay_order"])
    task = _order_and_pay(shop)
    workspace = Workspace(tmp_path / "ws")
    write_task_stage(workspace, "ci", [task])
    oracle = OracleClient([task])
    run_synth_trajectories(SynthTrajectoriesConfig(from_run="ci", preset="sft-single", seed=3), workspace,
                           TrajectoryDeps(writer=oracle, solver=oracle, load=lambda name: shop))  # type: ignore[arg-type]
    item = TrajectoryItem.model_validate_json(next((tmp_path / "ws" / STAGE / "items").iterdir()).read_bytes())
    assert item.status == "verified" and item.task is not None and item.task.user_tools == []
    assert [c.tool for c in item.task.gold_calls()] == ["shop__create_order", PAY]


def test_a_chain_only_the_person_can_take_is_dropped_with_its_reason(tmp_path: Path) -> None:
    shop = _marked_shop(tmp_path, ["pay_order", "top_up_wallet"])
    task = _task(shop, [("shop__top_up_wallet", {"id": "cus_0002", "amount": 15}, ["id", "amount"])], read_only=False)
    stage, oracle = _run(tmp_path / "ws", "rl", shop, [task])
    funnel = TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes())
    assert funnel.stages["queries"] == 0 and funnel.drops == {"queries": {"person_only": 1}}
    assert oracle.seen == []  # dropped before any model call
