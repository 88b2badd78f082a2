"""Trajectory v1: one episode of an agent in a session group, with results, state hashes, the state diff
of every call that changed state, and reward.

`Trajectory.state_diffs` is recorded when the episode is run (the viewer cannot replay), one
`CallStateDiff` per call that changed its environment's state, in call order. It is left out of the JSON
when empty, so trajectories without writes, and those recorded before the field existed, keep their bytes
and ids.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel
from envfactory.spec.diff import StateChange
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


class CallStateDiff(SpecModel):
    """What one state-changing tool call did to its environment's state: `call_id` is the call's id (as
    its `ToolCall` and `ToolResult` carry it), `env` the environment whose state changed, and `changes`
    the structured diff from the state before the call to the state after it (declarative environments:
    `/collections/<name>/<key>` for a record added or removed, a path below it for a changed field)."""

    call_id: str
    env: str
    changes: list[StateChange] = Field(min_length=1)


def _empty(value: list[CallStateDiff]) -> bool:
    return not value


REFUSED_CALL_PREFIX = "refused_"
"""Call ids the agent loop gives calls it refused (a tool not offered at that point): they never reached
an environment, so they have no entry in `Trajectory.state_hashes`."""


class Trajectory(SpecModel):
    """One episode as recorded: the task, pinned environments, seed, messages, the state hash after each
    call and at the end, the state diffs of writes, how it ended, who produced it and its reward."""
    schema_version: Literal[1] = 1
    id: str
    task_id: str = ""
    envs: list[EnvRef]
    seed: int
    messages: list[Message]
    state_hashes: list[str] = Field(
        default_factory=list, description="group state hash after each tool call that reached the "
        "environments, in order (calls the agent loop refused, ids starting with `REFUSED_CALL_PREFIX`, have none)"
    )
    final_state_hashes: dict[str, str] = Field(default_factory=dict)
    state_diffs: list[CallStateDiff] = Field(
        default_factory=list, exclude_if=_empty,
        description="the state diff of every call that changed state, in call order (omitted when empty)",
    )
    termination: TerminationReason
    producer: Producer = Field(default_factory=Producer)
    reward: Reward | None = None

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the messages made, in order."""
        return [call for message in self.messages for call in message.tool_calls]
