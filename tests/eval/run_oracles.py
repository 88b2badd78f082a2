"""Scripted oracle clients for the `eval run` tests (they stand in for a model; see each class).

`GoldClient` answers what a model that knows the gold calls would answer in the agent loop's protocol: a
decision JSON naming the next gold tool of the current turn (or `answer` with the facts the turn must
communicate), then the forced call with the gold arguments; as the τ² user it opens with a reference
to its task and then sends the stop token. `SilentClient` answers every decision with a reply and never
calls a tool. Both return the response shapes the local provider returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from envfactory.agent import STOP_TOKEN
from envfactory.llm import ChatMessage, ChatRequest, ChatResponse
from envfactory.spec import ScriptedUser, SimulatedUser, Task, ToolCall

USER_MARK = "You are a customer"


def _response(message: ChatMessage) -> ChatResponse:
    return ChatResponse(model="oracle", message=message,
                        finish_reason="tool_calls" if message.tool_calls else "stop")


class GoldClient:
    """Plays the gold calls of whichever task the conversation belongs to (see the module docstring)."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = list(tasks)
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "oracle/gold"

    def _task(self, users: list[str]) -> Task:
        for task in self.tasks:
            turn = task.turns[0].user
            if isinstance(turn, SimulatedUser) and users and users[0] == f"ref {task.id[:12]}":
                return task
            texts = [t.user.text for t in task.turns if isinstance(t.user, ScriptedUser)]
            if texts[: len(users)] == users:
                return task
        raise AssertionError(f"no task opens with {users[:1]}")

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        system = request.messages[0].content
        if system.startswith(USER_MARK):
            spoken = [m for m in request.messages if m.role == "assistant"]
            task = next(t for t in self.tasks
                        if isinstance(t.turns[0].user, SimulatedUser) and t.turns[0].user.instructions in system)
            text = STOP_TOKEN if spoken else f"ref {task.id[:12]}"
            return _response(ChatMessage.assistant(text))
        conversation = request.messages[1:]
        users = [m.content for m in conversation if m.role == "user"]
        task = self._task(users)
        index = len(users) - 1 if isinstance(task.turns[0].user, ScriptedUser) else 0
        turn = task.turns[index]
        last_user = max(i for i, m in enumerate(conversation) if m.role == "user")
        made = sum(len(m.tool_calls) for m in conversation[last_user:] if m.role == "assistant")
        if request.response_format is not None:
            if made < len(turn.gold_calls):
                return _response(ChatMessage.assistant(json.dumps({"next": turn.gold_calls[made].tool})))
            text = "; ".join(turn.expected_outputs) or "Done."
            return _response(ChatMessage.assistant(json.dumps({"next": "answer", "message": text})))
        gold = turn.gold_calls[made]
        return _response(ChatMessage.assistant("", [ToolCall(id="c", tool=gold.tool, arguments=dict(gold.arguments))]))


class SilentClient:
    """Never calls a tool; as the τ² user it opens the conversation and then stops."""

    @property
    def model_id(self) -> str:
        return "oracle/silent"

    def chat(self, request: ChatRequest) -> ChatResponse:
        if request.messages[0].content.startswith(USER_MARK):
            spoken = any(m.role == "assistant" for m in request.messages)
            return _response(ChatMessage.assistant(STOP_TOKEN if spoken else "I need to change my flight."))
        return _response(ChatMessage.assistant(json.dumps({"next": "answer", "message": "I cannot help."})))
