"""`envfactory synth calibration --from RUN [--baseline RUN2]`: over-specification and solve rate per
refinement strength (0–4) of a finished `synth trajectories` run, with 95% confidence intervals
(`synth.calibration.calibration_report`: Student t for the mean over-specification, Wilson for the solve
rate, per task).

`--baseline` names a `--no-refine` run on the same tasks: its explicit row is the unconditional explicit
solve rate the drop is measured against (with refinement on, the stage tries the explicit query only
after the refined one failed). `--json` prints the `CalibrationReport`. A run without a trajectory stage
is a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envfactory.cli._output import console, emit_json
from envfactory.errors import StoreError
from envfactory.spec.synth_trajectories import CalibrationReport, Interval, StrengthRow, TrajectoryItem
from envfactory.store import Workspace
from envfactory.synth.calibration import calibration_report, read_items
from envfactory.synth.trajectories import STAGE


def _items(space: Workspace, run: str) -> list[TrajectoryItem]:
    stage_dir = space.run_path(run) / STAGE
    if not (stage_dir / "items").is_dir():
        raise StoreError(f"run {run!r} has no {STAGE} items in {stage_dir}: run `envfactory synth trajectories` first")
    return read_items(stage_dir)


def _interval(interval: Interval, percent: bool = False) -> str:
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    if interval.method == "none":
        return "-"
    return (f"{interval.value * scale:.{digits}f} [{interval.low * scale:.{digits}f}, "
            f"{interval.high * scale:.{digits}f}]")


def calibration_table(report: CalibrationReport) -> Table:
    """The report as a table: a row per strength, the pooled refined row and the baseline's explicit row."""
    table = Table(title=f"calibration of {report.run} ({report.items} items; 95% intervals: t for the mean, "
                        "Wilson for the rate)")
    for column in ("strength", "queries", "over-specification", "tried", "solved", "solve rate %", "attempts"):
        table.add_column(column, justify="left" if column == "strength" else "right")
    labelled: list[tuple[str, StrengthRow]] = [
        (f"{r.strength}" + (" (explicit, conditional)" if r.strength == 0 and report.explicit_conditional else ""), r)
        for r in report.rows]
    labelled.append(("1-4 (refined)", report.refined))
    if report.baseline is not None:
        labelled.append((f"0 (baseline {report.baseline_run})", report.baseline))
    for label, row in labelled:
        table.add_row(label, str(row.queries), _interval(row.overspec), str(row.tried), str(row.solved),
                      _interval(row.solve_rate, percent=True), f"{row.verified_attempts}/{row.attempts}")
    return table


def _verdict(report: CalibrationReport) -> str:
    ratio = "-" if report.overspec_ratio is None else f"{report.overspec_ratio:.2f}"
    drop = "-" if report.solve_rate_drop is None else f"{report.solve_rate_drop:+.1f}"

    def met(flag: bool | None) -> str:
        return "not measurable" if flag is None else ("met" if flag else "missed")

    return (f"refined/explicit over-specification {ratio} (target ≤ 0.5: {met(report.meets_overspec_target)}); "
            f"solve rate drop {drop} points (target ≤ 15: {met(report.meets_solve_target)})")


def calibration(
    from_run: Annotated[str, typer.Option("--from", help="The run whose synth-trajectories stage to report.")],
    baseline: Annotated[str | None, typer.Option("--baseline", help="A --no-refine run on the same tasks.")] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE",
                                            file_okay=False)] = Path("workspace"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Over-specification and solve rate per refinement strength, with 95% confidence intervals."""
    space = Workspace(workspace)
    report = calibration_report(_items(space, from_run), run=from_run,
                                baseline=_items(space, baseline) if baseline else None, baseline_run=baseline)
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    out = console()
    out.print(calibration_table(report))
    out.print(_verdict(report))
