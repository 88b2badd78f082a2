"""The person's own steps of a gold chain: user-side tools in synthesised tasks (issue 22, deliverable 3).

Contract:
- Which calls are the person's is read from the environments' specs, nothing else: a tool an
  environment marks in `EnvMeta.user_tools` (a confirmation, approval or verification the service
  requires from the account holder) is the person's. No list is kept here and no name is guessed: the
  API descriptions the shipped library was built from never say which operations only the account
  holder may perform, so the shipped library marks none and its tasks carry none; an environment that
  marks some (hand-written, or built by a later compiler) gets them.
- `person_tools(task, envs)` gives those tools under the names the task uses (`<env>__<tool>` or plain).
- `PersonSplit.of(calls, tools)` splits a chain into the agent's calls and the person's; each person's
  call belongs to the turn of the agent's call just before it (the first turn when none is before it):
  the person acts once the agent has done its part.
- `person_note(task, calls, specs)` is the line added to a simulated turn's hidden intent telling the
  user simulator what only it can do, with which tools and values (`queries.describe_goal`: values the
  chain produces are left out — the person learns them from the agent). Deterministic text, no model;
  it is part of the task's turns and so of the task's content hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envfactory.runtime import Environment
from envfactory.spec import GoldCall, Task, ToolSpec
from envfactory.synth.queries import describe_goal

PERSON_STEPS = (
    "Part of this only you can do yourself, with your own tools (the agent cannot do it for you). "
    "Do it once the agent has done its part or asks you to, then tell the agent:\n{steps}"
)


def person_tools(task: Task, envs: Sequence[Environment]) -> frozenset[str]:
    """The tools the task's environments mark as the person's (`EnvMeta.user_tools`), named as the task
    names tools."""
    names: set[str] = set()
    for env in envs:
        for tool in env.spec.meta.user_tools:
            names.add(f"{env.name}__{tool}" if task.tool_naming == "qualified" else tool)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class PersonSplit:
    """A gold chain split between the agent and the person (see the module docstring)."""

    agent: list[GoldCall]
    person: list[tuple[int, GoldCall]]
    """The person's calls, each with the index (into `agent`) of the agent's call before it (-1: none)."""

    @classmethod
    def of(cls, calls: Sequence[GoldCall], tools: frozenset[str]) -> PersonSplit:
        """Split `calls` by `tools` (the person's)."""
        agent: list[GoldCall] = []
        person: list[tuple[int, GoldCall]] = []
        for call in calls:
            if call.tool in tools:
                person.append((len(agent) - 1, call))
            else:
                agent.append(call)
        return cls(agent=agent, person=person)

    def per_turn(self, segments: Sequence[Sequence[GoldCall]]) -> list[list[GoldCall]]:
        """The person's calls of each turn, `segments` being the agent's calls split into turns."""
        turn_of: list[int] = [index for index, segment in enumerate(segments) for _ in segment]
        out: list[list[GoldCall]] = [[] for _ in segments]
        for before, call in self.person:
            out[turn_of[before] if before >= 0 else 0].append(call)
        return out


def person_note(task: Task, calls: Sequence[GoldCall], specs: Mapping[str, ToolSpec]) -> str:
    """The hidden-intent line for the person's `calls` of one turn ("" when there are none)."""
    if not calls:
        return ""
    # without the task's checks: the facts an answer must state are not the person's to know
    return PERSON_STEPS.format(steps=describe_goal(task.model_copy(update={"checks": []}), calls, specs))
