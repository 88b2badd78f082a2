"""The adversarial reward suite (issue #17), run in CI: a scripted reward-hacking policy tries every
strategy of `benchmarks/adversarial.py` against a write task and a read-only task in each of five
environments (shop, tracker, calendar, blogger_posts, microcks_local_secrets), over a served HTTP API
with a trainer and a policy token. Targets: no-op, snapshot restore and task swap score 0; gold plus
failing writes at most 0.8; every other strategy at most 0.5; the gold controls still 1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import adversarial


@pytest.fixture(scope="module")
def result() -> adversarial.SuiteResult:
    return adversarial.run_suite()


def test_the_suite_covers_twelve_strategies_and_five_environments(result: adversarial.SuiteResult) -> None:
    attacks = [name for name in result.scores if "control" not in name]
    assert len(attacks) >= 12
    assert all(len(row) == 5 for row in result.scores.values())
    assert len({c.env for c in adversarial.CASES}) == 5


@pytest.mark.parametrize("strategy", list(adversarial.STRATEGIES))
def test_every_strategy_meets_its_target(result: adversarial.SuiteResult, strategy: str) -> None:
    op, bound = adversarial.TARGETS.get(strategy, adversarial.DEFAULT_TARGET)
    row = result.scores[strategy]
    assert adversarial.meets(strategy, result.worst(strategy)), f"{strategy}: {row} (target {op} {bound})"


def test_the_policy_role_was_refused_the_control_routes(result: adversarial.SuiteResult) -> None:
    assert {"restore: 403 forbidden", "reward for another task: 403 forbidden",
            "reward for another task: 409 conflict"} <= set(result.refused)


def test_wrong_ids_are_shaped_like_the_real_one() -> None:
    assert adversarial.wrong_ids("ord_00002", 2) == ["ord_90000", "ord_90001"]
    assert adversarial.wrong_ids("evt_0002", 1) == ["evt_9000"]
