"""Trajectories as OpenAI chat conversations: the one message shape every export format starts from.

Contract:
- `conversation(trajectory, system_prompt, think)` maps a `Trajectory`'s messages to `SFTMessage`s:
  the system prompt first (the trajectory's own system message wins when it has one), user text,
  assistant text with its tool calls (arguments as canonical JSON text, ids kept), one `tool` message per
  result (the output, or `{"error": {kind, message}}`, as canonical JSON text).
- Reasoning: Qwen3-style `<think>...</think>` blocks in assistant text are kept (moved to the front of the
  content, one block) or dropped by `think`. Reasoning never enters tool arguments: a call whose
  arguments hold a think tag raises `ExportRowError("reasoning_in_arguments")`, and calls whose arguments
  did not parse (`raw_arguments`) raise `ExportRowError("malformed_arguments")`.
- `ExportRowError.reason` is a short, stable drop reason counted in the export manifest.
"""

from __future__ import annotations

import re

from envfactory.spec import Message, ToolCall, ToolResult, Trajectory, canonical_json
from envfactory.spec.dataset import SFTFunctionCall, SFTMessage, SFTToolCall, ThinkMode

THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
THINK_TAGS = ("<think>", "</think>")


class ExportRowError(ValueError):
    """A trajectory or row that cannot be exported; `reason` is the manifest's drop reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        """`reason`: a drop-reason key counted in the manifest; `detail`: free text for the log."""
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def json_text(value: object) -> str:
    """Canonical JSON text (sorted keys, compact): how arguments, states and tools are stored."""
    return canonical_json(value).decode("utf-8")


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, visible text) of an assistant message: every `<think>` block joined, and the rest.

    An unclosed `<think>` makes everything after it reasoning (a truncated thought is still thought).
    """
    thoughts = [match.strip() for match in THINK_BLOCK.findall(text)]
    visible = THINK_BLOCK.sub("", text)
    if THINK_TAGS[0] in visible:
        visible, _, rest = visible.partition(THINK_TAGS[0])
        thoughts.append(rest.strip())
    visible = visible.replace(THINK_TAGS[1], "")
    return "\n\n".join(t for t in thoughts if t), visible.strip()


def assistant_content(text: str, think: ThinkMode) -> str:
    """The assistant content with reasoning kept (as one leading `<think>` block) or dropped."""
    reasoning, visible = split_reasoning(text)
    if think == "keep" and reasoning:
        return f"<think>\n{reasoning}\n</think>\n\n{visible}".rstrip() if visible else f"<think>\n{reasoning}\n</think>"
    return visible


def tool_call(call: ToolCall) -> SFTToolCall:
    """A recorded call as an OpenAI tool call; refuses malformed arguments and leaked reasoning."""
    if call.raw_arguments is not None:
        raise ExportRowError("malformed_arguments", f"call {call.id} of {call.tool}")
    arguments = json_text(call.arguments)
    if any(tag in arguments for tag in THINK_TAGS):
        raise ExportRowError("reasoning_in_arguments", f"call {call.id} of {call.tool}")
    return SFTToolCall(id=call.id, function=SFTFunctionCall(name=call.tool, arguments=arguments))


def tool_content(result: ToolResult) -> str:
    """What the model saw of a tool result: the output, or the error's kind and message, as JSON text."""
    if result.error is not None:
        return json_text({"error": {"kind": result.error.kind, "message": result.error.message}})
    return json_text(result.output)


def _message(message: Message, think: ThinkMode) -> SFTMessage:
    if message.role == "assistant":
        calls = [tool_call(call) for call in message.tool_calls]
        return SFTMessage(role="assistant", content=assistant_content(message.content, think),
                          tool_calls=calls or None)
    if message.role == "tool":
        if message.result is None:
            raise ExportRowError("tool_message_without_result")
        return SFTMessage(role="tool", content=tool_content(message.result), tool_call_id=message.result.call_id)
    return SFTMessage(role=message.role, content=message.content)


def conversation(trajectory: Trajectory, system_prompt: str, think: ThinkMode) -> list[SFTMessage]:
    """The trajectory as chat messages (see the module contract)."""
    body = [m for m in trajectory.messages if m.role != "system"]
    own_system = next((m.content for m in trajectory.messages if m.role == "system" and m.content), "")
    messages = [SFTMessage(role="system", content=own_system or system_prompt)]
    messages.extend(_message(message, think) for message in body)
    return messages
