"""Realising a plan: ground the states, load them in a session group and run the chains' calls.

Contract:
- A `Plan` is one or two chains (one per environment) with the shared user-level entity that ties them
  together (multi-environment tasks) and whether the task only reads.
- `realise(plan, rng, ...)` grounds one initial state per environment (`synth.ground`), loads them in a
  session group (a state that does not load is `Dropped` at `grounded` with the engine's reason), then
  binds and runs every step in order. A call that fails makes the attempt fail; the chain is re-bound
  from a fork of the untouched group with a fresh draw, up to `attempts` times, then `Dropped` at
  `executed` with the last failure's error kind. Each executed step keeps the state diff of its call
  (`runtime.WriteDiffs`), which the gold-path trajectory records.
- Tool names in the group are the environments' own (`plain`) when they do not collide, else
  `<env>__<tool>` (`qualified`); a group that cannot name its tools is dropped at `grounded`.
- A multi-environment plan must end with the shared value in a call of every environment; otherwise it
  is dropped (`no shared entity bound`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from envfactory.errors import SpecError
from envfactory.runtime import SessionGroup, WriteDiffs, open_group
from envfactory.runtime.group import Naming
from envfactory.spec import CallStateDiff, Chain, ToolCall, ToolResult
from envfactory.spec.synth import DropStage
from envfactory.synth.bind import BindContext, BindError, bind_step
from envfactory.synth.envs import SynthEnv
from envfactory.synth.ground import GroundingError, ground_state, touched_collections


@dataclass(frozen=True, slots=True)
class ChainPart:
    """One environment's chain of a plan."""

    senv: SynthEnv
    chain: Chain


@dataclass(frozen=True, slots=True)
class Plan:
    """What a task will do: one chain per environment, the shared user-level value by entity kind that
    ties a multi-environment task together (`shared_kind`: its kind; None for one environment), and
    whether the task only reads."""

    parts: tuple[ChainPart, ...]
    shared: dict[str, Any] = field(default_factory=dict)
    shared_kind: str | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class GoldStep:
    """One executed gold call: environment, the environment's tool name, the group's tool name, the
    arguments with their sources, and the call and result as the group logged them."""

    env: str
    tool: str
    group_tool: str
    arguments: dict[str, Any]
    sources: dict[str, str]
    call: ToolCall
    result: ToolResult
    global_step: int
    """position of the producing chain's step 0 in the gold list (sources `step:<k>` are chain-local)"""
    diff: CallStateDiff | None = None
    """what the call did to its environment's state (None: it changed nothing)"""


@dataclass(frozen=True, slots=True)
class Realised:
    """A plan that ran: the group's tool naming, the initial and final states (as the environments hold
    them) with their hashes, the executed gold steps, the state hash after each step, and the attempts
    it took (1 when the first binding ran)."""

    plan: Plan
    naming: Naming
    initial_states: dict[str, Any]
    initial_hashes: dict[str, str]
    steps: list[GoldStep]
    state_hashes: list[str]
    final_states: dict[str, Any]
    final_hashes: dict[str, str]
    attempts: int


@dataclass(frozen=True, slots=True)
class Dropped:
    """Why a candidate was dropped: the funnel stage, a short id-free reason (counted), a specific detail,
    and the environments involved."""

    stage: DropStage
    reason: str
    detail: str = ""
    envs: tuple[str, ...] = ()


def group_naming(parts: tuple[ChainPart, ...]) -> Naming:
    """`plain` when no two environments share a tool name, else `qualified`."""
    seen: set[str] = set()
    for part in parts:
        names = set(part.senv.env.tools)
        if names & seen:
            return "qualified"
        seen |= names
    return "plain"


def _attempt(plan: Plan, base: SessionGroup, naming: Naming, task_keys: dict[str, dict[str, list[str]]],
             rng: random.Random) -> tuple[SessionGroup, list[GoldStep], list[str]] | Dropped:
    group = base.fork()
    writes = WriteDiffs(group)
    try:
        return _run_chains(plan, group, writes, naming, task_keys, rng)
    finally:
        writes.close()


