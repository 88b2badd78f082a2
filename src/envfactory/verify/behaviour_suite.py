"""An environment's stored behavioural suite and the `behaviour` check of its verification report (issue 19).

Contract:
- `generate_suite(env, proposal, operations, *, seed)` writes the suite from the SOURCE spec (the
  scenarios of `behaviour.generate_scenarios` and, since generator version 3, `behaviour_more`, with the default seed's values as setup pool, and the
  prose rules of `rules_extract` with their violating scenarios); nothing is run. Deterministic. For an
  environment compiled at generation 2 or later, each call of a tool with an idempotency token sends a
  token not sent before in its scenario (`idempotency_args`); a generation-1 suite is unchanged.
- `idempotency_args(env)`: tool name -> idempotency-token argument of a generation >= 2 declarative
  environment (`OperationDecl.idempotency`); empty for generation 1 and for Python environments.
- `run_suite(env, suite)` runs every scenario in a fresh session (`behaviour_run.run_behaviour`, seed
  `suite.seed`) and returns the verdicts and checks.
- `with_known_failures(suite, verdicts, checks)` is the suite with `known_failures` set to exactly the
  scenarios that failed in that run, each with a reason: its kind, the first failed step's call, what
  the spec expected and what was observed. Used to record a baseline; never to change an expectation.
- `check_behaviour(env, suite)` is the `behaviour` `CheckResult`: `failed` when a scenario fails that
  `known_failures` does not list (a regression, or a suite never recorded), else `passed`. Its counts
  give scenarios, calls, verdicts, known failures (still failing / now passing) and verdicts per kind;
  `problems` has one line per failed scenario, evidence included (call, expected, observed, the spec
  fact), known ones marked with their reason; `failing_tools` names the tools of the unexpected
  failures. The evidence digest hashes every check made, so the same suite and environment give the
  same digest.
"""

from __future__ import annotations

from collections.abc import Mapping

from envfactory.runtime import Environment
from envfactory.spec import CheckResult, Operation
from envfactory.spec.base import content_hash
from envfactory.spec.behaviour import BehaviourCheck, BehaviourSuite, ScenarioVerdict
from envfactory.spec.build import Proposal
from envfactory.spec.env import DeclarativeImplementation
from envfactory.verify.behaviour import generate_scenarios
from envfactory.verify.behaviour_more import more_scenarios
from envfactory.verify.behaviour_probes import open_initial
from envfactory.verify.behaviour_run import run_behaviour
from envfactory.verify.envchecks_planner import harvest_state
from envfactory.verify.rules_extract import extract_rules, rule_scenarios

__all__ = ["GENERATOR_VERSION", "check_behaviour", "generate_suite", "idempotency_args", "run_suite", "with_known_failures"]

GENERATOR_VERSION = 3


def generate_suite(env: Environment, proposal: Proposal, operations: Mapping[str, Operation], *,
                   seed: int = 0) -> BehaviourSuite:
    """The suite written from the spec (module contract)."""
    pool: dict[str, list[str]] = {}
    harvest_state(open_initial(env, "default", seed).state_json(), pool)
    tools = [t.spec for t in env.tools.values()]
    tokens = idempotency_args(env)
    scenarios, skipped = generate_scenarios(tools, proposal, operations, pool=pool, seed=seed, tokens=tokens)
    more, unwritten = more_scenarios(tools, proposal, operations, pool=pool, seed=seed, tokens=tokens)
    rules = extract_rules(proposal, operations)
    ruled, unruled = rule_scenarios(rules, tools, proposal, operations, pool=pool, seed=seed, tokens=tokens)
    return BehaviourSuite(env_name=env.name, generator=GENERATOR_VERSION, seed=seed,
                          scenarios=[*scenarios, *more, *ruled], rules=rules,
                          not_generated=[*skipped, *unwritten, *unruled])


