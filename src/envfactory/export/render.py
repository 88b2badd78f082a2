"""Rendering exported rows through real chat templates: tool-call survival and token lengths.

Contract:
- A `ChatRenderer` turns OpenAI messages and tools into the text a model is trained on and counts its
  tokens (the export stage wraps a transformers tokenizer: the Qwen tools template of the bundled GGUF,
  or SmolLM2's tokenizer with the shipped tools-aware ChatML template, `smollm2_tools_template()`).
- `template_messages(messages)` gives the messages as chat templates want them: tool-call arguments
  parsed back to objects (the rows store them as JSON text; a template given text would render a
  JSON *string* of the arguments, which teaches the model to quote its calls).
- `check_row(messages, tools, renderer, max_tokens)` renders one sample, parses every
  `<tool_call>{"name", "arguments"}</tool_call>` block back and compares them, in order, with the
  sample's calls. Problems (drop reasons): `template_error`, `template_dropped_tool_call`, `too_long`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from envfactory.spec import JSONObject, JSONValue, parse_json
from envfactory.spec.dataset import SFTMessage

TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
SMOLLM2_TEMPLATE = "smollm2_chatml_tools.jinja"


def smollm2_tools_template() -> str:
    """The shipped tools-aware ChatML template for SmolLM2 (package data)."""
    return (resources.files("envfactory.export") / "templates" / SMOLLM2_TEMPLATE).read_text(encoding="utf-8")


class ChatRenderer(Protocol):
    """A chat template and its tokenizer."""

    @property
    def name(self) -> str:
        """The renderer's name (`qwen`, `smollm2`); token counts and problems are reported under it."""

    def render(self, messages: list[JSONObject], tools: list[JSONObject]) -> str:
        """The prompt text of `messages` with `tools` as the template writes it; deterministic."""

    def count_tokens(self, text: str) -> int:
        """The number of tokens `text` has under the renderer's tokenizer."""


def template_messages(messages: Sequence[SFTMessage]) -> list[JSONObject]:
    """Messages for a chat template: None fields left out, tool-call arguments as objects."""
    out: list[JSONObject] = []
    for message in messages:
        data: JSONObject = message.model_dump(mode="json", exclude_none=True)
        if message.tool_calls:
            data["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": parse_json(call.function.arguments)}}
                for call in message.tool_calls
            ]
        out.append(data)
    return out


def expected_calls(messages: Sequence[SFTMessage]) -> list[tuple[str, JSONValue]]:
    """Every tool call of the sample, in order, as (name, arguments object)."""
    return [
        (call.function.name, parse_json(call.function.arguments))
        for message in messages for call in (message.tool_calls or [])
    ]


def rendered_calls(text: str) -> list[tuple[str, JSONValue]]:
    """The tool calls found in rendered text; blocks that are not JSON come back as ("", block)."""
    calls: list[tuple[str, JSONValue]] = []
    for block in TOOL_CALL_BLOCK.findall(text):
        try:
            value = parse_json(block)
        except ValueError:
            calls.append(("", block))
            continue
        if not isinstance(value, dict):
            calls.append(("", block))
            continue
        arguments = value.get("arguments")
        if isinstance(arguments, str):  # a template that quoted the arguments: they did not survive as an object
            calls.append((str(value.get("name", "")), {"__quoted__": arguments}))
            continue
        calls.append((str(value.get("name", "")), arguments))
    return calls


def _conversation_part(text: str, messages: Sequence[SFTMessage], tools: list[JSONObject],
                       renderer: ChatRenderer) -> str:
    """The rendered text after the system block: tools templates show an example `<tool_call>` there."""
    if messages and messages[0].role == "system":
        prefix = renderer.render(template_messages(messages[:1]), tools)
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


@dataclass(frozen=True, slots=True)
class RenderCheck:
    """A rendered row's token count, and the problem that makes it unusable (None when it renders within
    the limit)."""
    tokens: int
    problem: str | None = None
    detail: str = ""


def check_row(messages: Sequence[SFTMessage], tools: list[JSONObject], renderer: ChatRenderer,
              max_tokens: int) -> RenderCheck:
    """Render one sample and check its calls and length (see the module contract)."""
    try:
        text = renderer.render(template_messages(messages), tools)
    except Exception as exc:  # a template raising on a row is a drop reason, not a crash of the export
        return RenderCheck(0, "template_error", f"{type(exc).__name__}: {exc}")
    tokens = renderer.count_tokens(text)
    wanted = expected_calls(messages)
    found = rendered_calls(_conversation_part(text, messages, tools, renderer))
    if found != wanted:
        missing = len([c for c in wanted if c not in found])
        return RenderCheck(tokens, "template_dropped_tool_call",
                           f"{renderer.name}: {len(wanted)} calls, {len(found)} rendered, {missing} lost or changed")
    if tokens > max_tokens:
        return RenderCheck(tokens, "too_long", f"{tokens} tokens > {max_tokens}")
    return RenderCheck(tokens)
