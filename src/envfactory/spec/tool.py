"""Tools, calls and results: what an agent sees and what the runtime returns.

Contract:
- `ToolSpec` is derived from the implementation (declarative operation or typed python method); it is
  never written twice by hand. Names match `^[A-Za-z0-9_-]{1,64}$` (DESIGN §11).
- `ToolResult.error` is `None` on success, else an `ErrorInfo` whose `kind` is one of `ERROR_KINDS`.
  Agent-visible kinds describe the call; framework kinds (`timeout`, `sandbox_failure`,
  `session_closed`, `resource_limit`) describe the machinery and are logged as such.
- The error kinds are written out here once, as `Literal` types (`AgentErrorKind`,
  `FrameworkErrorKind`, and `SandboxFailureKind`, the framework kinds a sandbox worker's failure can
  have); `ErrorKind` and the frozensets are derived from them. Every layer and both servers
  (HTTP and MCP, which carry `ToolResult`s) use these names; a `Literal` rather than an `enum.Enum`
  keeps the values plain strings on the wire and in the JSON Schemas, while mypy checks each use.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

from pydantic import Field

from envfactory.spec.base import JSONObject, JSONValue, SpecModel

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

ToolEffect = Literal["read", "write"]

AgentErrorKind = Literal[
    "invalid_arguments", "unknown_tool", "not_found", "rule_violation", "execution_error"
]
"""Kinds an agent can act on: they describe its call."""
FrameworkErrorKind = Literal["timeout", "sandbox_failure", "session_closed", "resource_limit"]
"""Kinds that describe the machinery, never the agent's fault."""
SandboxFailureKind = Literal["timeout", "sandbox_failure", "resource_limit"]
"""The framework kinds a failed sandbox worker reports (a subset of `FrameworkErrorKind`)."""
ErrorKind = Literal[AgentErrorKind, FrameworkErrorKind]
"""Every kind an `ErrorInfo` can carry: the agent kinds, then the framework kinds."""

ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
AGENT_ERROR_KINDS: frozenset[str] = frozenset(get_args(AgentErrorKind))
FRAMEWORK_ERROR_KINDS: frozenset[str] = frozenset(get_args(FrameworkErrorKind))
SANDBOX_FAILURE_KINDS: frozenset[str] = frozenset(get_args(SandboxFailureKind))


def agent_error_kind(kind: str | None) -> AgentErrorKind:
    """`kind` when it is an agent-visible kind, else `execution_error`: how a tool failure whose kind
    came from outside the type system (a sandbox worker's reply, an implementation) is reported."""
    return cast("AgentErrorKind", kind) if kind in AGENT_ERROR_KINDS else "execution_error"


class ToolSource(SpecModel):
    """Where a tool came from, so it can be traced to the specification it was derived from."""

    schema_version: Literal[1] = 1
    provider: str = Field(description="e.g. aws, google, openapi:stripe.com, mcp, python, manual")
    service: str = ""
    operation_id: str = ""
    field_names: dict[str, str] = Field(
        default_factory=dict, description="our parameter name -> the source's original field name"
    )


class ToolSpec(SpecModel):
    """One tool as the agent sees it, plus the facts the graph and rewards need."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str
    input_schema: JSONObject = Field(description="JSON Schema (object) of the arguments")
    output_schema: JSONObject = Field(description="JSON Schema of a successful result")
    effect: ToolEffect
    idempotent: bool = False
    source: ToolSource | None = None

    def openai_function(self) -> JSONObject:
        """The tool in OpenAI function-calling format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema,
            },
        }


class ErrorInfo(SpecModel):
    """A typed failure of one call; `message` names the problem in words an agent can act on."""

    kind: ErrorKind
    message: str
    path: str | None = Field(default=None, description="JSON pointer into the arguments, when relevant")


class ToolCall(SpecModel):
    """A request to run one tool. `raw_arguments` keeps text that could not be parsed as JSON."""

    schema_version: Literal[1] = 1
    id: str
    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    raw_arguments: str | None = None


class ToolResult(SpecModel):
    """The outcome of one call: `output` on success, `error` otherwise, never both."""

    schema_version: Literal[1] = 1
    call_id: str
    tool: str
    output: JSONValue = None
    error: ErrorInfo | None = None
    step: int = Field(ge=0, description="index of this call in the session's call log")

    @property
    def ok(self) -> bool:
        """True when the call returned a result rather than an error."""
        return self.error is None
