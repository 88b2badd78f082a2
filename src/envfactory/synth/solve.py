"""Solver attempts and selection by verification, through the one agent loop (`agent.run_episode`).

Contract:
- `solver_task(task, texts, ...)` is the task as a solver sees it: one scripted turn with the query
  (`sft-single`, `rl`), or the gold chain split into turns voiced by the user simulator (`sft-conv`),
  each turn holding its own gold calls (the agent's: the person's own steps, `synth.person`, are given to
  the user simulator through `user_tools` and the turn's text). The split is seeded: walk the chain and close a turn when it holds
  `max_turn_tools` calls, or with probability (calls in the turn) / `max_turn_tools` (METHOD §6.1).
- `attempt` opens a fresh session group on the task's initial state for every attempt (attempts never
  share state), runs the loop, and scores it with `verify.rewards.task_reward` — live final state and
  calls. `verified` means the reward reached the threshold; nothing else makes an attempt verified.
- An attempt whose environment fails (the group cannot open, a framework error ends the episode) is
  recorded with `failure` and scores nothing: never a silent zero.
- Every attempt runs with `SOLVER_POLICY` as the agent's policy: a user who asks to see records expects
  the answer to say what the tools returned, and small models otherwise describe the tool instead.
- `select` picks the verified attempt with the highest reward; among equal rewards one the LLM judge
  passed (`synth.judge`, read-only tasks only) before one it did not, then the earliest; None when no
  attempt is verified. A judge's pass alone never makes an attempt a candidate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

from envfactory.agent import AgentSettings, UserSimulator, run_episode
from envfactory.errors import EnvFactoryError
from envfactory.llm import LLMClient
from envfactory.runtime import Environment, open_group
from envfactory.spec import GoldCall, ScriptedUser, SimulatedUser, Task, Turn
from envfactory.spec.synth_trajectories import SolverAttempt
from envfactory.verify.rewards import task_reward

EnvLoader = Callable[[str], Environment]

SOLVER_POLICY = (
    "Do only what the user asked; call no tool they did not ask for. When you answer after reading tool "
    "results, write out the values from those results that the user asked to see."
)


def split_turns(calls: Sequence[GoldCall], max_turn_tools: int, rng: random.Random) -> list[list[GoldCall]]:
    """The gold calls in consecutive turns (see the module docstring)."""
    turns: list[list[GoldCall]] = []
    current: list[GoldCall] = []
    for call in calls:
        current.append(call)
        if len(current) >= max_turn_tools or rng.random() < len(current) / max_turn_tools:
            turns.append(current)
            current = []
    if current:
        turns.append(current)
    return turns


def solver_task(task: Task, turn_texts: Sequence[str], segments: Sequence[Sequence[GoldCall]], *,
                conversational: bool, persona: str, known_info: Sequence[str], user_tools: Sequence[str] = ()) -> Task:
    """`task` with its turns replaced by the query turns; `segments[i]` are turn i's gold calls (the
    agent's). `user_tools`, when given, are the person's tools (`synth.person`): the task's `user_tools`,
    never offered to the agent, given to the user simulator."""
    if len(turn_texts) != len(segments):
        raise ValueError("one text per turn segment is needed")
    turns = []
    for index, (text, calls) in enumerate(zip(turn_texts, segments, strict=True)):
        user: ScriptedUser | SimulatedUser
        if conversational:
            user = SimulatedUser(instructions=text, known_info=known_info[index] if index < len(known_info) else "",
                                 persona=persona)
        else:
            user = ScriptedUser(text=text)
        turns.append(Turn(user=user, gold_calls=list(calls)))
    fields = {**task.model_dump(exclude={"id", "turns"}), "turns": [t.model_dump() for t in turns]}
    if user_tools:
        fields["user_tools"] = sorted(user_tools)
    return Task.create(**fields)


def attempt(solver: LLMClient, task: Task, envs: Sequence[Environment], *, index: int, seed: int,
            query: Literal["refined", "explicit"], settings: AgentSettings, threshold: float, user: UserSimulator | None) -> SolverAttempt:
    """One solver attempt in a fresh session group, scored from live state (see the module docstring)."""
    try:
        group = open_group(list(envs), task.initial_state, seed=task.seed, naming=task.tool_naming)
    except EnvFactoryError as exc:
        return SolverAttempt(attempt=index, seed=seed, query=query,
                             failure=f"environment did not open: {exc}")
    with group:
        episode = run_episode(solver, group, task, settings, seed=seed, user=user, instructions=SOLVER_POLICY,
                              trajectory_id=f"solve-{task.id[:16]}-{index}")
        reward = task_reward(task, group, messages=episode.trajectory.messages)
    trajectory = episode.trajectory.model_copy(update={"reward": reward})
    failure = ""
    if episode.trajectory.termination == "error":
        failure = "; ".join(f.reason for f in episode.failures[-1:]) or "the episode ended with an error"
    verified = not failure and reward.total >= threshold - 1e-9
    return SolverAttempt(
        attempt=index, seed=seed, query=query, reward=reward, verified=verified,
        termination=str(trajectory.termination), tool_calls=len(trajectory.tool_calls()),
        llm_calls=episode.llm_calls, failure=failure, trajectory=trajectory,
    )


def _rank(candidate: SolverAttempt) -> tuple[float, bool]:
    judged = candidate.judge is not None and candidate.judge.verdict == "pass"
    return (candidate.reward.total if candidate.reward is not None else 0.0, judged)


def select(attempts: Sequence[SolverAttempt]) -> int | None:
    """The index (into `attempts`) of the best verified attempt, or None (see the module docstring)."""
    best: int | None = None
    for position, candidate in enumerate(attempts):
        if not candidate.verified or candidate.reward is None:
            continue
        if best is None or _rank(attempts[best]) < _rank(candidate):
            best = position
    return best
