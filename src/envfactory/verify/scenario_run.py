"""Running one `ScenarioTest` against an environment and judging it against its oracle's expectations.

Contract:
- `run_scenario(env, scenario, seed)` opens a fresh session on the scenario's initial state (a seed
  name — `default` with no such seed is the empty state —, an inline state, or None: the empty state), runs the steps in order and returns a `ScenarioOutcome`:
  `passed` only when every step met its expectation and every state assertion holds. The first
  failing step names the blamed tool (`failing_tool`); later steps still run so all problems show.
- Matching is `json_subset`: every key of an expected object must be present with a matching value;
  an expected list matches when each of its items matches a distinct item of the actual list (order is
  free, because sources order lists arbitrarily); scalars compare equal, except that integers and
  floats compare by value. Paths listed in `volatile` (generated ids, timestamps) only need to exist.
- `"${name}"` in arguments, expected outputs and assertion keys/filters is replaced whole by the value captured earlier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment, open_session
from envfactory.spec import ScenarioTest, StateAssertion

__all__ = ["ScenarioOutcome", "json_subset", "run_scenario", "substitute"]


@dataclass(frozen=True)
class ScenarioOutcome:
    """Whether a scenario test passed, every problem found, and the tool whose call failed first."""
    scenario: ScenarioTest
    passed: bool
    problems: list[str] = field(default_factory=list)
    failing_tool: str | None = None


def run_scenario(env: Environment, scenario: ScenarioTest, *, seed: int = 0) -> ScenarioOutcome:
    """Run one scenario test against an environment: open a session on its initial state (a seed name, a
    state or empty), make its calls and check each against its expectation; the outcome lists every problem
    and the tool that failed first."""
    initial: Any = scenario.initial_state
    try:
        if isinstance(initial, str):
            if initial not in env.seeds and initial != "default":
                return ScenarioOutcome(scenario, False, [f"unknown seed {initial!r}"], None)
            initial = env.seeds.get(initial)
        if initial is None:  # the empty state (open_session would read None as the default seed)
            initial = env.backend.load_state(None).to_json()
        session = open_session(env, initial, seed=seed)
    except EnvFactoryError as exc:
        return ScenarioOutcome(scenario, False, [f"the initial state does not load: {exc}"], None)
    variables: dict[str, Any] = {}
    problems: list[str] = []
    failing_tool: str | None = None
    for index, step in enumerate(scenario.steps):
        arguments = substitute(step.arguments, variables)
        result = session.call(step.tool, arguments)
        problem: str | None = None
        if step.expect_error is not None:
            if result.error is None:
                problem = f"expected {step.expect_error}, the call succeeded"
            elif result.error.kind != step.expect_error:
                problem = f"expected {step.expect_error}, got {result.error.kind}: {result.error.message}"
        elif result.error is not None:
            problem = f"expected success, got {result.error.kind}: {result.error.message}"
        elif step.expect_output is not None:
            expected = substitute(step.expect_output, variables)
            mismatch = json_subset(result.output, expected, volatile=set(step.volatile))
            if mismatch is not None:
                problem = f"output does not match the oracle at {mismatch}"
        if result.error is None:
            for name, path in step.capture.items():
                found, value = _lookup(result.output, path)
                if found:
                    variables[name] = value
                else:
                    problem = problem or f"output has no {path!r} to capture as {name}"
        if problem is not None:
            problems.append(f"step {index} ({step.tool}): {problem}")
            failing_tool = failing_tool or step.tool
    state = session.state_json()
    for assertion in scenario.state_assertions:
        problem = _check_assertion(state, assertion, variables)
        if problem is not None:
            problems.append(problem)
            failing_tool = failing_tool or _last_writer(scenario, env)
    return ScenarioOutcome(scenario, not problems, problems, failing_tool)


def _last_writer(scenario: ScenarioTest, env: Environment) -> str | None:
    for step in reversed(scenario.steps):
        tool = env.tools.get(step.tool)
        if tool is not None and tool.writes:
            return step.tool
    return scenario.steps[-1].tool if scenario.steps else None


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """Replace every string that is exactly `${name}` by the captured value."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}") and value[2:-1] in variables:
        return variables[value[2:-1]]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def _lookup(value: Any, path: str) -> tuple[bool, Any]:
    node = value
    for part in path.split(".") if path else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def json_subset(actual: Any, expected: Any, *, volatile: set[str] | None = None, path: str = "") -> str | None:
    """None when `expected` is contained in `actual` (module contract), else the first differing path."""
    volatile = volatile or set()
    if path in volatile:
        return None if actual is not None else (path or "(root)")
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return path or "(root)"
        for key, sub in expected.items():
            child = f"{path}.{key}" if path else key
            if key not in actual:
                return child
            problem = json_subset(actual[key], sub, volatile=volatile, path=child)
            if problem is not None:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return path or "(root)"
        remaining = list(range(len(actual)))
        for index, item in enumerate(expected):
            child = f"{path}.{index}" if path else str(index)
            match = next(
                (i for i in remaining if json_subset(actual[i], item, volatile=_reroot(volatile, child, path, i)) is None),
                None,
            )
            if match is None:
                return child
            remaining.remove(match)
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected is actual else (path or "(root)")
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return None if float(expected) == float(actual) else (path or "(root)")
    return None if expected == actual else (path or "(root)")


def _reroot(volatile: set[str], expected_path: str, parent: str, actual_index: int) -> set[str]:
    """Volatile paths under an expected list item, re-rooted for the actual item being tried."""
    prefix = expected_path + "."
    rerooted = {v[len(prefix):] for v in volatile if v.startswith(prefix)}
    if expected_path in volatile:
        rerooted.add("")
    return rerooted


def _records(state: Any, collection: str) -> list[tuple[str, Any]] | None:
    container = state.get("collections", state) if isinstance(state, dict) else None
    if not isinstance(container, dict) or collection not in container:
        if isinstance(state, dict) and collection in state:
            container = state
        else:
            return None
    records = container[collection]
    if isinstance(records, dict):
        return [(str(k), v) for k, v in records.items()]
    if isinstance(records, list):
        return [(str(r.get("id", i)) if isinstance(r, dict) else str(i), r) for i, r in enumerate(records)]
    return None


def _check_assertion(state: Any, assertion: StateAssertion, variables: Mapping[str, Any]) -> str | None:
    records = _records(state, assertion.collection)
    where = f"state assertion on {assertion.collection}"
    if records is None:
        return f"{where}: the state has no collection {assertion.collection!r}"
    key = substitute(assertion.key, variables) if assertion.key is not None else None
    criteria = substitute(assertion.filter, variables) if assertion.filter is not None else None
    chosen = [
        record for record_key, record in records
        if (key is None or record_key == str(key)) and (criteria is None or json_subset(record, criteria) is None)
    ]
    if assertion.expect == "absent":
        return None if not chosen else f"{where}: expected no record matching {key or criteria}, found {len(chosen)}"
    if not chosen:
        return f"{where}: no record matches {key if key is not None else criteria}"
    if any(json_subset(record, assertion.expect) is None for record in chosen):
        return None
    return f"{where}: the record matching {key if key is not None else criteria} lacks {assertion.expect}"
