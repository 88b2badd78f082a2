"""Request/response models: validation, request keys and their sensitivity."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    NamedToolChoice,
    ResponseFormat,
)
from envfactory.llm.types import request_key
from envfactory.spec import ToolSpec

WEATHER = FunctionTool(name="get_weather", description="Weather", parameters={"type": "object"})


def base() -> ChatRequest:
    return ChatRequest(messages=[ChatMessage.user("hi")])


def test_key_depends_on_everything_that_decides_the_answer() -> None:
    request = base()
    key = request_key("m", request)
    assert key == request_key("m", ChatRequest.model_validate_json(request.model_dump_json()))
    variants = [
        request_key("other-model", request),
        request_key("m", request.model_copy(update={"seed": 1})),
        request_key("m", request.model_copy(update={"temperature": 0.5})),
        request_key("m", request.model_copy(update={"max_tokens": 7})),
        request_key("m", request.model_copy(update={"messages": [ChatMessage.user("hi!")]})),
        request_key("m", request.model_copy(update={"tools": [WEATHER]})),
        request_key("m", request.model_copy(update={"response_format": ResponseFormat(json_schema={"type": "object"})})),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_invalid_combinations_are_refused() -> None:
    with pytest.raises(ValidationError, match="not among the tools"):
        ChatRequest(messages=[ChatMessage.user("x")], tools=[WEATHER], tool_choice=NamedToolChoice(name="nope"))
    with pytest.raises(ValidationError, match="needs at least one tool"):
        ChatRequest(messages=[ChatMessage.user("x")], tool_choice="required")
    with pytest.raises(ValidationError, match="not both"):
        ChatRequest(
            messages=[ChatMessage.user("x")], tools=[WEATHER], tool_choice="required",
            response_format=ResponseFormat(json_schema={"type": "object"}),
        )
    with pytest.raises(ValidationError, match="duplicate tool names"):
        ChatRequest(messages=[ChatMessage.user("x")], tools=[WEATHER, WEATHER])
    with pytest.raises(ValidationError):
        ChatRequest(messages=[])


def test_tools_come_from_tool_specs_in_openai_form() -> None:
    spec = ToolSpec(
        name="create_order", description="Create an order.", input_schema={"type": "object", "properties": {}},
        output_schema={}, effect="write",
    )
    tool = FunctionTool.from_spec(spec)
    assert tool.openai() == spec.openai_function()


def test_response_parses_its_json_content() -> None:
    response = ChatResponse(model="m", message=ChatMessage.assistant('{"a": 1}'), finish_reason="stop")
    assert response.parsed() == {"a": 1}
    with pytest.raises(ValueError):
        ChatResponse(model="m", message=ChatMessage.assistant("no"), finish_reason="stop").parsed()
