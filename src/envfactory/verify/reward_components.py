"""The reward's named components (DESIGN §7): one function per component, looked up by name.

Contract:
- A component function takes the scored episode (`EpisodeFacts`, read-only data) and its `RewardTerm`
  (weight and parameters from the reward spec) and returns one `RewardComponent` in [0, 1] or "not
  scored". It reads nothing else, so components are independent: one can be added, replaced or
  re-weighted without touching the others.
- `COMPONENTS` maps each built-in name to its function; `DEFAULT_TERMS` is the default list, in the
  order the components appear in a reward. A caller adds or replaces a component by passing its own
  functions (`RewardConfig.components`) and naming them in the terms (the task's `reward.components`
  or `RewardConfig.terms`).
- Pure and deterministic: the same facts give the same components.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from envfactory.runtime.diff import json_diff
from envfactory.spec import (
    CallMadeCheck,
    GoldCall,
    Message,
    OutputContainsCheck,
    RewardComponent,
    RewardTerm,
    StateEqualsCheck,
    Task,
    ToolCall,
    ToolResult,
)

MALFORMED_KINDS = frozenset({"invalid_arguments", "unknown_tool"})


# -- JSON helpers ---------------------------------------------------------------------------------------------
def strip_volatile(value: Any, volatile: frozenset[str]) -> Any:
    """`value` without the record fields named in `volatile`, at any depth."""
    if isinstance(value, dict):
        return {k: strip_volatile(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [strip_volatile(v, volatile) for v in value]
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


def call_matches(gold: GoldCall, call: ToolCall, tolerance: float) -> bool:
    """`call` is `gold`'s tool with equal arguments, ignoring the gold call's masked arguments."""
    if call.tool != gold.tool:
        return False
    ignored = set(gold.ignored_arguments)
    want = {k: v for k, v in gold.arguments.items() if k not in ignored}
    got = {k: v for k, v in call.arguments.items() if k not in ignored}
    return json_equal(want, got, tolerance)


# -- the scored episode ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeFacts:
    """Everything a component may read about one episode. Derived facts shared by several components
    (the in-order gold matching, the stripped states) are computed once, on first use."""

    task: Task
    initial_states: Mapping[str, Any]
    final_states: Mapping[str, Any]
    final_hashes: Mapping[str, str]
    log: Sequence[tuple[ToolCall, ToolResult]]
    write_tools: frozenset[str]
    messages: Sequence[Message] | None = None
    tolerance: float = 1e-6
    volatile: Mapping[str, frozenset[str]] = field(default_factory=dict)
    task_initial_states: Mapping[str, Any] | None = None
    """Where the task starts (None: where the episode started). Expected changes are measured from
    here, made changes from `initial_states`: after a restore the episode starts from the restored
    state, so what the restore put there is not credited."""

    @property
    def task_start(self) -> Mapping[str, Any]:
        """The states expected changes are measured from."""
        return self.initial_states if self.task_initial_states is None else self.task_initial_states

    @property
    def env_names(self) -> list[str]:
        """The task's environments, in order."""
        return [ref.name for ref in self.task.envs]

    def stripped(self, states: Mapping[str, Any], env: str) -> Any:
        """`states[env]` without the environment's volatile fields."""
        return strip_volatile(states.get(env), self.volatile.get(env, frozenset()))

    @cached_property
    def gold(self) -> list[GoldCall]:
        """The task's gold calls, every turn in order."""
        return self.task.gold_calls()

    @cached_property
    def successful(self) -> list[ToolCall]:
        """The calls that succeeded, in order."""
        return [call for call, result in self.log if result.error is None]

    @cached_property
    def gold_outputs(self) -> list[Any]:
        """Outputs of the successful calls that matched a gold call (what the agent legitimately read)."""
        outputs = [result.output for _, result in self.log if result.error is None]
        return [outputs[i] for i in sorted(self.gold_matches)]

    @cached_property
    def gold_matches(self) -> frozenset[int]:
        """Indices into `successful` of the calls that matched a gold call, matched in order."""
        used: set[int] = set()
        cursor = 0
        for want in self.gold:
            for index in range(cursor, len(self.successful)):
                if index not in used and call_matches(want, self.successful[index], self.tolerance):
                    used.add(index)
                    cursor = index + 1
                    break
        return frozenset(used)

    @cached_property
    def changed(self) -> bool:
        """Some environment's state (volatile fields aside) differs from where the episode started."""
        return any(not json_equal(self.stripped(self.initial_states, env), self.stripped(self.final_states, env), 0.0)
                   for env in self.env_names)

    @cached_property
    def expects_change(self) -> bool:
        """The task asks for a write: a gold call writes, or an expected final state differs from the start."""
        return any(g.tool in self.write_tools for g in self.gold) or any(
            not json_equal(self.stripped(self.task.expected_final_state, env),
                           self.stripped(self.task_start, env), 0.0)
            for env in self.task.expected_final_state
        )

    @cached_property
    def agent_log(self) -> list[tuple[ToolCall, ToolResult]]:
        """The calls the agent made: the log without calls of the task's user-side tools
        (`Task.user_tools`), which only the user simulator can make (the agent loop refuses the agent's
        own calls of them before they run). The person's calls are scored by the state they leave, never
        penalised as the agent's."""
        user_tools = frozenset(self.task.user_tools)
        return [(call, result) for call, result in self.log if call.tool not in user_tools]

    @cached_property
    def failed_writes(self) -> int:
        """The agent's calls to write tools that failed for a reason other than malformed input (counted apart)."""
        return sum(1 for call, result in self.agent_log if call.tool in self.write_tools and result.error is not None
                   and result.error.kind not in MALFORMED_KINDS)

    @cached_property
    def malformed(self) -> int:
        """The agent's calls rejected as `invalid_arguments` or `unknown_tool`, whatever the tool."""
        return sum(1 for _, r in self.agent_log if r.error is not None and r.error.kind in MALFORMED_KINDS)

    @cached_property
    def answer_facts(self) -> list[str]:
        """Facts the agent must tell the user: every turn's `expected_outputs`."""
        return [fact for turn in self.task.turns for fact in turn.expected_outputs]

    @cached_property
    def agent_text(self) -> str:
        """Everything the agent said to the user, lower-cased."""
        return " ".join(m.content for m in self.messages or [] if m.role == "assistant").lower()