def idempotency_args(env: Environment) -> dict[str, str]:
    """Tool name -> its idempotency-token argument, for a declarative environment compiled at generation 2
    or later (module contract)."""
    impl = env.spec.implementation
    if max((p.generation for p in env.spec.meta.provenance), default=1) < 2 \
            or not isinstance(impl, DeclarativeImplementation):
        return {}
    return {name: op.idempotency.arg for name, op in impl.model.operations.items() if op.idempotency is not None}


def run_suite(env: Environment, suite: BehaviourSuite
              ) -> tuple[dict[str, ScenarioVerdict], list[BehaviourCheck]]:
    """Every scenario's verdict and every check made (module contract)."""
    verdicts: dict[str, ScenarioVerdict] = {}
    checks: list[BehaviourCheck] = []
    for scenario in suite.scenarios:
        verdicts[scenario.id], found = run_behaviour(env, scenario, seed=suite.seed)
        checks.extend(found)
    return verdicts, checks


def _first_failure(scenario_id: str, checks: list[BehaviourCheck]) -> BehaviourCheck | None:
    return next((c for c in checks if c.scenario == scenario_id and not c.passed), None)


def _evidence(check: BehaviourCheck | None) -> str:
    if check is None:
        return "no failed call recorded"
    return (f"step {check.step} {check.tool}: expected {check.expected}; observed {check.observed[:200]}"
            + (f" (spec: {check.because[:160]})" if check.because else ""))


def with_known_failures(suite: BehaviourSuite, verdicts: Mapping[str, ScenarioVerdict],
                        checks: list[BehaviourCheck]) -> BehaviourSuite:
    """The suite whose `known_failures` are this run's failures with their reasons (module contract)."""
    kinds = {s.id: s.kind for s in suite.scenarios}
    known = {sid: f"{kinds[sid]}: {_evidence(_first_failure(sid, checks))}"
             for sid, verdict in sorted(verdicts.items()) if verdict == "failed"}
    return suite.model_copy(update={"known_failures": known})


def check_behaviour(env: Environment, suite: BehaviourSuite) -> CheckResult:
    """The `behaviour` check of the verification report (module contract)."""
    verdicts, checks = run_suite(env, suite)
    counts: dict[str, int] = {"scenarios": len(suite.scenarios), "calls": len(checks),
                              "rules": len(suite.rules)}
    for verdict in ("passed", "failed", "inconclusive"):
        counts[verdict] = sum(v == verdict for v in verdicts.values())
    counts["known_failed"] = sum(verdicts.get(sid) == "failed" for sid in suite.known_failures)
    counts["known_now_passing"] = sum(verdicts.get(sid) == "passed" for sid in suite.known_failures)
    for scenario in suite.scenarios:
        key = f"{scenario.kind}:{verdicts[scenario.id]}"
        counts[key] = counts.get(key, 0) + 1
    problems: list[str] = []
    blamed: set[str] = set()
    for scenario in suite.scenarios:
        sid = scenario.id
        if verdicts[sid] == "passed" and sid in suite.known_failures:
            problems.append(f"{scenario.steps[0].tool}: {sid} is listed as a known failure and now passes")
        if verdicts[sid] != "failed":
            continue
        failed = _first_failure(sid, checks)
        tool = failed.tool if failed is not None else scenario.steps[0].tool
        if sid in suite.known_failures:
            problems.append(f"{tool}: {sid} failed (known: {suite.known_failures[sid][:160]})")
        else:
            blamed.add(tool)
            problems.append(f"{tool}: {sid} failed: {_evidence(failed)}")
    unexpected = counts["failed"] - counts["known_failed"]
    detail = (f"{counts['passed']} passed, {counts['failed']} failed ({counts['known_failed']} known), "
              f"{counts['inconclusive']} inconclusive of {counts['scenarios']} scenarios from the source spec")
    return CheckResult(
        name="behaviour", status="failed" if unexpected else "passed", detail=detail,
        evidence_digest=content_hash([c.model_dump(mode="json") for c in checks]),
        counts=dict(sorted(counts.items())), failing_tools=sorted(blamed), problems=problems)
