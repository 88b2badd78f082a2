"""The calibration report of a trajectory stage (issue 22, deliverable 2): over-specification and solve rate
per refinement strength (0–4), each with a 95% confidence interval.

Contract:
- `calibration_report(items, run=..., baseline=...)` is a pure function of `TrajectoryItem`s (the
  `items/*.json` of a `synth-trajectories` stage); `read_items(stage_dir)` reads them in file-name order.
- The unit is the task: a strength row counts the queries written at that strength (strength 0 is the
  explicit query, s ≥ 1 a refinement with s operators), their mean over-specification with a Student t
  interval (clipped to [0, 1], the score's range), and of the tasks with at least one solver attempt on
  that query (`tried`), those some attempt verified, with a Wilson interval. Attempts are counted too
  but get no interval (attempts of one task are not independent).
- With refinement on, the stage tries the explicit query only after no refined attempt verified, so the
  explicit solve rate is conditional (`explicit_conditional`); `baseline` (the items of a `--no-refine`
  run on the same tasks) gives the unconditional explicit row, which the drop is then computed against.
- `t_critical(df)` is the two-sided 95% Student t quantile: a table for df ≤ 30 (3 decimals), the
  Cornish–Fisher expansion above (error < 1e-4). No scipy: it is not a dependency of the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from envfactory.spec.synth_trajectories import CalibrationReport, Interval, StrengthRow, TrajectoryItem
from envfactory.synth.trajectory_funnel import wilson_interval

_T_TABLE = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
            2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
            2.045, 2.042)
_Z = 1.959963985
OVERSPEC_TARGET = 0.5
SOLVE_DROP_TARGET = 15.0


def t_critical(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` ≥ 1 degrees of freedom (see the module docstring)."""
    if df < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if df <= len(_T_TABLE):
        return _T_TABLE[df - 1]
    z = _Z
    terms = ((z ** 3 + z) / 4, (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
             (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
             (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160)
    return float(z + sum(term / df ** power for power, term in enumerate(terms, start=1)))


def mean_interval(values: Sequence[float], bounds: tuple[float, float] = (0.0, 1.0)) -> Interval:
    """The mean of `values` with its 95% t interval, clipped to `bounds` (the range the values can take;
    over-specification is a share). One value has no spread: the interval is the point."""
    if not values:
        return Interval()
    mean = sum(values) / len(values)
    half = 0.0
    if len(values) > 1:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        half = t_critical(len(values) - 1) * sd / math.sqrt(len(values))
    return Interval(value=round(mean, 4), low=round(max(bounds[0], mean - half), 4),
                    high=round(min(bounds[1], mean + half), 4), method="t")


def rate_interval(successes: int, trials: int) -> Interval:
    """`successes / trials` with its 95% Wilson interval (all 0 without trials)."""
    if trials == 0:
        return Interval()
    low, high = wilson_interval(successes, trials)
    return Interval(value=round(successes / trials, 4), low=low, high=high, method="wilson")


def _row(strength: int | None, cases: Sequence[tuple[float, list[bool]]]) -> StrengthRow:
    """A row over (over-specification, verified flag of each attempt on that query) per task."""
    tried = [flags for _, flags in cases if flags]
    solved = sum(any(flags) for flags in tried)
    return StrengthRow(strength=strength, queries=len(cases), overspec=mean_interval([s for s, _ in cases]),
                       tried=len(tried), solved=solved, solve_rate=rate_interval(solved, len(tried)),
                       attempts=sum(len(f) for f in tried), verified_attempts=sum(sum(f) for f in tried))


def _cases(items: Sequence[TrajectoryItem]) -> dict[int, list[tuple[float, list[bool]]]]:
    by_strength: dict[int, list[tuple[float, list[bool]]]] = {}
    for item in items:
        query = item.query
        if query is None or not query.explicit:
            continue
        explicit = [a.verified for a in item.attempts if a.query == "explicit"]
        by_strength.setdefault(0, []).append((query.explicit_overspec.score, explicit))
        if query.refined and query.refined_overspec is not None:
            refined = [a.verified for a in item.attempts if a.query == "refined"]
            by_strength.setdefault(len(query.operators), []).append((query.refined_overspec.score, refined))
    return by_strength


def calibration_report(items: Sequence[TrajectoryItem], *, run: str = "",
                       baseline: Sequence[TrajectoryItem] | None = None,
                       baseline_run: str | None = None) -> CalibrationReport:
    """The report over a stage's items (see the module docstring)."""
    cases = _cases(items)
    rows = [_row(strength, cases.get(strength, [])) for strength in range(5)]
    explicit = rows[0]
    refined = _row(None, [case for strength in range(1, 5) for case in cases.get(strength, [])])
    base = _row(0, _cases(baseline).get(0, [])) if baseline is not None else None
    conditional = any(item.query is not None and item.query.refined for item in items)
    reference = base if base is not None else explicit
    ratio = drop = None
    if refined.queries and explicit.queries and explicit.overspec.value > 0:
        ratio = round(refined.overspec.value / explicit.overspec.value, 4)
    if refined.tried and reference.tried:
        drop = round(100 * (reference.solve_rate.value - refined.solve_rate.value), 2)
    return CalibrationReport(
        run=run, items=len(items), rows=rows, explicit=explicit, refined=refined, baseline=base,
        baseline_run=baseline_run, explicit_conditional=conditional, overspec_ratio=ratio, solve_rate_drop=drop,
        meets_overspec_target=None if ratio is None else ratio <= OVERSPEC_TARGET,
        meets_solve_target=None if drop is None else drop <= SOLVE_DROP_TARGET,
    )


def read_items(stage_dir: Path) -> list[TrajectoryItem]:
    """The `TrajectoryItem`s of a trajectory stage directory (`items/*.json`, in file-name order)."""
    folder = stage_dir / "items"
    return [TrajectoryItem.model_validate_json(path.read_bytes()) for path in sorted(folder.glob("*.json"))]