def _run_chains(plan: Plan, group: SessionGroup, writes: WriteDiffs, naming: Naming,
                task_keys: dict[str, dict[str, list[str]]], rng: random.Random,
                ) -> tuple[SessionGroup, list[GoldStep], list[str]] | Dropped:
    steps: list[GoldStep] = []
    hashes: list[str] = []
    for part in plan.parts:
        env = part.senv.name
        outputs: list[Any] = []
        offset = len(steps)
        session = group.sessions[env]
        for step in part.chain.steps:
            ctx = BindContext(state=session.state_json(), task_keys=task_keys.get(env, {}), shared=plan.shared, rng=rng)
            try:
                bound = bind_step(part.senv, step, outputs, ctx)
            except BindError as exc:
                return Dropped("executed", f"unbound: {exc.reason}", str(exc))
            name = bound.tool if naming == "plain" else f"{env}__{bound.tool}"
            result, diff = writes.call(name, bound.arguments)
            if result.error is not None:
                return Dropped("executed", f"call failed: {result.error.kind}", f"{name}: {result.error.message}"[:300])
            call = group.log[-1][0]
            steps.append(GoldStep(env=env, tool=bound.tool, group_tool=name, arguments=call.arguments,
                                  sources=bound.sources, call=call, result=result, global_step=offset, diff=diff))
            outputs.append(result.output)
            hashes.append(group.hash())
    return group, steps, hashes


def _shared_bound(plan: Plan, steps: list[GoldStep]) -> bool:
    if plan.shared_kind is None:
        return True
    value = plan.shared[plan.shared_kind]
    parts = value.split(" ") if isinstance(value, str) and plan.shared_kind == "person" else []
    for part in plan.parts:  # the value, or for a person their first or last name
        if not any(s.env == part.senv.name and (value in s.arguments.values() or any(p in s.arguments.values() for p in parts))
                   for s in steps):
            return False
    return True


def realise(plan: Plan, rng: random.Random, *, attempts: int, per_collection: int, seed: int) -> Realised | Dropped:
    """Ground, load and run the plan (see the module contract)."""
    states: dict[str, Any] = {}
    task_keys: dict[str, dict[str, list[str]]] = {}
    for part in plan.parts:
        tools = [part.senv.tool_name(t) for t in part.chain.tools]
        try:
            states[part.senv.name], task_keys[part.senv.name] = ground_state(
                part.senv, touched_collections(part.senv, tools), rng, per_collection, plan.shared)
        except GroundingError as exc:
            return Dropped("grounded", "no record to reference", str(exc))
    naming = group_naming(plan.parts)
    try:
        base = open_group([p.senv.env for p in plan.parts], states, seed=seed, naming=naming)
    except SpecError as exc:
        reason = "tool names too long" if "does not match" in str(exc) else "state does not load"
        return Dropped("grounded", reason, str(exc).splitlines()[0][:300])
    initial_hashes = base.hashes()
    # the state as the environment holds it (counters of every collection, normalised records): what
    # rewards compare final states with
    states = {env: session.state_json() for env, session in base.sessions.items()}
    last: Dropped | None = None
    for attempt in range(attempts):
        outcome = _attempt(plan, base, naming, task_keys, rng)
        if isinstance(outcome, Dropped):
            last = outcome
            continue
        group, steps, hashes = outcome
        if not _shared_bound(plan, steps):
            last = Dropped("executed", "no shared entity bound", f"{plan.shared_kind} not in every environment's calls")
            continue
        return Realised(plan=plan, naming=naming, initial_states=states, initial_hashes=initial_hashes, steps=steps,
                        state_hashes=hashes, final_states={e: s.state_json() for e, s in group.sessions.items()},
                        final_hashes=group.hashes(), attempts=attempt + 1)
    assert last is not None
    return last

