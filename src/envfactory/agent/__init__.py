"""`agent`: the single tool-calling agent loop and the user simulator (DESIGN §2, §6). Both run over a
runtime `SessionGroup`; imports `spec`, `runtime` and `llm` only.

- `run_episode(client, group, task, settings, seed=...)` -> `Episode` (a `Trajectory` plus the failed
  steps with their reasons); `AgentSettings` chooses loop-driven (`decide`) or native tool calling.
- `UserSimulator` plays a task's `SimulatedUser` with an LLM and ends with `STOP_TOKEN`.
"""

from envfactory.agent.loop import (
    ANSWER,
    AgentSettings,
    Episode,
    FailureKind,
    StepFailure,
    decision_schema,
    run_episode,
)
from envfactory.agent.prompts import prompt_hash
from envfactory.agent.user import STOP_TOKEN, UserReply, UserSettings, UserSimulator

__all__ = [
    "ANSWER",
    "STOP_TOKEN",
    "AgentSettings",
    "Episode",
    "FailureKind",
    "StepFailure",
    "UserReply",
    "UserSettings",
    "UserSimulator",
    "decision_schema",
    "prompt_hash",
    "run_episode",
]
