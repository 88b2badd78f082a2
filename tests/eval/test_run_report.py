"""Report metrics on hand-made attempt records whose pass@1, pass^k and means are checkable by hand."""

from __future__ import annotations

from pathlib import Path

from envfactory.agent import StepFailure
from envfactory.eval.report import AttemptRecord, build_report, compute_metrics, write_report
from envfactory.spec import EnvRef, Reward, RewardComponent, TerminationReason, Trajectory


def record(suite: str, task: str, attempt: int, passed: bool, envs: list[str], domain: str,
           failures: int = 0) -> AttemptRecord:
    score = 1.0 if passed else 0.0
    reward = Reward.combine([RewardComponent(name="main", score=score),
                             RewardComponent(name="gate", role="factor", score=None)])
    trajectory = Trajectory(id=f"{task}-{attempt}", task_id=task, envs=[EnvRef(name=e, version="1") for e in envs],
                            seed=attempt, messages=[], termination=TerminationReason.AGENT_STOP)
    return AttemptRecord(
        suite=suite, task_id=task, domain=domain, envs=envs, attempt=attempt, seed=attempt, passed=passed,
        reward=reward, termination=TerminationReason.AGENT_STOP, trajectory=trajectory, tool_calls=2 * attempt,
        failures=[StepFailure(turn=0, step=0, kind="step_limit", reason="bound")] * failures,
    )


RECORDS = [
    record("bfcl_base", "a", 0, True, ["x"], "base"),
    record("bfcl_base", "a", 1, False, ["x"], "base", failures=1),
    record("bfcl_base", "b", 0, True, ["x", "y"], "base"),
    record("bfcl_base", "b", 1, True, ["x", "y"], "base"),
    record("tau2_airline", "c", 1, False, ["z"], "airline", failures=2),
    record("tau2_airline", "c", 0, False, ["z"], "airline"),
]


def test_pass_at_1_and_pass_hat_k_by_hand() -> None:
    metrics = compute_metrics(RECORDS, k=2)
    assert metrics.tasks == 3 and metrics.attempts == 6
    assert metrics.pass_at_1 == round((0.5 + 1.0 + 0.0) / 3, 6)  # per-task pass share, averaged
    assert metrics.pass_hat_k == round(1 / 3, 6)  # only task b passed both attempts
    assert metrics.mean_reward == 0.5 and metrics.components == {"main": 0.5}  # the unscored gate is left out
    assert metrics.failures == {"step_limit": 3} and metrics.mean_tool_calls == 1.0
    partial = compute_metrics(RECORDS[:1], k=2)
    assert partial.pass_hat_k is None and partial.pass_at_1 == 1.0  # no task has k attempts yet


def test_groups_and_files_do_not_depend_on_record_order(tmp_path: Path) -> None:
    report = build_report("r", "m", 2, 0, RECORDS)
    assert report.by_suite["bfcl_base"].pass_at_1 == 0.75 and report.by_suite["tau2_airline"].pass_at_1 == 0.0
    assert report.by_environment["y"].tasks == 1 and report.by_environment["x"].tasks == 2
    assert set(report.by_domain) == {"base", "airline"}
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    write_report(first, report)
    write_report(second, build_report("r", "m", 2, 0, list(reversed(RECORDS))))
    for name in ("report.json", "report.md", "by_suite.svg", "by_environment.svg"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    markdown = (first / "report.md").read_text()
    assert "| bfcl_base | 2 | 4 | 75.0% | 50.0% | 0.750 |" in markdown
    svg = (first / "by_suite.svg").read_text()
    assert svg.count("<rect") == 2 * 2 + 1 + 2  # two bars per suite, the background, two legend keys
