"""Task rewards (DESIGN §7): state first, then calls; penalties only lower, gates can zero.

A reward is the list of named components of the reward spec, each computed by its own function
(`verify.reward_components`), combined by `Reward.combine`: `score` components are averaged with their
weights and `factor` components (penalties, gates) multiply that average. The list comes from
`RewardConfig.terms` when the caller sets it, else from the task's `reward.components`, else
`DEFAULT_TERMS`; the task's `reward.state_weight` / `calls_weight` / `checks_weight` /
`relative_tolerance` override those of the defaults. The built-in components:

- `final_state` (score, 0.5): how much of the expected change the episode made. Per environment, the
  set of changes from the task's initial to its expected final state is compared with the set of changes
  the episode made from where it started (leaf paths with values, after removing *volatile* fields such
  as clock-stamped timestamps): |expected ∩ made| / |expected ∪ made|. Doing nothing scores 0; extra or
  wrong writes lower it; a state put in place by a restore is not "made". With only
  `expected_final_hash` the comparison is exact (1 or 0).
- `gold_calls` (score, 0.3): share of gold calls matched, in order, by a successful call to the same tool
  with equal arguments (arguments in `ignored_arguments` are skipped; numbers equal within a relative
  tolerance). Not scored when the task has no gold calls.
- `checks` (score, 0.2): share of the task's declarative checks that pass (`state_equals`, `call_made`,
  `output_contains` when messages are given). `rubric` checks need a judge and are not scored here.
- `answer_facts` (score, 0.2): share of the turns' `expected_outputs` the agent stated (needs messages).
- `malformed_calls` (factor): 0.8 ** (calls rejected as `invalid_arguments` or `unknown_tool`).
- `failed_writes` (factor): 0.8 ** (state-changing calls that failed otherwise), so guessing costs.
- `extra_writes` (factor): 0.7 ** (successful writes that match no gold call), no floor.
- `changed_state` (gate): 0 when the task expects a change and the episode left every environment as
  it started, so a no-op agent scores exactly 0 whatever its checks say.
- `answered` (gate): for a task that expects no change, the answer's facts (recall, diluted by other
  state values named and by alternatives to a fact); 0 without an answer, so a read-only task never
  scores for doing nothing.

Calls of the task's user-side tools (`Task.user_tools`) are the user simulator's: the agent loop never
runs the agent's calls of them. They count in the state (`final_state`, `changed_state`) like any
other change, and never in the three penalties above, which count the agent's calls.

Defaults and their reasons: docs/rewards.md. Everything is a pure function of the task, the initial and final states and the call log; the same
inputs give the same reward. An unknown component name raises `ValueError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from envfactory.runtime import Environment, SessionGroup
from envfactory.spec import (
    Message,
    Reward,
    RewardTerm,
    Snapshot,
    Task,
    ToolCall,
    ToolResult,
    declarative_model,
)
from envfactory.spec.declarative import AdjustEffect, CreateEffect, NowExpr, SetEffect
from envfactory.verify.reward_components import (
    COMPONENTS,
    DEFAULT_TERMS,
    MALFORMED_KINDS,
    ComponentFn,
    EpisodeFacts,
    json_equal,
)

__all__ = ["COMPONENTS", "DEFAULT_TERMS", "MALFORMED_KINDS", "RewardConfig", "json_equal", "reward_terms",
           "score_episode", "task_reward", "volatile_fields"]


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """How rewards are computed, beyond what the task's reward spec says.

    - `terms`: the component list to use instead of the task's (None: the task's, else the defaults).
    - `components`: extra or replacement component functions by name (they win over the built-ins).
    - `relative_tolerance`: numbers compare equal within it (the task's spec overrides it).
    - `volatile`: per environment, record fields ignored when states are compared (e.g. timestamps).
    """

    terms: tuple[RewardTerm, ...] | None = None
    components: Mapping[str, ComponentFn] = field(default_factory=dict)
    relative_tolerance: float = 1e-6
    volatile: Mapping[str, frozenset[str]] = field(default_factory=dict)


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


def reward_terms(task: Task, config: RewardConfig) -> tuple[RewardTerm, ...]:
    """The component list that scores `task`: the config's, else the task's, else the defaults; the
    task's legacy weights (`state_weight`, `calls_weight`, `checks_weight`) override theirs."""
    if config.terms is not None:
        return config.terms
    spec = task.reward
    terms = tuple(spec.components) if spec.components is not None else DEFAULT_TERMS
    weights = {"final_state": spec.state_weight, "gold_calls": spec.calls_weight, "checks": spec.checks_weight}
    return tuple(term.model_copy(update={"weight": weights[term.name]}) if weights.get(term.name) is not None
                 else term for term in terms)


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
    task_initial_states: Mapping[str, Any] | None = None,
) -> Reward:
    """The reward of one episode, from data only (see the module docstring for the components).

    `initial_states`: where the episode started; `task_initial_states`: where the task starts, when the
    episode started elsewhere (after a restore): expected changes are measured from it, made ones from
    `initial_states`."""
    cfg = config or RewardConfig()
    tolerance = task.reward.relative_tolerance
    facts = EpisodeFacts(
        task=task, initial_states=initial_states, final_states=final_states, final_hashes=final_hashes,
        log=log, write_tools=write_tools, messages=messages,
        tolerance=cfg.relative_tolerance if tolerance is None else tolerance, volatile=cfg.volatile,
        task_initial_states=task_initial_states,
    )
    functions = {**COMPONENTS, **cfg.components}
    components = []
    for term in reward_terms(task, cfg):
        function = functions.get(term.name)
        if function is None:
            raise ValueError(f"unknown reward component {term.name!r}; known: {sorted(functions)}")
        components.append(function(facts, term))
    return Reward.combine(components)


def task_reward(
    task: Task,
    group: SessionGroup,
    *,
    initial: Mapping[str, Snapshot] | None = None,
    restart: Mapping[str, Snapshot] | None = None,
    messages: Sequence[Message] | None = None,
    config: RewardConfig | None = None,
) -> Reward:
    """Reward of the episode a session group has run for `task`.

    `initial`: the task's start as the environments hold it (default: the task's `initial_state`).
    `restart`: the state the episode was restored to, when it was: the reward then counts only the
    changes made after it, so a restore never earns reward (the call log is scored whole).
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
    episode_start = {**initial_states, **{env: snap.state for env, snap in (restart or {}).items()}}
    final_states = {env: s.state_json() for env, s in sessions.items()}
    final_hashes = {env: s.hash() for env, s in sessions.items()}
    write_tools = frozenset(
        t.name for t in group.tools if (route := group.route(t.name)) is not None
        and sessions[route[0]].env.tools[route[1]].writes
    )
    cfg = config or RewardConfig()
    if not cfg.volatile:
        cfg = replace(cfg, volatile={env: volatile_fields(s.env) for env, s in sessions.items()})
    return score_episode(task, episode_start, final_states, final_hashes, group.log, write_tools,
                         messages=messages, config=cfg, task_initial_states=initial_states)