ComponentFn = Callable[[EpisodeFacts, RewardTerm], RewardComponent]
"""A component: episode facts and its term in, one named `RewardComponent` out."""


def _param(term: RewardTerm, name: str, default: float) -> float:
    return term.params.get(name, default)


# -- score components -------------------------------------------------------------------------------------------
def _state_overlap(expected: Any, made: Any, task_start: Any, episode_start: Any, tolerance: float) -> float:
    want = _changes(task_start, expected)
    got = _changes(episode_start, made)
    if not want and not got:
        return 1.0
    matched = sum(1 for path, value in want.items() if path in got and json_equal(got[path], value, tolerance))
    union = len(want) + len(got) - matched
    return matched / union if union else 1.0


def final_state(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """How much of the expected change the episode made: per environment |expected ∩ made| / |expected ∪
    made| over leaf changes (volatile fields removed), expected changes measured from the task's start and
    made ones from the episode's; exact hash match when only a hash is expected."""
    task = facts.task
    per_env: list[float] = []
    for env in facts.env_names:
        if env in task.expected_final_state:
            per_env.append(_state_overlap(facts.stripped(task.expected_final_state, env),
                                          facts.stripped(facts.final_states, env),
                                          facts.stripped(facts.task_start, env),
                                          facts.stripped(facts.initial_states, env), facts.tolerance))
        elif env in task.expected_final_hash:
            per_env.append(1.0 if facts.final_hashes.get(env) == task.expected_final_hash[env] else 0.0)
    score = sum(per_env) / len(per_env) if per_env else None
    return RewardComponent(name=term.name, score=score, weight=term.weight,
                           detail=f"{len(per_env)} environment(s) compared")


def gold_calls(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """Share of gold calls matched, in order, by successful calls with equal (unmasked) arguments."""
    gold = facts.gold
    matched = len(facts.gold_matches)
    return RewardComponent(name=term.name, score=matched / len(gold) if gold else None, weight=term.weight,
                           detail=f"{matched}/{len(gold)} gold calls matched in order")


def checks(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """Share of the task's declarative checks that pass (`output_contains` only when messages are given;
    `rubric` needs a judge and is not scored here)."""
    tol = facts.tolerance
    outcomes: list[bool] = []
    for check in facts.task.checks:
        if isinstance(check, StateEqualsCheck):
            found, value = _pointer_get(facts.final_states.get(check.env), check.pointer)
            outcomes.append(found and json_equal(value, check.expected, tol))
        elif isinstance(check, CallMadeCheck):
            outcomes.append(any(
                c.tool == check.tool and all(k in c.arguments and json_equal(c.arguments[k], v, tol)
                                             for k, v in check.arguments.items())
                for c in facts.successful
            ))
        elif isinstance(check, OutputContainsCheck) and facts.messages is not None:
            outcomes.append(check.text.lower() in facts.agent_text)
    score = sum(outcomes) / len(outcomes) if outcomes else None
    return RewardComponent(name=term.name, score=score, weight=term.weight,
                           detail=f"{sum(outcomes)}/{len(outcomes)} checks passed")


# -- factors (penalties and gates) ---------------------------------------------------------------------------------
def _per_call(term: RewardTerm, count: int, default: float) -> float:
    """(1 - penalty) ** count: every counted call costs the same share of what is left, with no floor."""
    return float((1.0 - _param(term, "penalty", default)) ** count)


def malformed_calls(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """(1 - penalty) ** (calls rejected as `invalid_arguments` or `unknown_tool`). Counted, not a share of
    the calls, so padding an episode with reads cannot dilute it."""
    return RewardComponent(name=term.name, role="factor", weight=term.weight,
                           score=_per_call(term, facts.malformed, 0.2),
                           detail=f"{facts.malformed}/{len(facts.agent_log)} calls malformed")


def failed_writes(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """(1 - penalty) ** (state-changing calls that failed: not found, rule violations, ...). A policy that
    guesses ids or tries writes until one passes scores below one that reads first; failed reads are free."""
    return RewardComponent(name=term.name, role="factor", weight=term.weight,
                           score=_per_call(term, facts.failed_writes, 0.2),
                           detail=f"{facts.failed_writes} state-changing call(s) failed")


def extra_writes(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """(1 - penalty) ** (successful writes that match no gold call): grows with every unnecessary write,
    without a floor, so spamming writes never pays."""
    user_tools = frozenset(facts.task.user_tools)  # the person's writes are scored by the state, not as extra
    extra = sum(1 for i, c in enumerate(facts.successful)
                if c.tool in facts.write_tools and c.tool not in user_tools and i not in facts.gold_matches)
    return RewardComponent(name=term.name, role="factor", weight=term.weight,
                           score=_per_call(term, extra, 0.3),
                           detail=f"{extra} successful write(s) outside the gold calls")


def changed_state(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """Gate: 0 when the task expects a change and every environment is as it started (not scored when the
    task expects none)."""
    gate = None if not facts.expects_change else (1.0 if facts.changed else 0.0)
    return RewardComponent(name=term.name, role="factor", score=gate, weight=term.weight,
                           detail="the task expects writes; the episode must change state")


def answer_facts(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """Share of the turns' `expected_outputs` found in what the agent said (case-insensitive); not scored
    without expected outputs or without the conversation."""
    wanted = facts.answer_facts
    if not wanted or facts.messages is None:
        return RewardComponent(name=term.name, score=None, weight=term.weight,
                               detail="no expected outputs" if not wanted else "no conversation given")
    found = sum(1 for fact in wanted if fact.lower() in facts.agent_text)
    return RewardComponent(name=term.name, score=found / len(wanted), weight=term.weight,
                           detail=f"{found}/{len(wanted)} expected facts stated")


# -- the read-only gate -----------------------------------------------------------------------------------------
_TOKEN = re.compile(r"[\w.@:/+-]+")
MAX_STATE_VALUES = 50_000


def _scalar_values(roots: Sequence[Any]) -> dict[str, set[str]]:
    """Scalar values under `roots` (lower-cased strings of 3+ characters, numbers of 2+ digits) with the
    record fields that hold them, the first `MAX_STATE_VALUES` in document order."""
    values: dict[str, set[str]] = {}
    stack: list[tuple[str, Any]] = [("", root) for root in reversed(roots)]
    while stack and len(values) < MAX_STATE_VALUES:
        key, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((key, item) for item in reversed(node))
        elif isinstance(node, str | int | float) and not isinstance(node, bool):
            text = str(node).strip().lower()
            if len(text) >= (3 if isinstance(node, str) else 2):
                values.setdefault(text, set()).add(key)
    return values


def _mentions(value: str, text: str, tokens: set[str]) -> bool:
    return value in text if any(c.isspace() for c in value) else value in tokens


def answered(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    """Gate of a task that expects no change (read-only): the answer's facts decide, so doing nothing, or
    only reading, never scores. Facts are the turns' `expected_outputs` and the `output_contains` texts;
    score = recall × concision / (1 + hedges), where concision = min(1, allowance / values) over the other
    state values the answer names beyond what the gold calls returned (an answer stuffed with the state
    dilutes itself; restating the gold read does not), and hedges counts other values of the fields that
    hold a fact (naming every status to hit the right one). 0 without the
    conversation, and 0 for a read-only task that names no fact (it cannot be scored; give it one). Not
    scored for tasks that expect a change."""
    if facts.expects_change:
        return RewardComponent(name=term.name, role="factor", score=None, weight=term.weight,
                               detail="the task expects a change; its state is scored instead")
    wanted = [f.lower() for f in facts.answer_facts]
    wanted += [c.text.lower() for c in facts.task.checks if isinstance(c, OutputContainsCheck)]
    if not wanted or facts.messages is None:
        why = "a read-only task without facts to state cannot be scored" if not wanted else "no conversation given"
        return RewardComponent(name=term.name, role="factor", score=0.0, weight=term.weight, detail=why)
    text = facts.agent_text
    found = [fact for fact in dict.fromkeys(wanted) if fact in text]
    rest = text
    for fact in found:
        rest = rest.replace(fact, " ")
    tokens = set(_TOKEN.findall(rest))
    values = _scalar_values([facts.initial_states.get(env) for env in facts.env_names])
    read = set(_scalar_values(facts.gold_outputs))
    named = {v for v in values if v not in found and _mentions(v, rest, tokens)}
    fields = set().union(*(values.get(fact, set()) for fact in found)) - {""}
    hedges = sum(1 for v in named if values[v] & fields)
    extra = len(named - read)  # restating what the gold calls returned is not stuffing
    allowance = _param(term, "allowance", 4)
    concision = 1.0 if extra <= allowance else allowance / extra
    score = len(found) / len(set(wanted)) * concision / (1 + hedges)
    return RewardComponent(name=term.name, role="factor", score=score, weight=term.weight,
                           detail=f"{len(found)}/{len(set(wanted))} facts stated; {extra} other state "
                                  f"value(s) named, {hedges} of them alternatives to a fact")


COMPONENTS: Mapping[str, ComponentFn] = MappingProxyType({
    "final_state": final_state,
    "gold_calls": gold_calls,
    "checks": checks,
    "answer_facts": answer_facts,
    "malformed_calls": malformed_calls,
    "failed_writes": failed_writes,
    "extra_writes": extra_writes,
    "changed_state": changed_state,
    "answered": answered,
})
"""The built-in components by name."""

DEFAULT_TERMS: tuple[RewardTerm, ...] = (
    RewardTerm(name="final_state", weight=0.5),
    RewardTerm(name="gold_calls", weight=0.3),
    RewardTerm(name="checks", weight=0.2),
    RewardTerm(name="answer_facts", weight=0.2),
    RewardTerm(name="malformed_calls", params={"penalty": 0.2}),
    RewardTerm(name="failed_writes", params={"penalty": 0.2}),
    RewardTerm(name="extra_writes", params={"penalty": 0.3}),
    RewardTerm(name="changed_state"),
    RewardTerm(name="answered", params={"allowance": 4}),
)
"""The default component list (weights and parameters documented in docs/rewards.md)."""
