"""Running behavioural scenarios against an environment through runtime sessions (issue 19).

Contract:
- `run_behaviour(env, scenario, *, seed)` opens a fresh session (`initial_state` "default": the
  environment's `default` seed, else the empty state; "empty": the empty state), makes the calls in
  order and returns the scenario's verdict with one `BehaviourCheck` per call made: the call, what the
  spec expected, what was observed. Verdict: `failed` when any expectation failed; else `inconclusive`
  when a `setup` call failed (the scenario stops there: the spec does not say it must be accepted);
  else `passed`. A captured value the output lacks fails that call, and later calls that need it are
  not made. A call the session's input-schema check refuses ("invalid arguments for <tool>", unless
  that was the expectation) never reached the implementation: the scenario is `inconclusive` there.
- Outputs are judged as `StepExpect` says (spec.behaviour): `fields` must be contained
  (`scenario_run.json_subset`) in the output or in an object inside it; `includes`/`excludes` look at
  the scalars under `key_fields` (every scalar when the output has none of them); a step with
  `follow_token` is repeated with the output's next token (a top-level field named like a next-page
  token) until there is none, at most `MAX_PAGES` calls, and `distinct` asks that each included value
  appears on exactly one page.
- `behaviour_report(env, proposal, operations, *, seed, probe)` generates the scenarios from the spec
  (`behaviour.generate_scenarios`, with the default seed's values as setup pool), runs them and, with
  `probe`, the ignored-argument probe (`behaviour_probes.probe_arguments`); deterministic.
- Each success is also compared with the spec's response shape (`BehaviourCheck.envelope`): an array
  where the spec returns one; an object sharing at least one top-level property with the spec's
  response otherwise. It never changes a verdict; `library_summary` counts mismatched calls and tools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from envfactory.runtime import Environment, Session
from envfactory.spec import Operation, ToolResult
from envfactory.spec.behaviour import (
    BehaviourCheck,
    BehaviourReport,
    BehaviourScenario,
    BehaviourStep,
    ScenarioVerdict,
    StepExpect,
)
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour import generate_scenarios
from envfactory.verify.behaviour_facts import TOKEN_FIELDS, flat_name
from envfactory.verify.behaviour_probes import open_initial, probe_arguments
from envfactory.verify.envchecks_planner import harvest_state
from envfactory.verify.scenario_run import json_subset, substitute

__all__ = ["MAX_PAGES", "behaviour_report", "library_summary", "open_initial", "run_behaviour"]

MAX_PAGES = 20


def _brief(value: Any, limit: int = 240) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _observed(result: ToolResult) -> str:
    if result.error is not None:
        return f"error {result.error.kind}: {result.error.message[:200]}"
    return f"ok {_brief(result.output)}"


def _expected(expect: StepExpect) -> str:
    if expect.outcome == "error":
        return f"error {'/'.join(expect.error_kinds)}" + (", state unchanged" if expect.state_unchanged else "")
    parts = ["success" + (" (setup)" if expect.outcome == "setup" else "")]
    if expect.fields:
        parts.append(f"record shows {_brief(expect.fields, 160)}")
    if expect.includes:
        parts.append(f"includes {_brief(expect.includes, 120)}" + (" exactly once" if expect.distinct else ""))
    if expect.excludes:
        parts.append(f"excludes {_brief(expect.excludes, 120)}")
    return ", ".join(parts)


def _objects(value: Any, depth: int = 3) -> Iterator[dict[str, Any]]:
    """The output and the objects inside it (the record itself or within an envelope), outermost first."""
    if isinstance(value, dict):
        yield value
        if depth:
            for item in value.values():
                yield from _objects(item, depth - 1)
    elif isinstance(value, list) and depth:
        for item in value:
            yield from _objects(item, depth - 1)


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    else:
        yield value


def _key_values(output: Any, fields: list[str]) -> list[Any]:
    """The scalars under `fields` anywhere in `output`; every scalar when no such field is there (a list
    of bare keys, an envelope the spec does not name)."""
    found: list[Any] = []
    stack = [output]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name, value in node.items():
                if name in fields:
                    found.extend(_scalars(value))
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found if found or not fields else list(_scalars(output))


def _capture(output: Any, field: str) -> tuple[bool, Any]:
    for record in _objects(output, depth=6):
        if field in record and record[field] is not None and not isinstance(record[field], dict | list):
            return True, record[field]
    return False, None


def _next_token(output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    for name, value in output.items():
        if flat_name(name) in TOKEN_FIELDS and isinstance(value, str) and value:
            return value
    return None


def _judge_output(outputs: list[Any], expect: StepExpect) -> str | None:
    """None when the outputs (one per page) meet `expect`, else what is wrong."""
    if expect.fields and not any(json_subset(r, expect.fields) is None for o in outputs for r in _objects(o)):
        return f"no record in the output shows {_brief(expect.fields, 160)}"
    pages = [set(map(_hashable, _key_values(o, expect.key_fields))) for o in outputs]
    for value in expect.includes:
        seen = sum(_hashable(value) in page for page in pages)
        if seen == 0:
            return f"{_brief(value)} is not in the output"
        if expect.distinct and seen > 1:
            return f"{_brief(value)} is on {seen} pages, not exactly one"
    for value in expect.excludes:
        if any(_hashable(value) in page for page in pages):
            return f"{_brief(value)} is in the output"
    return None


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else _brief(value)


def _envelope(step: BehaviourStep, result: ToolResult) -> str | None:
    """For a success, whether the output has the spec's response shape: an array where the spec returns
    one, an object sharing a top-level property with the spec's response otherwise."""
    if result.error is not None or not step.response:
        return None
    output = result.output
    if step.response == "array":
        return "match" if isinstance(output, list) else f"mismatch: spec returns an array, observed {_top(output)}"
    if not isinstance(output, dict) or not output:
        return "match" if output in ({}, None) else f"mismatch: spec returns an object, observed {_top(output)}"
    if set(output) & set(step.response_keys):
        return "match"
    return f"mismatch: spec {sorted(step.response_keys)[:8]}, observed {_top(output)}"


