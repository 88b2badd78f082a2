"""SFT rows for `train demo-data`, through the `export` layer's own converters.

A row is the OpenAI chat form the export writes (`messages` with tool calls whose arguments are JSON
text, and `tools`), made by `export.conversation.conversation` and `export.formats.task_tools`; the tools
are those the task's first turn offers, the same set a GRPO rollout of the task is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envfactory.export.conversation import conversation
from envfactory.export.formats import task_tools
from envfactory.spec import EnvSpec, JSONObject, JSONValue, Task, Trajectory
from envfactory.train.data import SYSTEM_PROMPT


def sft_records(tasks: Sequence[Task], trajectories: Sequence[Trajectory], envs: Mapping[str, EnvSpec],
                system_prompt: str = SYSTEM_PROMPT) -> list[JSONObject]:
    """One OpenAI chat record per (task, trajectory) pair."""
    records: list[JSONObject] = []
    for task, trajectory in zip(tasks, trajectories, strict=True):
        messages: list[JSONValue] = [m.model_dump(mode="json", exclude_none=True)
                                     for m in conversation(trajectory, system_prompt, "drop")]
        tools: list[JSONValue] = list(task_tools(task, envs, 0))
        records.append({"messages": messages, "tools": tools})
    return records
