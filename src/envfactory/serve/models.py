"""Wire models of the HTTP environment API, version 1 (paths under `/v1`).

Every request and response body is one of these models: frozen pydantic with unknown fields refused
and a `schema_version`, built on the artifact models of `spec` (`Task`, `Snapshot`, `ToolResult`,
`Reward`, ...). The typed client parses answers with the same classes, so server and client cannot
drift apart. MCP-format tool descriptors use the MCP field names (`inputSchema`, `readOnlyHint`) on the
wire and snake_case in Python.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.serve.errors import ErrorCode
from envfactory.spec import (
    JSONObject,
    JSONValue,
    Message,
    Reward,
    Snapshot,
    SpecModel,
    Task,
    ToolCall,
    ToolResult,
    ToolSpec,
)

API_PREFIX = "/v1"
Naming = Literal["qualified", "plain"]
Origin = Literal["http", "mcp"]


class ApiModel(SpecModel):
    """A top-level request or response body of API version 1."""

    schema_version: Literal[1] = 1


# -- errors ------------------------------------------------------------------------------------------------


class ErrorDetail(SpecModel):
    """What went wrong: a stable wire `code` and a message for people."""
    code: ErrorCode
    message: str = Field(description="what is wrong, in words that name the problem")


class ApiError(ApiModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


# -- sessions ------------------------------------------------------------------------------------------------


class CreateSessionRequest(ApiModel):
    """Open a session group: either `envs` (with optional initial states or snapshots) or a `task`.

    - `envs`: names of environments this server serves (see `GET /v1/envs`).
    - `initial_state`: env name → state JSON; environments not named start from their default seed.
    - `snapshots`: env name → `Snapshot` to start from (a state saved earlier with its hash and clock).
    - `task`: a Task (v2, or v1 migrated); its environments, initial states, seed and tool naming are
      used, and rewards are scored against it and no other (a session opened without a task cannot be
      scored).
    - `seed`: overrides the task's seed (default 0 without a task).
    - `naming`: `qualified` (`<env>__<tool>`, the default) or `plain`; a task brings its own.
    """

    envs: list[str] = Field(default_factory=list)
    initial_state: dict[str, JSONValue] = Field(default_factory=dict)
    snapshots: dict[str, Snapshot] = Field(default_factory=dict)
    task: Task | None = None
    seed: int | None = None
    naming: Naming | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CreateSessionRequest:
        if self.task is None and not self.envs:
            raise ValueError("name the environments (`envs`) or give a `task`")
        if self.task is not None:
            if self.envs or self.initial_state or self.snapshots:
                raise ValueError("with a `task`, environments and initial states come from the task; "
                                 "leave `envs`, `initial_state` and `snapshots` empty")
            if self.naming is not None and self.naming != self.task.tool_naming:
                raise ValueError(f"the task names tools {self.task.tool_naming!r}; `naming` cannot change that")
        both = sorted(set(self.initial_state) & set(self.snapshots))
        if both:
            raise ValueError(f"environments {both} have both an initial state and a snapshot")
        return self


class SessionInfo(ApiModel):
    """A session as the API describes it (answer of create, fork and `GET /sessions/{id}`)."""
    id: str
    envs: list[str] = Field(description="environment references name@version#hash12")
    seed: int
    naming: Naming
    origin: Origin = Field(description="`http` (created through this API) or `mcp` (an MCP client session)")
    task_id: str | None = None
    parent: str | None = Field(default=None, description="the session this one was forked from")
    tools: list[str] = Field(description="tool names as the agent sees them")
    steps: int = Field(description="calls made so far")


class SessionList(ApiModel):
    """The open sessions and the server's cap."""
    sessions: list[SessionInfo]
    max_sessions: int


class Closed(ApiModel):
    """The answer to closing a session."""
    session_id: str
    closed: Literal[True] = True


# -- tools ---------------------------------------------------------------------------------------------------


class OpenAIFunction(SpecModel):
    """The `function` part of an OpenAI tool: name, description and JSON-Schema parameters."""
    name: str
    description: str
    parameters: JSONObject


class OpenAITool(SpecModel):
    """A tool in OpenAI function-calling format."""

    type: Literal["function"] = "function"
    function: OpenAIFunction


class McpToolAnnotations(SpecModel):
    """MCP tool hints, derived from the tool's `effect` and `idempotent` flag."""

    read_only_hint: bool = Field(alias="readOnlyHint")
    destructive_hint: bool = Field(alias="destructiveHint")
    idempotent_hint: bool = Field(alias="idempotentHint")
    open_world_hint: bool = Field(alias="openWorldHint")


class McpTool(SpecModel):
    """A tool as an MCP `tools/list` answer describes it."""

    name: str
    description: str
    input_schema: JSONObject = Field(alias="inputSchema")
    output_schema: JSONObject | None = Field(default=None, alias="outputSchema")
    annotations: McpToolAnnotations


class ToolSpecList(ApiModel):
    """A session's tools as envfactory `ToolSpec`s."""
    tools: list[ToolSpec]


class OpenAIToolList(ApiModel):
    """A session's tools in OpenAI function-calling format."""
    tools: list[OpenAITool]


class McpToolList(ApiModel):
    """A session's tools in MCP `tools/list` form."""
    tools: list[McpTool]


# -- calls, state, rewards -------------------------------------------------------------------------------------


class CallRequest(ApiModel):
    """One tool call. `arguments` is a JSON object, or the raw argument text a model produced (malformed
    text becomes an `invalid_arguments` result the agent sees, not an HTTP error)."""

    tool: str
    arguments: JSONObject | str = Field(default_factory=dict)
    with_hash: bool = Field(default=False, description="also return the state hash after the call")


class CallResponse(ApiModel):
    """The result of one call as the agent sees it (a tool's error included) and, when asked, the state
    hash after it."""
    session_id: str
    result: ToolResult
    state_hash: str | None = None


class StateResponse(ApiModel):
    """A session's state: one `Snapshot` per environment and the combined hash."""
    session_id: str
    state_hash: str
    snapshots: dict[str, Snapshot]


class HashResponse(ApiModel):
    """A session's state hashes (combined and per environment) and its step count."""
    session_id: str
    state_hash: str = Field(description="canonical hash of the per-environment hashes")
    hashes: dict[str, str]
    steps: int


class RestoreRequest(ApiModel):
    """Replace a session's state with these snapshots (one per environment of the session)."""
    snapshots: dict[str, Snapshot]


class LogEntry(SpecModel):
    """One call of a session's log and its result."""
    call: ToolCall
    result: ToolResult


class LogResponse(ApiModel):
    """A session's call log, in call order."""
    session_id: str
    calls: list[LogEntry]


class RewardRequest(ApiModel):
    """Score the episode so far against the task the session was opened from. `task`, when given,
    must be that task (a request naming another one is refused with 409); `messages` (the
    conversation) let answer facts and `output_contains` checks be scored."""

    task: Task | None = None
    messages: list[Message] | None = None


class RewardResponse(ApiModel):
    """The reward of a session's episode against its task."""
    session_id: str
    task_id: str
    reward: Reward


# -- server --------------------------------------------------------------------------------------------------


class EnvSummary(SpecModel):
    """One environment the server serves: name, version, ref, domain, kind, tool count and description."""
    name: str
    version: str
    ref: str
    domain: str
    kind: str
    tools: int
    description: str


class EnvList(ApiModel):
    """The environments the server serves."""
    envs: list[EnvSummary]


class Health(ApiModel):
    """The server is up: its version, open sessions and limits."""
    status: Literal["ok"] = "ok"
    version: str
    sessions: int
    max_sessions: int
    idle_timeout_s: float
