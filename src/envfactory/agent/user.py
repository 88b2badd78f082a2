"""A minimal LLM-driven user simulator for conversational tasks (τ²-bench and our simulated turns).

Contract:
- `UserSimulator.reply(scenario, conversation, seed=...)` returns the simulated user's next message
  as a `UserReply`. The simulator is told the scenario's instructions, known information and persona,
  and sees the conversation from the user's side: the agent's text messages as the other party,
  its own earlier messages as its own; tool calls and results are not shown (a real user sees neither).
- The stop token (`STOP_TOKEN`, `###STOP###`) anywhere in the answer ends the conversation: `stop` is
  True and `text` keeps whatever came before the token. The opening message is asked for without
  mentioning the stop token (small models otherwise stop before saying anything). An empty answer also stops (the user has
  nothing left to say) instead of looping on silence.
- A provider failure caused by the conversation (context overflow, timeout) is returned as a stop with
  its reason in `failure`; set-up failures (missing model, replay miss, ...) are raised.
- Deterministic: the request carries the given seed and the settings' temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from envfactory.agent.prompts import USER_OPENING, USER_STOP_RULE, USER_SYSTEM
from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    DependencyMissingError,
    EndpointUnreachableError,
    LLMClient,
    ModelIntegrityError,
    ModelNotInstalledError,
    ReplayMissError,
)
from envfactory.spec import Message, SimulatedUser, SpecModel

__all__ = ["STOP_TOKEN", "UserReply", "UserSettings", "UserSimulator"]

STOP_TOKEN = "###STOP###"
_SETUP_ERRORS = (
    ReplayMissError, ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError,
)


class UserSettings(SpecModel):
    """Sampling settings of the user simulator's model."""
    schema_version: Literal[1] = 1
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=8)


class UserReply(SpecModel):
    """One simulated user message, whether the user ends the conversation, and why the simulator failed
    (empty when it did not)."""
    text: str
    stop: bool = False
    failure: str = ""


class UserSimulator:
    """Plays the user of a `SimulatedUser` turn with an LLM (see the module docstring)."""

    def __init__(self, client: LLMClient, settings: UserSettings | None = None) -> None:
        """Speak through `client` with `settings` (default `UserSettings()`: temperature and token cap)."""
        self.client = client
        self.settings = settings or UserSettings()

    def request(self, scenario: SimulatedUser, conversation: Sequence[Message], *, seed: int) -> ChatRequest:
        """The request the simulator sends for its next message."""
        opening = not any(message.role == "user" for message in conversation)
        system = USER_SYSTEM.format(
            instructions=scenario.instructions.strip() or "(none)",
            known_info=scenario.known_info.strip() or "(nothing more)",
            persona=scenario.persona.strip() or "plain and polite",
            stop_rule="" if opening else USER_STOP_RULE.format(stop=STOP_TOKEN),
        )
        if opening:  # small models "stop" before saying anything when told how to stop
            system = f"{system}\n\n{USER_OPENING}"
        messages = [ChatMessage.system(system)]
        for message in conversation:
            if message.role == "assistant" and message.content and not message.tool_calls:
                messages.append(ChatMessage.user(message.content))  # the agent speaks to "us"
            elif message.role == "user":
                messages.append(ChatMessage.assistant(message.content))
        if len(messages) == 1 or messages[-1].role != "user":
            # A chat template expects the other party to speak last; nudge the simulator to go on.
            messages.append(ChatMessage.user("(waiting for your reply)"))
        return ChatRequest(messages=messages, temperature=self.settings.temperature,
                           max_tokens=self.settings.max_tokens, seed=seed)

    def reply(self, scenario: SimulatedUser, conversation: Sequence[Message], *, seed: int = 0) -> UserReply:
        """The user's next message after `conversation`: its text with the stop token cut off, `stop` when
        the user ended the conversation (or said nothing). A provider error ends it too, with the error in
        `failure`; a missing model, cassette entry, dependency or endpoint is raised, not recorded."""
        try:
            response = self.client.chat(self.request(scenario, conversation, seed=seed))
        except _SETUP_ERRORS:
            raise
        except ProviderError as exc:
            return UserReply(text="", stop=True, failure=str(exc)[:500])
        text = response.content
        if STOP_TOKEN in text:
            return UserReply(text=text.split(STOP_TOKEN, 1)[0].strip(), stop=True)
        text = text.strip()
        return UserReply(text=text, stop=not text)
