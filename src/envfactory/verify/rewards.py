"""Task rewards (DESIGN §7): state first, then calls; penalties only lower, gates can zero.

Components of `score_episode` (all in [0, 1], or not scored):
- `final_state` (score): how much of the expected change the episode made. Per environment, the set of
  changes from the initial to the expected final state is compared with the set of changes the episode
  made (leaf paths with values, after removing *volatile* fields such as clock-stamped timestamps):
  |expected ∩ made| / |expected ∪ made|. Doing nothing scores 0; extra or wrong writes lower it. With
  only `expected_final_hash` the comparison is exact (1 or 0).
- `gold_calls` (score): share of gold calls matched, in order, by a successful call to the same tool
  with equal arguments (arguments in `ignored_arguments` are skipped; numbers equal within a relative
  tolerance). Not scored when the task has no gold calls.
- `checks` (score): share of the task's declarative checks that pass (`state_equals`, `call_made`,
  `output_contains` when messages are given). `rubric` checks need a judge and are not scored here.
- `malformed_calls` (factor): 1 - penalty × share of calls rejected as `invalid_arguments` or
  `unknown_tool`.
- `extra_writes` (factor): 1 - penalty × (successful writes that match no gold call / gold writes).
- `changed_state` (gate): 0 when the task expects a change and the episode left every environment as
  it started, so a no-op agent scores exactly 0 whatever its checks say.

Everything is a pure function of the task, the initial and final states and the call log; the same
inputs give the same reward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from envfactory.runtime import Environment, SessionGroup
from envfactory.runtime.diff import json_diff
from envfactory.spec import (
    CallMadeCheck,
    GoldCall,
    Message,
    OutputContainsCheck,
    Reward,
    RewardComponent,
    Snapshot,
    StateEqualsCheck,
    Task,
    ToolCall,
    ToolResult,
    declarative_model,
)
from envfactory.spec.declarative import AdjustEffect, CreateEffect, NowExpr, SetEffect

MALFORMED_KINDS = frozenset({"invalid_arguments", "unknown_tool"})


@dataclass(frozen=True, slots=True)
class RewardConfig:
    state_weight: float = 0.5
    calls_weight: float = 0.3
    checks_weight: float = 0.2
    malformed_penalty: float = 0.5
    extra_write_penalty: float = 0.5
    relative_tolerance: float = 1e-6
    volatile: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per environment, record fields ignored when states are compared (e.g. timestamps)."""


def volatile_fields(env: Environment) -> frozenset[str]:
    """Fields an environment stamps from the clock (declarative `now` assignments): they depend on when
    a write happened, not on what it did, so state comparison ignores them."""
    model = declarative_model(env.spec)
    if model is None:
        return frozenset()
    names: set[str] = set()
    for op in model.operations.values():
        names.update(name for name, expr in op.assign.items() if isinstance(expr, NowExpr))
        for effect in op.effects:
            if isinstance(effect, CreateEffect):
                names.update(name for name, expr in effect.values.items() if isinstance(expr, NowExpr))
            elif isinstance(effect, SetEffect) and isinstance(effect.value, NowExpr):
                names.add(effect.field)
            elif isinstance(effect, AdjustEffect):
                continue
    return frozenset(names)


