"""Tool calls written as text: tags, fences, bare JSON, the shapes models use, and what is not a call."""

from __future__ import annotations

import pytest

from envfactory.llm.parsing import extract_tool_calls, to_tool_calls

NAMES = ["get_weather", "send_email"]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Berlin"}}\n</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Berlin"}}',  # unclosed tag
        '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Berlin"\n  }\n}\n```',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Berlin\\"}"}',  # arguments as a string
        '{"name": "get_weather", "parameters": {"city": "Berlin"}}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Berlin"}}}',
        'Sure! {"name": "get_weather", "arguments": {"city": "Berlin"}}',
    ],
)
def test_one_call_in_the_usual_shapes(text: str) -> None:
    content, calls = extract_tool_calls(text, NAMES)
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Berlin"})]
    assert "get_weather" not in content


def test_several_calls_and_surrounding_text() -> None:
    text = (
        "I will do both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
        "<tool_call>\n{\"name\": \"send_email\", \"arguments\": {\"to\": \"a@b.c\", \"body\": \"hi\"}}\n</tool_call>"
    )
    content, calls = extract_tool_calls(text, NAMES)
    assert content == "I will do both."
    assert [c.name for c in calls] == ["get_weather", "send_email"]
    list_text = '[{"name": "get_weather", "arguments": {}}, {"name": "send_email", "arguments": {}}]'
    assert [c.name for c in extract_tool_calls(list_text, NAMES)[1]] == ["get_weather", "send_email"]


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Berlin is sunny.",
        '{"name": "delete_everything", "arguments": {}}',  # not an offered tool
        '{"city": "Berlin"}',  # JSON, but not a call
        "<tool_call>not json</tool_call>",
    ],
)
def test_text_that_is_not_a_call_stays_content(text: str) -> None:
    content, calls = extract_tool_calls(text, NAMES)
    assert calls == []
    assert content == text.strip()


def test_undecodable_arguments_are_kept_raw_with_stable_ids() -> None:
    _, calls = extract_tool_calls('{"name": "get_weather", "arguments": "{city: Berlin"}', NAMES)
    assert calls[0].arguments is None and calls[0].raw == "{city: Berlin"
    first = to_tool_calls(calls, 3)
    assert first[0].raw_arguments == "{city: Berlin" and first[0].arguments == {}
    assert first == to_tool_calls(calls, 3)
    assert first[0].id != to_tool_calls(calls, 4)[0].id
