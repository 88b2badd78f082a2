"""Trajectory v1: one episode of an agent in a session group, with results, state hashes and reward."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel
from envfactory.spec.reward import Reward
from envfactory.spec.task import EnvRef
from envfactory.spec.tool import ToolCall, ToolResult


class TerminationReason(StrEnum):
    """Why an episode ended: `agent_stop`/`user_stop` end the task; the others are truncations."""

    AGENT_STOP = "agent_stop"
    USER_STOP = "user_stop"
    MAX_TURNS = "max_turns"
    MAX_STEPS = "max_steps"
    TIMEOUT = "timeout"
    ERROR = "error"


class Message(SpecModel):
    """A chat message. Assistant messages may carry tool calls; tool messages carry one result."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    result: ToolResult | None = None


class Producer(SpecModel):
    """What produced the trajectory: model, provider, sampling, seed and code version."""

    model: str = ""
    provider: str = ""
    seed: int = 0
    temperature: float | None = None
    code_version: str = ""
    git_commit: str | None = None


class Trajectory(SpecModel):
    schema_version: Literal[1] = 1
    id: str
    task_id: str = ""
    envs: list[EnvRef]
    seed: int
    messages: list[Message]
    state_hashes: list[str] = Field(
        default_factory=list, description="group state hash after each tool call, in order"
    )
    final_state_hashes: dict[str, str] = Field(default_factory=dict)
    termination: TerminationReason
    producer: Producer = Field(default_factory=Producer)
    reward: Reward | None = None

    def tool_calls(self) -> list[ToolCall]:
        return [call for message in self.messages for call in message.tool_calls]
