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
- Prompt shape (for prefix reuse): the system message (scenario, manner, rules) is the same for every
  request of a conversation; what differs — the opening instruction, or the stop rule — closes the
  prompt as a final system note, after the conversation.
- A provider failure caused by the conversation (context overflow, timeout) is returned as a stop with
  its reason in `failure`; set-up failures (missing model, replay miss, ...) are raised.
- Deterministic: the request carries the given seed and the settings' temperature.
- User-side tools (τ² telecom's phone; `Task.user_tools`): `reply(..., toolbox=...)` offers the toolbox's
  tools to the simulator's model (`tool_choice="auto"`, plus `USER_TOOLS` in the system text); each call
  it makes is run by `toolbox.call` (which runs it in the episode's sessions and records it in the
  trajectory as a user message with the call, then its result), its result is shown to the simulator, and
  it is asked again, at most `max_tool_calls` calls per reply (then it must write a message). The
  simulator sees its own earlier calls and results, never the agent's. Without a toolbox the request is
  exactly what it was before user tools existed (same prompt text, no tools), so recorded cassettes replay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import Field

from envfactory.agent.prompts import USER_OPENING, USER_STOP_RULE, USER_SYSTEM, USER_TOOLS
from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    DependencyMissingError,
    EndpointUnreachableError,
    FunctionTool,
    LLMClient,
    ModelIntegrityError,
    ModelNotInstalledError,
    ReplayMissError,
)
from envfactory.spec import Message, SimulatedUser, SpecModel, ToolCall, ToolResult

__all__ = ["STOP_TOKEN", "UserReply", "UserSettings", "UserSimulator", "UserToolbox"]

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


class UserToolbox(Protocol):
    """The user's own tools in an episode: what the simulator may call, and how a call is run (and recorded)."""

    @property
    def tools(self) -> list[FunctionTool]:
        """The tools offered to the simulator (never to the agent)."""
        ...

    def call(self, call: ToolCall) -> ToolResult:
        """Run one call of the user's and record it; the result (or typed error) comes back."""
        ...


class UserSimulator:
    """Plays the user of a `SimulatedUser` turn with an LLM (see the module docstring)."""

    def __init__(self, client: LLMClient, settings: UserSettings | None = None, *, max_tool_calls: int = 4) -> None:
        """Speak through `client` (the simulator's own model, `--user-llm`, or the agent's) with `settings`
        (default `UserSettings()`: temperature and token cap); `max_tool_calls`: user-tool calls allowed per
        reply when a toolbox is given."""
        self.client = client
        self.settings = settings or UserSettings()
        self.max_tool_calls = max_tool_calls

    def request(self, scenario: SimulatedUser, conversation: Sequence[Message], *, seed: int,
                toolbox: UserToolbox | None = None, offer_tools: bool = True) -> ChatRequest:
        """The request the simulator sends for its next message (with the toolbox's tools when
        `offer_tools`; see the module docstring)."""
        opening = not any(message.role == "user" and not message.tool_calls for message in conversation)
        system = USER_SYSTEM.format(
            instructions=scenario.instructions.strip() or "(none)",
            known_info=scenario.known_info.strip() or "(nothing more)",
            persona=scenario.persona.strip() or "plain and polite",
        )
        if toolbox is not None:
            system = f"{system}\n\n{USER_TOOLS}"
        # small models "stop" before saying anything when told how to stop: the opening omits the rule
        note = USER_OPENING if opening else USER_STOP_RULE.format(stop=STOP_TOKEN)
        messages = [ChatMessage.system(system), *_user_view(conversation)]
        if len(messages) == 1 or messages[-1].role not in ("user", "tool"):
            # A chat template expects the other party to speak last; nudge the simulator to go on.
            messages.append(ChatMessage.user("(waiting for your reply)"))
        messages.append(ChatMessage.system(note))  # what varies closes the prompt (see the module docstring)
        tools: dict[str, object] = {"tools": toolbox.tools, "tool_choice": "auto"} \
            if toolbox is not None and offer_tools and toolbox.tools else {}
        return ChatRequest.model_validate({
            "messages": messages, "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens, "seed": seed, **tools,
        })

    def reply(self, scenario: SimulatedUser, conversation: Sequence[Message], *, seed: int = 0,
              toolbox: UserToolbox | None = None) -> UserReply:
        """The user's next message after `conversation`: its text with the stop token cut off, `stop` when
        the user ended the conversation (or said nothing). A provider error ends it too, with the error in
        `failure`; a missing model, cassette entry, dependency or endpoint is raised, not recorded. With a
        toolbox, the user's own tool calls come first (see the module docstring)."""
        history = list(conversation)
        for calls_made in range(self.max_tool_calls + 1):
            offer = toolbox is not None and calls_made < self.max_tool_calls
            try:
                response = self.client.chat(self.request(scenario, history, seed=seed, toolbox=toolbox,
                                                         offer_tools=offer))
            except _SETUP_ERRORS:
                raise
            except ProviderError as exc:
                return UserReply(text="", stop=True, failure=str(exc)[:500])
            if not (offer and toolbox is not None and response.tool_calls):
                break
            call = response.tool_calls[0]  # one call at a time: its result may change the next one
            result = toolbox.call(call)
            recorded = call.model_copy(update={"id": result.call_id})
            history += [Message(role="user", tool_calls=[recorded]), Message(role="tool", result=result)]
        text = response.content
        if STOP_TOKEN in text:
            return UserReply(text=text.split(STOP_TOKEN, 1)[0].strip(), stop=True)
        text = text.strip()
        return UserReply(text=text, stop=not text)


def _user_view(conversation: Sequence[Message]) -> list[ChatMessage]:
    """The conversation from the user's side: the agent's text messages as the other party, the user's own
    messages, tool calls and their results as its own; the agent's tool calls and results are not shown."""
    view: list[ChatMessage] = []
    own_calls: dict[str, ToolCall] = {}
    for message in conversation:
        if message.role == "assistant" and message.content and not message.tool_calls:
            view.append(ChatMessage.user(message.content))  # the agent speaks to "us"
        elif message.role == "user" and message.tool_calls:
            own_calls.update((call.id, call) for call in message.tool_calls)
            view.append(ChatMessage.assistant(message.content, list(message.tool_calls)))
        elif message.role == "user":
            view.append(ChatMessage.assistant(message.content))
        elif message.role == "tool" and message.result is not None and message.result.call_id in own_calls:
            result = message.result
            text = result.error.message if result.error is not None else _text(result.output)
            view.append(ChatMessage.tool(own_calls[result.call_id], text))
    return view


def _text(output: object) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
