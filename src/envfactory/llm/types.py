"""The wire models of chat completion: requests, messages, tools, responses, usage.

Contract:
- These models cross process and disk boundaries (the response cache, cassettes, HTTP), so they are
  frozen pydantic with `extra="forbid"`; requests and responses carry a `schema_version`.
- A `ChatRequest` holds everything that decides the answer: messages, tools, tool choice, response
  schema, sampling parameters and seed. Its canonical hash (`request_key`, with the model id) is the
  cache and cassette key, so two requests that could give different answers never share a key.
- Tool calls are `envfactory.spec.ToolCall`s; tools are given in OpenAI function form (`FunctionTool`),
  made from a `ToolSpec` with `FunctionTool.from_spec`.
- Defaults are deterministic: temperature 0 and seed 0.

Provisional home: if other layers start exchanging these models on disk, they move to `spec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec import JSONObject, JSONValue, SpecModel, ToolCall, ToolSpec, content_hash, parse_json
from envfactory.spec.tool import TOOL_NAME_PATTERN

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
REQUEST_KEY_VERSION = 1


class ChatMessage(SpecModel):
    """One chat message. Assistant messages may carry tool calls; a tool message answers one call."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = Field(default=None, description="tool messages: the id of the call answered")
    name: str | None = Field(default=None, description="tool messages: the tool's name")

    @classmethod
    def system(cls, content: str) -> ChatMessage:
        """A system message."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> ChatMessage:
        """A user message."""
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: list[ToolCall] | None = None) -> ChatMessage:
        """An assistant message with text and/or tool calls."""
        return cls(role="assistant", content=content, tool_calls=tool_calls or [])

    @classmethod
    def tool(cls, call: ToolCall, content: str) -> ChatMessage:
        """The tool message answering `call` with `content`."""
        return cls(role="tool", content=content, tool_call_id=call.id, name=call.tool)


def _empty_object_schema() -> JSONObject:
    return {"type": "object", "properties": {}}


class FunctionTool(SpecModel):
    """A tool as an LLM sees it: name, description and the JSON Schema of its arguments."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: JSONObject = Field(default_factory=lambda: _empty_object_schema())

    @classmethod
    def from_spec(cls, spec: ToolSpec) -> FunctionTool:
        """The tool as an LLM sees an environment's `ToolSpec`: its name, description and input schema."""
        return cls(name=spec.name, description=spec.description, parameters=spec.input_schema)

    def openai(self) -> JSONObject:
        """OpenAI function-calling form."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class NamedToolChoice(SpecModel):
    """Force a call of this one tool."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ResponseFormat(SpecModel):
    """Structured output: the answer must be JSON matching `json_schema`."""

    name: str = Field(default="response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: JSONObject


class ChatRequest(SpecModel):
    """Everything that decides an answer (see the module docstring)."""

    schema_version: Literal[1] = 1
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[FunctionTool] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    response_format: ResponseFormat | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1)
    seed: int = 0
    stop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names in {names}")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.name not in names:
            raise ValueError(f"tool_choice names {self.tool_choice.name!r}, which is not among the tools {names}")
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs at least one tool")
        if self.response_format is not None and self.forces_tool_call():
            raise ValueError("a request either forces a tool call or asks for a response schema, not both")
        return self

    def forces_tool_call(self) -> bool:
        """True when the model must call a tool (`required`, or one named tool)."""
        return self.tool_choice == "required" or isinstance(self.tool_choice, NamedToolChoice)

    def offered_tools(self) -> list[FunctionTool]:
        """The tools the model may call under `tool_choice`."""
        if self.tool_choice == "none":
            return []
        if isinstance(self.tool_choice, NamedToolChoice):
            return [tool for tool in self.tools if tool.name == self.tool_choice.name]
        return list(self.tools)

    def tool(self, name: str) -> FunctionTool | None:
        """The offered tool named `name` (whatever `tool_choice` says), or None."""
        return next((tool for tool in self.tools if tool.name == name), None)

    def describe(self) -> str:
        """A one-line description for error messages: sizes, tools, schema and the last user text."""
        last_user = next((m.content for m in reversed(self.messages) if m.role == "user"), "")
        excerpt = last_user if len(last_user) <= 80 else last_user[:77] + "..."
        parts = [f"{len(self.messages)} message(s)"]
        if self.tools:
            parts.append("tools " + ",".join(t.name for t in self.tools))
        if self.response_format is not None:
            parts.append(f"schema {self.response_format.name}")
        parts.append(f"seed {self.seed}")
        return f"{'; '.join(parts)}; last user message {excerpt!r}"


class Usage(SpecModel):
    """Tokens of one answer. `reused_tokens` (prompt tokens restored from a prefix cache) and
    `evaluated_tokens` (prompt tokens decoded) describe how this run produced the answer, like latency:
    they are kept in memory for the usage ledger and left out of serialised responses (cache entries,
    cassettes, HTTP), so the same answer has the same bytes whatever the state of the cache."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    reused_tokens: int = Field(default=0, ge=0, exclude=True)
    evaluated_tokens: int | None = Field(default=None, ge=0, exclude=True,
                                         description="None: the provider does not say (then all prompt tokens)")

    def __eq__(self, other: object) -> bool:
        # Equal answers are equal whatever the cache did: compare what is serialised.
        if not isinstance(other, Usage):
            return NotImplemented
        return (self.prompt_tokens, self.completion_tokens) == (other.prompt_tokens, other.completion_tokens)

    def __hash__(self) -> int:
        return hash((self.prompt_tokens, self.completion_tokens))

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


class ChatResponse(SpecModel):
    """The assistant's answer: text and/or tool calls, why it stopped, and the tokens it cost."""

    schema_version: Literal[1] = 1
    model: str = Field(description="id of the model that produced the answer")
    message: ChatMessage
    finish_reason: FinishReason
    usage: Usage = Field(default_factory=Usage)

    @property
    def content(self) -> str:
        """The answer's text."""
        return self.message.content

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The answer's tool calls, in order."""
        return self.message.tool_calls

    def parsed(self) -> JSONValue:
        """The content parsed as JSON (structured outputs); raises `ValueError` when it is not JSON."""
        value: JSONValue = parse_json(self.message.content)
        return value


def request_key(model_id: str, request: ChatRequest) -> str:
    """The canonical hash of (model, request): the cache and cassette key."""
    return content_hash(
        {"v": REQUEST_KEY_VERSION, "model": model_id, "request": request.model_dump(mode="json", by_alias=True)}
    )