def _top(value: Any) -> str:
    return f"keys {sorted(value)[:8]}" if isinstance(value, dict) else type(value).__name__


def _schema_rejected(result: ToolResult, tool: str) -> bool:
    return result.error is not None and result.error.message.startswith(f"invalid arguments for {tool}")


def _call(session: Session, tool: str, args: dict[str, Any], follow: str | None) -> tuple[ToolResult, list[Any], int]:
    result = session.call(tool, args)
    outputs = [result.output] if result.error is None else []
    calls = 1
    token = _next_token(result.output) if follow and result.error is None else None
    while token is not None and calls < MAX_PAGES:
        page = session.call(tool, {**args, follow: token} if follow else args)
        calls += 1
        if page.error is not None:
            return page, outputs, calls
        outputs.append(page.output)
        token = _next_token(page.output)
    return result, outputs, calls


def run_behaviour(env: Environment, scenario: BehaviourScenario, *, seed: int = 0
                  ) -> tuple[ScenarioVerdict, list[BehaviourCheck]]:
    """Run one scenario (module contract): its verdict and one check per call made."""
    session = open_initial(env, scenario.initial_state, seed)
    variables: dict[str, Any] = {}
    checks: list[BehaviourCheck] = []
    verdict: ScenarioVerdict = "passed"
    for index, step in enumerate(scenario.steps):
        args = substitute(step.arguments, variables)
        expect = StepExpect.model_validate(substitute(step.expect.model_dump(mode="json"), variables))
        if "${" in orjson.dumps([args, expect.model_dump(mode="json")]).decode():
            break  # a value an earlier call should have returned is missing: that call already failed
        before = session.hash()
        result, outputs, calls = _call(session, step.tool, args, step.follow_token)
        problem = None
        if expect.outcome == "error":
            if result.error is None:
                problem = "the call succeeded"
            elif result.error.kind not in expect.error_kinds:
                problem = f"wrong error kind {result.error.kind}"
            elif expect.state_unchanged and session.hash() != before:
                problem = "the state changed"
        elif result.error is not None:
            problem = "the call failed"
        elif calls >= MAX_PAGES and step.follow_token:
            problem = f"the page walk did not end within {MAX_PAGES} pages"
        else:
            problem = _judge_output(outputs, expect)
        for name, fields in step.capture.items() if result.error is None else ():
            found, value = next((hit for hit in (_capture(result.output, f) for f in fields) if hit[0]), (False, None))
            if found:
                variables[name] = value
            else:
                problem = problem or f"the output has no {' or '.join(fields)!r} (the spec's record key)"
        observed = _observed(result) + (f" ({calls} pages)" if step.follow_token else "")
        checks.append(BehaviourCheck(
            scenario=scenario.id, kind=scenario.kind, step=index, tool=step.tool, arguments=args,
            expected=_expected(expect), observed=observed if problem is None else f"{problem}: {observed}",
            passed=problem is None, because=step.because, envelope=_envelope(step, result)))
        if problem is not None and _schema_rejected(result, step.tool) and "invalid_arguments" not in expect.error_kinds:
            # the session's input-schema check refused the generated call: the implementation never judged it
            checks[-1] = checks[-1].model_copy(update={"observed": f"generated arguments rejected: {observed}"})
            verdict = "inconclusive" if verdict == "passed" else verdict
            break
        if problem is not None and expect.outcome == "setup":
            verdict = "inconclusive" if verdict == "passed" else verdict
            break
        if problem is not None:
            verdict = "failed"
    return verdict, checks


