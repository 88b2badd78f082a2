"""Environment verification: the checks a built environment must pass before it is accepted (DESIGN §4).

Contract:
- `verify_environment(env_dir_or_env, scenarios, *, seed, fuzz_calls, differential)` returns a
  `VerificationReport` whose verdict is `verified` only when no check failed. Checks, in order:
  `load` (the directory loads, or a given `Environment` is taken as loaded with the same evidence as
  loading its directory; a `spec.json` next to the source matches what the implementation derives), `parity` (tools ↔ implementation, schemas usable for argument generation, tool sources
  resolve to the environment's provenance and, when `operations` are given, to the catalog's
  operation and its original field names), `seed_roundtrip` (every seed loads, dumps and reloads to
  the same state and hash; snapshots restore exactly), `determinism` (every call gives the same result
  and state hash when repeated from a fork of the same session, and a fresh replay of the whole call
  sequence reproduces the final state), `isolation` (writes in one session or fork never change
  another's state or read results), `fuzz` (schema-guided valid and corrupted arguments yield typed
  agent-visible errors only: no crash, no framework failure, no output violating its schema),
  `scenarios` (each `ScenarioTest` passes; tallied per oracle) and `differential` (precomputed
  `DifferentialResult`s, e.g. from `build.differential`, have no mismatch), and, only when a
  `BehaviourSuite` is given (the one an environment keeps in its `scenarios.json`), `behaviour` (the
  suite's scenarios from the source spec, check by check with evidence; `verify.behaviour_suite`).
  Without a suite the report is exactly what it was before the behaviour check existed.
- Every failed check names the tools it blames in `CheckResult.failing_tools`.
- Deterministic: all call plans come from `random.Random(seed)` and live state, so verifying the same
  environment with the same scenarios and seed gives the same report and `evidence_digest`. Wall
  timings are only recorded with `record_timings=True` and never enter the digest.
- Pure with respect to the caller: the environment is only driven through fresh sessions.

Layout: this module is the entry point (`verify_environment`, and the names it re-exports); the checks
live in `envchecks_static.py` (load, parity), `envchecks_behaviour.py` (seeds, determinism, isolation,
fuzz, scenarios, differential, authored tools), with call planning in `envchecks_planner.py` and the
shared result helpers in `envchecks_results.py`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envfactory.runtime import Environment
from envfactory.spec import (
    CheckResult,
    DifferentialResult,
    HybridImplementation,
    Operation,
    OracleTally,
    ScenarioTest,
    VerificationReport,
)
from envfactory.spec.verification import ORACLE_KINDS
from envfactory.verify.behaviour_suite import check_behaviour
from envfactory.verify.envchecks_behaviour import (
    CORRUPT_PROBABILITY,
    CORRUPTIONS,
    DETERMINISM_CALLS,
    EXERCISE_ROUNDS,
    ISOLATION_WRITES,
    check_authored_exercised,
    check_determinism,
    check_differential,
    check_fuzz,
    check_isolation,
    check_scenarios,
    check_seeds,
)
from envfactory.verify.envchecks_planner import CallPlanner
from envfactory.verify.envchecks_results import crash_message
from envfactory.verify.envchecks_static import (
    SOURCE_FREE_PROVIDERS,
    check_load,
    check_parity,
    resolve_operation,
)
from envfactory.verify.scenario_run import ScenarioOutcome

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxPool
    from envfactory.spec.behaviour import BehaviourSuite

__all__ = [
    "CORRUPTIONS",
    "CORRUPT_PROBABILITY",
    "DEFAULT_FUZZ_CALLS",
    "DETERMINISM_CALLS",
    "EXERCISE_ROUNDS",
    "ISOLATION_WRITES",
    "SOURCE_FREE_PROVIDERS",
    "crash_message",
    "resolve_operation",
    "verify_environment",
]

DEFAULT_FUZZ_CALLS = 240


def verify_environment(
    env_dir_or_env: str | Path | Environment,
    scenarios: Sequence[ScenarioTest] = (),
    *,
    seed: int = 0,
    fuzz_calls: int = DEFAULT_FUZZ_CALLS,
    differential: Sequence[DifferentialResult] = (),
    operations: Mapping[str, Operation] | None = None,
    sandbox: SandboxPool | None = None,
    trusted: bool = False,
    record_timings: bool = False,
    behaviour: BehaviourSuite | None = None,
) -> VerificationReport:
    """Run every check on one environment; see the module contract.

    `env_dir_or_env`: an environment directory, file, bundled name or a loaded `Environment`.
    `operations`: catalog operations keyed by `ToolSource.operation_id` (or operation name), used to
    check that tool sources and their original field names resolve. `sandbox`/`trusted` are passed to
    `load_env` (untrusted python toolkits only run in sandbox workers). `behaviour`: the environment's
    behavioural suite; its `behaviour` check is added when given.
    """
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []

    def timed(name: str, run: Callable[[], CheckResult]) -> CheckResult:
        started = time.perf_counter()
        result = run()
        if record_timings:
            timings[name] = round((time.perf_counter() - started) * 1000, 3)
        checks.append(result)
        return result

    env_holder: list[Environment] = []
    load = timed("load", lambda: check_load(env_dir_or_env, sandbox, trusted, env_holder))
    if load.status == "failed" or not env_holder:
        name = Path(str(env_dir_or_env)).name if not isinstance(env_dir_or_env, Environment) else env_dir_or_env.name
        skipped = ("parity", "seed_roundtrip", "determinism", "isolation", "fuzz", "scenarios", "differential")
        for check in (*skipped, "behaviour") if behaviour is not None else skipped:
            checks.append(CheckResult(name=check, status="skipped", detail="the environment did not load"))
        return VerificationReport(
            env_name=name, spec_hash="", seed=seed, verdict="rejected", checks=checks, timings_ms=timings,
            differential=list(differential),
        ).sealed()
    env = env_holder[0]
    planner = CallPlanner(env)
    timed("parity", lambda: check_parity(env, planner, operations, seed))
    timed("seed_roundtrip", lambda: check_seeds(env, planner, seed))
    timed("determinism", lambda: check_determinism(env, planner, seed))
    timed("isolation", lambda: check_isolation(env, planner, seed))
    worked: Counter[str] = Counter()
    timed("fuzz", lambda: check_fuzz(env, planner, seed, fuzz_calls, worked))
    outcomes: list[ScenarioOutcome] = []
    timed("scenarios", lambda: check_scenarios(env, scenarios, seed, outcomes))
    timed("differential", lambda: check_differential(differential))
    if isinstance(env.spec.implementation, HybridImplementation):
        timed("authored_exercised",
              lambda: check_authored_exercised(env, planner, seed, worked, outcomes, differential))
    if behaviour is not None:
        suite = behaviour
        timed("behaviour", lambda: check_behaviour(env, suite))
    tallies = {oracle: OracleTally() for oracle in ORACLE_KINDS}
    for outcome in outcomes:
        tally = tallies[outcome.scenario.oracle]
        tallies[outcome.scenario.oracle] = OracleTally(
            passed=tally.passed + outcome.passed, total=tally.total + 1
        )
    verdict = "rejected" if any(c.status == "failed" for c in checks) else "verified"
    return VerificationReport(
        env_name=env.name,
        spec_hash=env.spec.content_hash,
        seed=seed,
        verdict=verdict,
        checks=checks,
        scenarios_by_oracle={k: v for k, v in tallies.items() if v.total},
        differential=list(differential),
        timings_ms=timings,
    ).sealed()
