"""Gated tasks on the bundled `shop` environment for the trajectory-stage tests, built by running their
gold calls in the runtime (so gold results, expected final states and replays are real), and a task stage
holding them, written the way `synth tasks` writes its output (`tasks.jsonl` and a finished manifest)."""

from __future__ import annotations

import json
from typing import Any

from envfactory.agent import STOP_TOKEN
from envfactory.llm import ChatMessage, ChatRequest, ChatResponse, NamedToolChoice
from envfactory.llm.scripted import text_response
from envfactory.runtime import Environment, load_env, open_group
from envfactory.spec import (
    EnvRef,
    GoldCall,
    OutputContainsCheck,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    ToolCall,
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


class OracleClient:
    """A scripted model that knows the tasks' gold calls: it writes queries from the writer's goal text,
    makes each decision name the next gold tool and fills its gold arguments, answers with the last tool
    result, and as the user states its goal, then stops. A stand-in for a perfect solver, so the stage's
    bookkeeping (verification, selection, replay, resume) is tested without model noise; the replayed
    cassette of the bundled model covers real answers."""

    def __init__(self, tasks: list[Task]) -> None:
        self.by_action = {_action(t.gold_calls()[0].tool): t for t in tasks}
        self.requests = 0

    @property
    def model_id(self) -> str:
        return "oracle"

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests += 1
        system = request.messages[0].content
        fmt = request.response_format.name if request.response_format else ""
        if fmt == "query":
            goal = request.messages[1].content.split("in order:\n", 1)[1].split("\n\nWrite JSON", 1)[0]
            assert request.response_format is not None
            count = request.response_format.json_schema["properties"]["steps"]["minItems"]  # one per gold call
            lines = goal.split("\n")
            steps = [*lines[: count - 1], " ".join(lines[count - 1:])]
            steps[0] = "Please do this: " + steps[0]
            return text_response(json.dumps({"persona": "A regular customer.", "steps": steps}))
        if fmt == "refined_query":
            request_text = request.messages[1].content.split("The request:\n", 1)[1].split("\n\nRewrite", 1)[0]
            return text_response(json.dumps({"query": "Could you help me? " + request_text}))
        if system.startswith("You are a customer"):
            if any(m.role == "assistant" for m in request.messages):  # it spoke already (its own side)
                return text_response(STOP_TOKEN)
            return text_response(system.split("Your goal:\n", 1)[1].split("\n\n", 1)[0])
        conversation = [m for m in request.messages if m.role != "system"]
        first_user = next(m.content for m in conversation if m.role == "user")
        task = next(t for action, t in self.by_action.items() if action in first_user)
        done = sum(len(m.tool_calls) for m in conversation if m.role == "assistant")
        gold = task.gold_calls()
        if isinstance(request.tool_choice, NamedToolChoice):
            call = gold[done]
            return ChatResponse(model="oracle", finish_reason="tool_calls", message=ChatMessage.assistant(
                tool_calls=[ToolCall(id=f"call_{done}", tool=call.tool, arguments=call.arguments)]))
        if done < len(gold):
            return text_response(json.dumps({"next": gold[done].tool}))
        last = next((m.content for m in reversed(conversation) if m.role == "tool"), "")
        return text_response(json.dumps({"next": "answer", "message": f"Done. {last}"}))


def _action(tool: str) -> str:
    return tool.split("__", 1)[-1].replace("_", " ")