def behaviour_report(env: Environment, proposal: Proposal, operations: Mapping[str, Operation], *,
                     seed: int = 0, probe: bool = True) -> BehaviourReport:
    """Generate, run and probe (module contract)."""
    pool: dict[str, list[str]] = {}
    harvest_state(open_initial(env, "default", seed).state_json(), pool)
    scenarios, skipped = generate_scenarios([t.spec for t in env.tools.values()], proposal, operations,
                                            pool=pool, seed=seed)
    verdicts: dict[str, ScenarioVerdict] = {}
    checks: list[BehaviourCheck] = []
    for scenario in scenarios:
        verdicts[scenario.id], found = run_behaviour(env, scenario, seed=seed)
        checks.extend(found)
    probes = probe_arguments(env, seed=seed) if probe else []
    return BehaviourReport(env_name=env.name, scenarios=scenarios, verdicts=verdicts, checks=checks,
                           probes=probes, not_generated=skipped)


def library_summary(reports: list[BehaviourReport]) -> dict[str, Any]:
    """The before/after figures over many environments: scenario counts and lengths, pass rates,
    ignored arguments (required/optional), final-state violations and reference errors."""
    totals: dict[str, int] = {}
    for report in reports:
        for key, value in report.counts().items():
            totals[key] = totals.get(key, 0) + value
    lengths = sorted(len(s.steps) for r in reports for s in r.scenarios)
    judged = totals.get("passed", 0) + totals.get("failed", 0)
    failed_checks = [c for r in reports for c in r.checks if not c.passed]
    return {
        "environments": len(reports),
        "with_5_scenarios": sum(len(r.scenarios) >= 5 for r in reports),
        "with_any_scenario": sum(bool(r.scenarios) for r in reports),
        "all_passed": sum(bool(r.scenarios) and all(v == "passed" for v in r.verdicts.values()) for r in reports),
        "scenario_length": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]} if lengths else {},
        "pass_rate": round(totals.get("passed", 0) / judged, 4) if judged else None,
        "final_state_violations": sum(c.kind == "state_machine" and c.expected.startswith("error") for c in failed_checks),
        "reference_errors": sum(c.kind == "reference" and c.expected.startswith("error") for c in failed_checks),
        "envelope_mismatches": {
            "calls": f"{totals.get('envelope_mismatch', 0)}/{totals.get('envelope_checked', 0)}",
            "tools": len({(r.env_name, c.tool) for r in reports for c in r.checks if (c.envelope or "").startswith("mismatch")}),
            "tools_checked": len({(r.env_name, c.tool) for r in reports for c in r.checks if c.envelope is not None}),
        },
        "scoping_leaks": sum(c.kind == "scoping" and (c.expected.startswith("error") or "excludes" in c.expected)
                             for c in failed_checks),
        "totals": dict(sorted(totals.items())),
    }
