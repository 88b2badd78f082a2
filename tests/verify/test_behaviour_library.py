"""Every shipped environment's behavioural suite (issue 19), run from its `behaviour.json.gz`, against the
committed expected results `tests/verify/data/behaviour_expected.json`: a scenario whose verdict moves
fails this test, improvements included, so the file always says where the library stands. Known
failures are listed there with their reasons (and in each suite's `known_failures`), never hidden.

Re-record after a change that moves verdicts (say why in the commit):
    python tests/verify/test_behaviour_library.py --write
About 20-40 s on 2 loaded cores for the whole library; no catalog, no LLM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from envfactory.runtime import library_env_names, library_root, load_env
from envfactory.spec.behaviour import BehaviourSuite, stored_suite
from envfactory.verify.behaviour_suite import run_suite, with_known_failures

EXPECTED = Path(__file__).parent / "data" / "behaviour_expected.json"


def _suite(name: str) -> BehaviourSuite:
    suite = stored_suite(library_root() / name)
    assert suite is not None, f"{name}: keeps no behavioural suite (envs behaviour --write)"
    return suite


def current_results() -> dict[str, Any]:
    """Per environment: the ids of the passed scenarios, and each failed or inconclusive one with why."""
    results: dict[str, Any] = {}
    for name in library_env_names():
        suite = _suite(name)
        verdicts, checks = run_suite(load_env(library_root() / name), suite)
        reasons = with_known_failures(suite, {k: "failed" for k in verdicts}, checks).known_failures
        results[name] = {
            "passed": sorted(k for k, v in verdicts.items() if v == "passed"),
            "failed": {k: reasons[k] for k in sorted(verdicts) if verdicts[k] == "failed"},
            "inconclusive": {k: reasons[k] for k in sorted(verdicts) if verdicts[k] == "inconclusive"},
        }
    return results


def test_every_behavioural_suite_gives_the_recorded_verdicts() -> None:
    expected = json.loads(EXPECTED.read_text())["environments"]
    current = current_results()
    assert sorted(current) == sorted(expected), "environments added or dropped: re-record"
    moved: list[str] = []
    for name, now in current.items():
        before = expected[name]
        for verdict in ("passed", "failed", "inconclusive"):
            for sid in sorted(set(now[verdict]) - set(before[verdict])):
                was = next((v for v in ("passed", "failed", "inconclusive") if sid in before[v]), "absent")
                moved.append(f"{name}: {sid} {was} -> {verdict}"
                             + (f" ({now[verdict][sid][:200]})" if verdict != "passed" else ""))
    assert not moved, "verdicts moved (regressions fail; improvements: re-record):\n" + "\n".join(moved)


def test_the_suites_known_failures_are_the_recorded_failures_with_reasons() -> None:
    expected = json.loads(EXPECTED.read_text())["environments"]
    for name in library_env_names():
        suite = _suite(name)
        assert sorted(suite.known_failures) == sorted(expected[name]["failed"]), name
        assert all(reason.startswith(tuple(f"{k}:" for k in ("lifecycle", "scoping", "reference", "state_machine",
                                                              "pagination", "rule", "validation"))) and "expected" in reason
                   for reason in suite.known_failures.values()), name
        assert all(len(s.steps) >= 3 for s in suite.scenarios), name


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    results = current_results()
    EXPECTED.write_text(json.dumps({
        "about": "per-environment verdicts of the shipped behavioural suites; see this test's docstring",
        "environments": results,
    }, indent=1, sort_keys=True) + "\n")
    totals = {v: sum(len(r[v]) for r in results.values()) for v in ("passed", "failed", "inconclusive")}
    print(f"{len(results)} environments: {totals}")
