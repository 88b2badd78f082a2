"""Tool calls written as text by a model that was not constrained: `<tool_call>` tags, fenced JSON or
bare JSON, in the shapes models use (`{"name", "arguments"}`, `"parameters"` for arguments, OpenAI's
`{"type": "function", "function": {...}}`, or a list of those).

Contract: `extract_tool_calls` is a pure function. Only objects naming one of the offered tools count as
calls; everything else stays content. Arguments given as a JSON string are decoded; arguments that are
neither an object nor decodable are kept verbatim (`raw`) so the caller can report them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from envfactory.llm.types import FunctionTool
from envfactory.spec import JSONObject, ToolCall, content_hash

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class TextCall:
    """A tool call found in text; `arguments` is None when they could not be decoded (see `raw`)."""

    name: str
    arguments: JSONObject | None
    raw: str


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOTHING


_NOTHING = object()


def _as_calls(value: Any, names: Collection[str]) -> list[TextCall] | None:
    """The calls `value` encodes, or None when it is not (only) tool calls."""
    items = value if isinstance(value, list) else [value]
    calls: list[TextCall] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or (names and name not in names):
            return None
        args = item.get("arguments", item.get("parameters", {}))
        raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        if isinstance(args, str):
            decoded = _loads(args) if args.strip() else {}
            args = decoded if isinstance(decoded, dict) else None
        calls.append(TextCall(name, args if isinstance(args, dict) else None, raw))
    return calls or None


def _first_json_value(text: str) -> tuple[Any, int, int] | None:
    """The first decodable JSON object or array in `text`, with its span."""
    for match in re.finditer(r"[\[{]", text):
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except ValueError:
            continue
        return value, match.start(), end
    return None


def extract_tool_calls(text: str, tool_names: Collection[str]) -> tuple[str, list[TextCall]]:
    """Split `text` into remaining content and the tool calls it contains.

    Args:
        text: the model's raw output.
        tool_names: the tools offered; an object naming another tool is not a call.

    Returns:
        The content with the calls removed (stripped), and the calls in order.
    """
    for pattern in (_TAGGED, _FENCED):
        calls: list[TextCall] = []
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(text):
            body = match.group(1).strip()
            found = _as_calls(_loads(body), tool_names)
            if found is None:
                located = _first_json_value(body)
                found = _as_calls(located[0], tool_names) if located else None
            if found:
                calls.extend(found)
                spans.append(match.span())
        if calls:
            return _cut(text, spans), calls
    whole = _as_calls(_loads(text.strip()), tool_names)
    if whole:
        return "", whole
    located = _first_json_value(text)
    if located is not None:
        value, start, end = located
        found = _as_calls(value, tool_names)
        if found:
            return _cut(text, [(start, end)]), found
    return text.strip(), []


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return "".join(pieces).strip()


def call_id(conversation_length: int, index: int, name: str, arguments: Any) -> str:
    """A deterministic tool-call id: the same request gives the same ids (and response bytes)."""
    return "call_" + content_hash([conversation_length, index, name, arguments])[:16]


def to_tool_calls(calls: list[TextCall], conversation_length: int) -> list[ToolCall]:
    """`ToolCall`s with deterministic ids; undecodable arguments are kept in `raw_arguments`."""
    return [
        ToolCall(
            id=call_id(conversation_length, i, c.name, c.arguments if c.arguments is not None else c.raw),
            tool=c.name,
            arguments=c.arguments or {},
            raw_arguments=None if c.arguments is not None else c.raw,
        )
        for i, c in enumerate(calls)
    ]


def _tool_call_object_schema(tool: FunctionTool) -> JSONObject:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_call_schema(tools: list[FunctionTool]) -> JSONObject:
    """The JSON Schema of one call of any of `tools`: `{"name": ..., "arguments": {...}}`."""
    if len(tools) == 1:
        return _tool_call_object_schema(tools[0])
    return {"anyOf": [_tool_call_object_schema(tool) for tool in tools]}