def _strip(value: Any, volatile: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [_strip(v, volatile) for v in value]
    return value


def _numbers_close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return False


def json_equal(a: Any, b: Any, tolerance: float) -> bool:
    """Structural equality of JSON values with numbers compared within a relative tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if _numbers_close(a, b, tolerance):
        return True
    return type(a) is type(b) and a == b


def _changes(before: Any, after: Any) -> dict[str, Any]:
    """Leaf changes as path -> new value (`None` for removals)."""
    return {c.path: (c.new if c.op != "remove" else None) for c in json_diff(before, after)}


def _state_score(expected: Any, made: Any, initial: Any, tolerance: float) -> float:
    want = _changes(initial, expected)
    got = _changes(initial, made)
    if not want and not got:
        return 1.0
    matched = sum(1 for path, value in want.items() if path in got and json_equal(got[path], value, tolerance))
    union = len(want) + len(got) - matched
    return matched / union if union else 1.0


def _pointer_get(state: Any, pointer: str) -> tuple[bool, Any]:
    node = state
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def _call_matches(gold: GoldCall, call: ToolCall, tolerance: float) -> bool:
    if call.tool != gold.tool:
        return False
    ignored = set(gold.ignored_arguments)
    want = {k: v for k, v in gold.arguments.items() if k not in ignored}
    got = {k: v for k, v in call.arguments.items() if k not in ignored}
    return json_equal(want, got, tolerance)


def score_episode(
    task: Task,
    initial_states: Mapping[str, Any],
    final_states: Mapping[str, Any],
    final_hashes: Mapping[str, str],
    log: Sequence[tuple[ToolCall, ToolResult]],
    write_tools: frozenset[str],
    *,
    messages: Sequence[Message] | None = None,
    config: RewardConfig | None = None,
) -> Reward:
    """The reward of one episode, from data only (see the module docstring for the components)."""
    cfg = config or RewardConfig()
    tol = cfg.relative_tolerance
    envs = [ref.name for ref in task.envs]
    components: list[RewardComponent] = []

    # -- final state ----------------------------------------------------------------------------------
    per_env: list[float] = []
    changed = False
    for env in envs:
        volatile = cfg.volatile.get(env, frozenset())
        initial = _strip(initial_states.get(env), volatile)
        final = _strip(final_states.get(env), volatile)
        if not json_equal(initial, final, 0.0):
            changed = True
        if env in task.expected_final_state:
            expected = _strip(task.expected_final_state[env], volatile)
            per_env.append(_state_score(expected, final, initial, tol))
        elif env in task.expected_final_hash:
            per_env.append(1.0 if final_hashes.get(env) == task.expected_final_hash[env] else 0.0)
    state_score = sum(per_env) / len(per_env) if per_env else None
    components.append(RewardComponent(name="final_state", score=state_score, weight=cfg.state_weight,
                                      detail=f"{len(per_env)} environment(s) compared"))

    # -- gold calls -------------------------------------------------------------------------------------
    gold = task.gold_calls()
    successful = [call for call, result in log if result.error is None]
    used: set[int] = set()
    matched = 0
    cursor = 0
    for want in gold:
        for index in range(cursor, len(successful)):
            if index not in used and _call_matches(want, successful[index], tol):
                used.add(index)
                matched += 1
                cursor = index + 1
                break
    calls_score = matched / len(gold) if gold else None
    components.append(RewardComponent(name="gold_calls", score=calls_score, weight=cfg.calls_weight,
                                      detail=f"{matched}/{len(gold)} gold calls matched in order"))

    # -- checks -----------------------------------------------------------------------------------------
    outcomes: list[bool] = []
    agent_text = " ".join(m.content for m in messages or [] if m.role == "assistant").lower()
    for check in task.checks:
        if isinstance(check, StateEqualsCheck):
            found, value = _pointer_get(final_states.get(check.env), check.pointer)
            outcomes.append(found and json_equal(value, check.expected, tol))
        elif isinstance(check, CallMadeCheck):
            probe = GoldCall(tool=check.tool, arguments=check.arguments)
            outcomes.append(any(
                c.tool == check.tool and all(
                    k in c.arguments and json_equal(c.arguments[k], v, tol) for k, v in probe.arguments.items()
                ) for c in successful
            ))
        elif isinstance(check, OutputContainsCheck) and messages is not None:
            outcomes.append(check.text.lower() in agent_text)
    checks_score = sum(outcomes) / len(outcomes) if outcomes else None
    components.append(RewardComponent(name="checks", score=checks_score, weight=cfg.checks_weight,
                                      detail=f"{sum(outcomes)}/{len(outcomes)} checks passed"))

    # -- penalties and gate -----------------------------------------------------------------------------
    malformed = sum(1 for _, r in log if r.error is not None and r.error.kind in MALFORMED_KINDS)
    share = malformed / len(log) if log else 0.0
    components.append(RewardComponent(name="malformed_calls", role="factor",
                                      score=1.0 - cfg.malformed_penalty * share,
                                      detail=f"{malformed}/{len(log)} calls malformed"))
    gold_writes = sum(1 for g in gold if g.tool in write_tools)
    extra = sum(1 for i, c in enumerate(successful) if c.tool in write_tools and i not in used)
    extra_share = min(1.0, extra / max(1, gold_writes))
    components.append(RewardComponent(name="extra_writes", role="factor",
                                      score=1.0 - cfg.extra_write_penalty * extra_share,
                                      detail=f"{extra} successful write(s) outside the gold calls"))
    expects_change = any(g.tool in write_tools for g in gold) or any(
        not json_equal(_strip(task.expected_final_state[e], cfg.volatile.get(e, frozenset())),
                       _strip(initial_states.get(e), cfg.volatile.get(e, frozenset())), 0.0)
        for e in task.expected_final_state
    )
    gate = None if not expects_change else (1.0 if changed else 0.0)
    components.append(RewardComponent(name="changed_state", role="factor", score=gate,
                                      detail="the task expects writes; the episode must change state"))
    return Reward.combine(components)


def task_reward(
    task: Task,
    group: SessionGroup,
    *,
    initial: Mapping[str, Snapshot] | None = None,
    messages: Sequence[Message] | None = None,
    config: RewardConfig | None = None,
) -> Reward:
    """Reward of the episode a session group has run for `task`.

    `initial`: the snapshots the episode started from when they are not the task's `initial_state`.
    The group must name tools the way the task does (`qualified` or `plain`). Volatile fields default
    to what each environment stamps from the clock.
    """
    if group.naming != task.tool_naming:
        raise ValueError(f"the task names tools {task.tool_naming!r} but the group {group.naming!r}")
    sessions = group.sessions
    missing = sorted({ref.name for ref in task.envs} - set(sessions))
    if missing:
        raise ValueError(f"the session group lacks environments of the task: {missing}")
    initial_states = {env: snap.state for env, snap in (initial or {}).items()}
    for env in sessions:
        initial_states.setdefault(env, task.initial_state.get(env))
        if initial_states[env] is None:
            initial_states[env] = sessions[env].env.default_state()
    final_states = {env: s.state_json() for env, s in sessions.items()}
    final_hashes = {env: s.hash() for env, s in sessions.items()}
    write_tools = frozenset(
        t.name for t in group.tools if (route := group.route(t.name)) is not None
        and sessions[route[0]].env.tools[route[1]].writes
    )
    cfg = config or RewardConfig()
    if not cfg.volatile:
        cfg = replace(cfg, volatile={env: volatile_fields(s.env) for env, s in sessions.items()})
    return score_episode(task, initial_states, final_states, final_hashes, group.log, write_tools,
                         messages=messages, config=cfg)

