"""The calibration report (issue 22, deliverable 2): over-specification and solve rate per refinement
strength with 95% intervals, over the recorded 0.5B run (`fixtures/traj-qwen0.5b`, real model answers),
over an oracle run with refinement and its `--no-refine` ablation, and through `envfactory synth
calibration`. The interval figures were checked against scipy.stats (t.ppf) once and are asserted as
numbers here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from record_trajectories import TARGET
from traj_fixtures import OracleClient, shop_tasks, write_task_stage
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.spec.synth_trajectories import (
    CalibrationReport,
    OverspecScore,
    QueryRecord,
    SolverAttempt,
    SynthTrajectoriesConfig,
    TrajectoryItem,
)
from envfactory.store import Workspace
from envfactory.synth.calibration import (
    calibration_report,
    mean_interval,
    rate_interval,
    read_items,
    t_critical,
)
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories


@pytest.mark.parametrize(("df", "quantile"), [(1, 12.706), (4, 2.776), (30, 2.042), (31, 2.0395), (40, 2.0211),
                                              (60, 2.0003), (120, 1.9799), (1000, 1.9623)])
def test_the_t_quantile_matches_the_distribution(df: int, quantile: float) -> None:
    assert t_critical(df) == pytest.approx(quantile, abs=1e-4)


def test_intervals_of_a_mean_and_of_a_rate() -> None:
    spread = mean_interval([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] * 4)
    assert (spread.value, spread.low, spread.high, spread.method) == (0.55, 0.457, 0.643, "t")
    wide = mean_interval([0.75, 0.153846, 0.666667])  # t: -0.2785 .. 1.3255, clipped to the score's range
    assert (wide.value, wide.low, wide.high) == (0.5235, 0.0, 1.0)
    assert (mean_interval([0.4]).low, mean_interval([0.4]).high) == (0.4, 0.4)
    assert mean_interval([]).method == "none" and rate_interval(0, 0).method == "none"
    rate = rate_interval(7, 10)
    assert (rate.value, rate.low, rate.high, rate.method) == (0.7, 0.3968, 0.8922, "wilson")
    with pytest.raises(ValueError):
        t_critical(0)


def test_the_recorded_0_5b_run_reports_its_explicit_queries() -> None:
    report = calibration_report(read_items(TARGET), run="traj-qwen0.5b")
    explicit = report.rows[0]
    assert (explicit.queries, explicit.tried, explicit.solved, explicit.attempts) == (3, 3, 0, 3)
    assert explicit.overspec.value == 0.4124  # the funnel's explicit_overspec
    assert (explicit.solve_rate.value, explicit.solve_rate.low, explicit.solve_rate.high) == (0.0, 0.0, 0.5615)
    # one refinement was kept (strength 3, the look-up); the other two were refused as identical to the request
    assert [row.queries for row in report.rows[1:]] == [0, 0, 1, 0] and report.refined.queries == 1
    assert report.explicit_conditional  # the explicit attempt of the refined task was a fallback
    assert (report.overspec_ratio, report.solve_rate_drop, report.meets_solve_target) == (0.8082, 0.0, True)


def _item(task: str, explicit: float, refined: float | None, operators: int, verified: list[tuple[str, bool]]) -> TrajectoryItem:
    ops = ["omit_inferable", "compress_steps", "add_ambiguity", "weave_goals"][:operators]
    query = QueryRecord(explicit="x", explicit_overspec=OverspecScore(score=explicit),
                        refined="y" if refined is not None else "", operators=ops,  # type: ignore[arg-type]
                        refined_overspec=OverspecScore(score=refined) if refined is not None else None)
    attempts = [SolverAttempt(attempt=i, seed=i, query=kind, verified=ok)  # type: ignore[arg-type]
                for i, (kind, ok) in enumerate(verified)]
    return TrajectoryItem(task_id=task, status="unsolved", query=query, attempts=attempts)


def test_rows_count_tasks_not_attempts_and_the_drop_uses_the_baseline() -> None:
    items = [
        _item("a", 0.8, 0.2, 2, [("refined", False), ("refined", True)]),
        _item("b", 0.6, 0.4, 2, [("refined", False), ("refined", False), ("explicit", True), ("explicit", False)]),
        _item("c", 0.4, 0.0, 4, [("refined", True)]),
        _item("d", 0.5, None, 0, []),  # refinement refused, not solved: a query but no attempt
    ]
    report = calibration_report(items)
    two = report.rows[2]
    assert (two.queries, two.tried, two.solved, two.attempts, two.verified_attempts) == (2, 2, 1, 4, 1)
    assert two.overspec.value == pytest.approx(0.3)
    assert (report.rows[4].queries, report.rows[4].solved) == (1, 1) and report.rows[1].queries == 0
    assert (report.refined.queries, report.refined.tried, report.refined.solved) == (3, 3, 2)
    assert (report.explicit.queries, report.explicit.tried, report.explicit.solved) == (4, 1, 1)
    assert report.explicit_conditional
    assert report.overspec_ratio == pytest.approx(round(0.2 / 0.575, 4)) and report.meets_overspec_target
    assert report.solve_rate_drop == pytest.approx(100 * (1.0 - 2 / 3), abs=0.01)  # against the conditional row
    baseline = [_item(t, s, None, 0, [("explicit", ok)]) for t, s, ok in
                [("a", 0.8, True), ("b", 0.6, True), ("c", 0.4, True), ("d", 0.5, False)]]
    against = calibration_report(items, baseline=baseline, baseline_run="ablation")
    assert against.baseline is not None and (against.baseline.tried, against.baseline.solved) == (4, 3)
    assert against.solve_rate_drop == pytest.approx(100 * (0.75 - 2 / 3), abs=0.01) and against.meets_solve_target


def _oracle_run(root: Path, run: str, refine: bool | None) -> None:
    workspace = Workspace(root)
    tasks = shop_tasks()
    write_task_stage(workspace, run, tasks)
    oracle = OracleClient(tasks)
    run_synth_trajectories(SynthTrajectoriesConfig(from_run=run, seed=3, refine=refine), workspace,
                           TrajectoryDeps(writer=oracle, solver=oracle))


def test_the_cli_reports_a_refined_run_against_its_ablation(tmp_path: Path) -> None:
    _oracle_run(tmp_path, "refined", None)
    _oracle_run(tmp_path, "explicit", False)
    runner = CliRunner()
    shown = runner.invoke(app, ["synth", "calibration", "--from", "refined", "--baseline", "explicit",
                                "-w", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "1-4 (refined)" in shown.output and "baseline explicit" in shown.output and "target" in shown.output
    dumped = runner.invoke(app, ["synth", "calibration", "--from", "refined", "--baseline", "explicit", "--json",
                                 "-w", str(tmp_path)])
    report = CalibrationReport.model_validate(json.loads(dumped.output))
    # the oracle solves every refined query, so no explicit attempt was needed; the ablation solves all three
    assert (report.refined.queries, report.refined.tried, report.refined.solved) == (3, 3, 3)
    assert report.explicit.tried == 0 and report.baseline is not None and report.baseline.solved == 3
    assert report.solve_rate_drop == 0.0 and report.meets_solve_target
    assert sum(row.queries for row in report.rows[1:]) == 3
    missing = runner.invoke(app, ["synth", "calibration", "--from", "nothing", "-w", str(tmp_path)])
    assert missing.exit_code != 0 and "no synth-trajectories items" in missing.output


def test_the_benchmark_reports_trajectories_per_hour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_benchmark",
                                                  Path(__file__).resolve().parents[2] / "benchmarks" / "synth.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    _oracle_run(tmp_path, "refined", None)
    stage = tmp_path / "runs" / "refined" / "synth-trajectories"
    row = bench.trajectory_throughput(stage)
    assert (row["items"], row["queries"], row["verified"]) == (3.0, 3.0, 3.0) and row["wall_s"] > 0
    assert row["verified_per_hour"] == pytest.approx(3 * 3600 / row["wall_s"])
    assert row["hours_for_1000"] == pytest.approx(1000 / row["verified_per_hour"])
    bench.report_trajectories(tmp_path, "refined", None)
    printed = capsys.readouterr().out
    assert "verified/h" in printed and "1-4 (refined)" in printed
