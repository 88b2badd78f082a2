"""τ²-bench airline and retail through our runtime (issue 8, 18): task import, the adapter environment,
calculate without eval, tau2's error wording, gold replay to reward 1, agreement with tau2's own
evaluators, bad input. Telecom (user tools, initial states, assertions): test_tau2_telecom.py."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

pytest.importorskip("tau2.domains.airline.environment")

from envfactory.eval import tau2, tau2_agreement
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.runtime import Environment, open_session


@pytest.fixture(scope="module")
def envs() -> dict[str, Environment]:
    return {domain: tau2.tau2_environment(domain) for domain in tau2.DOMAINS}


@pytest.fixture(scope="module")
def cases() -> dict[str, list[tau2.Tau2Case]]:
    return {domain: tau2.load_cases(domain) for domain in tau2.DOMAINS}


def test_tasks_import_as_task_v1_with_one_simulated_user_turn(cases: Any) -> None:
    assert {d: len(rows) for d, rows in cases.items()} == {"airline": 50, "retail": 114, "telecom": 114}
    for domain in ("airline", "retail"):
        for case in cases[domain]:
            task = case.task
            assert len(task.turns) == 1 and task.turns[0].user.kind == "simulated"
            assert task.turns[0].user.instructions
            criteria = case.source.evaluation_criteria
            assert [c.tool for c in task.turns[0].gold_calls] == [a.name for a in criteria.actions or []]
            assert task.turns[0].expected_outputs == list(criteria.communicate_info or [])
            assert case.reward_basis == {"DB", "COMMUNICATE"}  # every airline and retail task in 26.3
            assert task.origin.source == "tau2"
            assert task.initial_state == {} and task.user_tools == []  # none in 26.3: ids as before (v1 form)


def test_environment_exposes_tau2_tools_with_their_effects(envs: Any) -> None:
    airline = envs["airline"].spec
    names = {t.name for t in airline.tools}
    assert {"book_reservation", "cancel_reservation", "get_user_details", "calculate"} <= names
    effects = {t.name: t.effect for t in airline.tools}
    assert effects["book_reservation"] == "write" and effects["get_user_details"] == "read"
    assert effects["calculate"] == "read"


@pytest.mark.parametrize(
    "expression", ["2 + 2", "100 * 0.15", "(3.5 + 4.25) / 2", "-7 / 3", "2 ** 10", "7 // 2", "1/3 + 1/3", "10 - 3 * 2"]
)
def test_calculate_matches_tau2_without_eval(expression: str) -> None:
    tools = importlib.import_module("tau2.domains.airline.tools")
    # tau2's own calculate evals; it runs here only on these fixed strings, never on model text
    expected = tools.AirlineTools.calculate(None, expression)  # type: ignore[arg-type]
    assert tau2.calculate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [("__import__('os')", "Invalid characters"), ("2 ** 999999", "exponent too large"), ("1 / 0", "division by zero"),
     ("(1 + ", "invalid syntax"), ("1 2", "invalid syntax")],
)
def test_calculate_rejects_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises((ValueError, ZeroDivisionError), match=message):
        tau2.calculate(expression)


def test_tool_failures_are_typed_results_with_tau2_text(envs: Any) -> None:
    with open_session(envs["airline"]) as session:
        missing = session.call("get_user_details", {"user_id": "nobody"})
        assert missing.error is not None and missing.error.kind == "rule_violation"
        assert missing.error.message.startswith("Error: ")
        # arguments reach tau2 unchecked, as in tau2, and its own text answers
        bad = session.call("get_user_details", {"user_id": 3})
        assert bad.error is not None and bad.error.message == "Error: User 3 not found"
        short = session.call("book_reservation", {"user_id": "raj_sanchez_7340"})
        assert short.error is not None and short.error.kind == "invalid_arguments"
        assert short.error.message.startswith("Error: AirlineTools.book_reservation() missing 10 required positional")
        no_expr = session.call("calculate", {"expr": "1 + 1"})
        assert no_expr.error is not None and "unexpected keyword argument 'expr'" in no_expr.error.message
        calc = session.call("calculate", {"expression": "__import__('os').system('true')"})
        assert calc.error is not None and "Invalid characters" in calc.error.message


def test_sessions_and_forks_are_isolated(envs: Any, cases: Any) -> None:
    env = envs["airline"]
    with open_session(env) as one, open_session(env) as two:
        base = two.hash()
        assert one.hash() == base
        fork = one.fork()
        result = one.call("cancel_reservation", {"reservation_id": "EHGLP3"})
        assert result.ok, result
        assert one.hash() != base and two.hash() == base and fork.hash() == base
        fork.close()


@pytest.mark.slow
@pytest.mark.parametrize("domain", tau2.DOMAINS)
def test_every_gold_trajectory_replays_to_reward_one(domain: str, envs: Any, cases: Any) -> None:
    for case in cases[domain]:
        verdict = tau2.check(case, envs[domain], tau2.gold_steps(case))
        assert verdict.reward == 1.0 and verdict.db and verdict.action and verdict.communicate, case.source.id
        assert tau2.reward(verdict, case.reward_basis).total == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_official_evaluators_agree_on_gold_and_corruptions(domain: str, envs: Any, cases: Any) -> None:
    sample = cases[domain][::10]  # every tenth task (5 airline, 12 retail); the full table is in docs/eval.md
    table = tau2_agreement.agreement(sample, envs[domain])
    assert table["gold"].ours_pass == table["gold"].cases == len(sample)
    for kind, row in table.items():
        assert row.agree == row.cases, (kind, row.disagreements)
        assert row.agree_components == row.cases, kind
        assert row.agree_outputs == row.cases, (kind, row.output_mismatches)
    assert table["drop_message"].ours_pass == 0


def test_a_missing_message_fails_the_communicate_check(envs: Any, cases: Any) -> None:
    case = next(c for c in cases["retail"] if c.task.turns[0].expected_outputs and len(c.task.turns[0].gold_calls) < 6)
    steps = [s for s in tau2.gold_steps(case) if s.is_call]
    verdict = tau2.check(case, envs["retail"], steps)
    assert verdict.db and not verdict.communicate and verdict.reward == 0.0
    reward = tau2.reward(verdict, case.reward_basis)
    assert reward.total == 0.0
    action = reward.component("tau2_action")
    assert action is not None and action.score is None  # ACTION is outside the basis: reported, not scored


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> Any:
        if name.startswith("tau2"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(tau2.importlib, "import_module", fake)
    with pytest.raises(BenchmarkMissingError, match=r"requirements/bench\.txt"):
        tau2.load_cases("airline")
