"""The user simulator, driven by a scripted client (`envfactory.llm.ScriptedClient`) that answers the
way a chat model playing a customer does: a plain message, a message ending in the stop token, a bare
stop token, or nothing."""

from __future__ import annotations

import pytest

from envfactory.agent import STOP_TOKEN, UserSettings, UserSimulator
from envfactory.errors import ProviderError
from envfactory.llm import ReplayMissError, ScriptedClient
from envfactory.spec import Message, SimulatedUser, ToolCall

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
    assert STOP_TOKEN in system
    # the agent's text is the other party; the user's own messages are the assistant side; no tools
    assert [(m.role, m.content) for m in request.messages[1:]] == [
        ("user", "Hi! How can I help you today?"),
        ("assistant", "I want to cancel a reservation."),
        ("user", "Could you give me your user id?"),
    ]
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
    system = client.requests[0].messages[0].content
    assert STOP_TOKEN not in system and "tell the agent" in system
