"""The user simulator, driven by a scripted client (`envfactory.llm.ScriptedClient`) that answers the
way a chat model playing a customer does: a plain message, a message ending in the stop token, a bare
stop token, or nothing."""

from __future__ import annotations

import pytest

from envfactory.agent import STOP_TOKEN, UserSettings, UserSimulator
from envfactory.agent.prompts import USER_TOOLS
from envfactory.errors import ProviderError
from envfactory.llm import ChatMessage, ChatResponse, FunctionTool, ReplayMissError, ScriptedClient
from envfactory.spec import Message, SimulatedUser, ToolCall, ToolResult

SCENARIO = SimulatedUser(
    instructions="You want to cancel reservation EHGLP3 and get a refund.",
    known_info="Your user id is emma_kim_9957.",
    persona="Impatient; you answer in short sentences.",
)
CONVERSATION = [
    Message(role="assistant", content="Hi! How can I help you today?"),
    Message(role="user", content="I want to cancel a reservation."),
    Message(role="assistant", tool_calls=[ToolCall(id="c1", tool="get_user_details", arguments={"user_id": "x"})]),
    Message(role="tool"),
    Message(role="assistant", content="Could you give me your user id?"),
]


def test_the_simulator_sees_the_conversation_from_the_users_side() -> None:
    client = ScriptedClient(["It's emma_kim_9957."])
    reply = UserSimulator(client, UserSettings(temperature=0.5)).reply(SCENARIO, CONVERSATION, seed=11)
    assert reply.text == "It's emma_kim_9957." and not reply.stop
    request = client.requests[0]
    system = request.messages[0].content
    assert SCENARIO.instructions in system and SCENARIO.known_info in system and "Impatient" in system
    assert STOP_TOKEN not in system  # the stop rule closes the prompt, after the conversation
    # the agent's text is the other party; the user's own messages are the assistant side; no tools
    assert [(m.role, m.content) for m in request.messages[1:-1]] == [
        ("user", "Hi! How can I help you today?"),
        ("assistant", "I want to cancel a reservation."),
        ("user", "Could you give me your user id?"),
    ]
    assert request.messages[-1].role == "system" and STOP_TOKEN in request.messages[-1].content
    assert request.seed == 11 and request.temperature == 0.5 and request.tools == []


@pytest.mark.parametrize(("answer", "text"), [
    ("Thanks, that's all. ###STOP###", "Thanks, that's all."),
    ("###STOP###", ""),
    ("   ", ""),
])
def test_stop_token_or_silence_ends_the_conversation(answer: str, text: str) -> None:
    reply = UserSimulator(ScriptedClient([answer])).reply(SCENARIO, CONVERSATION)
    assert reply.stop and reply.text == text and reply.failure == ""


def test_provider_failures_stop_with_a_reason_but_setup_failures_raise() -> None:
    reply = UserSimulator(ScriptedClient([ProviderError("context window exceeded")])).reply(SCENARIO, CONVERSATION)
    assert reply.stop and "context window" in reply.failure
    with pytest.raises(ReplayMissError):
        UserSimulator(ScriptedClient([ReplayMissError("miss")])).reply(SCENARIO, CONVERSATION)


def test_the_opening_message_is_asked_for_without_the_stop_rule() -> None:
    client = ScriptedClient(["I'd like to cancel EHGLP3."])
    reply = UserSimulator(client).reply(SCENARIO, CONVERSATION[:1])
    assert reply.text == "I'd like to cancel EHGLP3." and not reply.stop
    opening = client.requests[0]
    assert all(STOP_TOKEN not in m.content for m in opening.messages)
    assert opening.messages[-1].role == "system" and "tell the agent" in opening.messages[-1].content
    # the system message is the same for the opening and later requests (a shared prefix)
    later = UserSimulator(ScriptedClient(["Sure."])).request(SCENARIO, CONVERSATION, seed=0)
    assert later.messages[0] == opening.messages[0] and later.messages[1] == opening.messages[1]


class _Toolbox:
    """A user's phone with one tool, recording the calls it runs."""

    def __init__(self) -> None:
        self.tools = [FunctionTool(name="check_status_bar", description="What the status bar shows.")]
        self.calls: list[ToolCall] = []

    def call(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return ToolResult(call_id=f"u{len(self.calls)}", tool=call.tool, step=len(self.calls), output="Status Bar: Airplane Mode")


def _user_call(tool: str) -> ChatResponse:
    message = ChatMessage.assistant("", [ToolCall(id="x", tool=tool, arguments={})])
    return ChatResponse(model="scripted", message=message, finish_reason="tool_calls")


def test_user_tools_are_offered_run_and_shown_to_the_simulator_only() -> None:
    toolbox = _Toolbox()
    client = ScriptedClient([_user_call("check_status_bar"), "It says airplane mode."])
    reply = UserSimulator(client).reply(SCENARIO, CONVERSATION, toolbox=toolbox)
    assert reply.text == "It says airplane mode." and not reply.stop
    assert [c.tool for c in toolbox.calls] == ["check_status_bar"]
    first, second = client.requests
    assert [t.name for t in first.tools] == ["check_status_bar"] and first.tool_choice == "auto"
    assert USER_TOOLS in first.messages[0].content
    # the second request shows the simulator its own call and result (never the agent's call)
    assert [m.role for m in second.messages[-3:]] == ["assistant", "tool", "system"]  # then the closing note
    assert second.messages[-2].content == "Status Bar: Airplane Mode"
    assert not any("get_user_details" in str(m.tool_calls) for m in second.messages)


def test_user_tool_calls_are_bounded_then_a_message_is_required() -> None:
    toolbox = _Toolbox()
    client = ScriptedClient([_user_call("check_status_bar"), _user_call("check_status_bar"), "Done."])
    reply = UserSimulator(client, max_tool_calls=2).reply(SCENARIO, CONVERSATION, toolbox=toolbox)
    assert reply.text == "Done." and len(toolbox.calls) == 2
    assert client.requests[-1].tools == []  # the last request offers no tool


def test_without_a_toolbox_the_request_is_unchanged() -> None:
    client = ScriptedClient(["Hello."])
    UserSimulator(client).reply(SCENARIO, CONVERSATION)
    request = client.requests[0]
    assert request.tools == [] and USER_TOOLS not in request.messages[0].content
