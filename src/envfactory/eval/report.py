"""Evaluation reports: metrics from finished attempts, as JSON (`EvalReport`), Markdown and SVG charts.

Contract:
- Pure functions of the attempt records (`AttemptRecord`, one per finished (task, attempt)); records
  are sorted by (task, attempt) first, so the report does not depend on the order attempts finished in.
- Metrics of a set of tasks: `pass_at_1` = mean over tasks of the share of its attempts that passed
  (the unbiased pass@1 estimate from k samples); `pass_hat_k` = share of tasks whose k attempts all
  passed (τ-bench's pass^k with n = k; tasks with fewer than k finished attempts are left out of it);
  `mean_reward` = mean reward total over attempts; `components` = mean of each named reward component
  over the attempts that scored it; `failures` = counts of failed-step kinds.
- Groups: overall, per suite (benchmark and category), per environment (a task counts in each of its
  environments) and per domain (`TaskOrigin.domain`).
- Charts are SVG written by hand (no plotting dependency): horizontal bars of pass@1 and mean reward.
  Same records give byte-identical files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Literal

from pydantic import Field

from envfactory.agent import StepFailure
from envfactory.spec import Reward, SpecModel, TerminationReason, Trajectory
from envfactory.store import write_text_atomic

__all__ = ["AttemptRecord", "EvalReport", "Metrics", "bar_chart_svg", "build_report", "compute_metrics",
           "render_markdown", "write_report"]

PASS_THRESHOLD = 1.0 - 1e-9


class AttemptRecord(SpecModel):
    """One finished (task, attempt): what was run, its score and its trajectory."""

    schema_version: Literal[1] = 1
    suite: str
    task_id: str
    source_id: str = ""
    domain: str = ""
    envs: list[str]
    attempt: int = Field(ge=0)
    seed: int
    passed: bool
    reward: Reward
    verdict: str = Field(default="", description="why the attempt failed, in the checker's words")
    termination: TerminationReason
    failures: list[StepFailure] = Field(default_factory=list)
    llm_calls: int = 0
    tool_calls: int = 0
    trajectory: Trajectory

    @property
    def key(self) -> tuple[str, str, int]:
        """(suite, task id, attempt number): what identifies an attempt across a resumed run."""
        return (self.suite, self.task_id, self.attempt)


class Metrics(SpecModel):
    """Scores of a set of attempts: task and attempt counts, pass@1, pass^k, mean reward and its
    components, failures by kind."""
    tasks: int
    attempts: int
    pass_at_1: float
    pass_hat_k: float | None = Field(default=None, description="None when no task has k finished attempts")
    mean_reward: float
    components: dict[str, float] = Field(default_factory=dict)
    failures: dict[str, int] = Field(default_factory=dict)
    mean_tool_calls: float = 0.0


class EvalReport(SpecModel):
    """The report of one evaluation run: its model, k and seed, metrics overall and grouped (by suite and
    more)."""
    schema_version: Literal[1] = 1
    run_id: str
    model: str
    k: int
    seed: int
    overall: Metrics
    by_suite: dict[str, Metrics]
    by_environment: dict[str, Metrics]
    by_domain: dict[str, Metrics]


def _sorted(records: Iterable[AttemptRecord]) -> list[AttemptRecord]:
    return sorted(records, key=lambda r: r.key)


def compute_metrics(records: Sequence[AttemptRecord], k: int) -> Metrics:
    """Metrics of `records` (see the module docstring); an empty set gives zeros."""
    by_task: dict[tuple[str, str], list[AttemptRecord]] = defaultdict(list)
    for record in records:
        by_task[(record.suite, record.task_id)].append(record)
    if not by_task:
        return Metrics(tasks=0, attempts=0, pass_at_1=0.0, mean_reward=0.0)
    pass_at_1 = sum(sum(r.passed for r in rows) / len(rows) for rows in by_task.values()) / len(by_task)
    complete = [rows for rows in by_task.values() if len(rows) >= k]
    pass_hat_k = sum(all(r.passed for r in rows[:k]) for rows in complete) / len(complete) if complete else None
    scored: dict[str, list[float]] = defaultdict(list)
    failures: Counter[str] = Counter()
    for record in records:
        for component in record.reward.components:
            if component.score is not None:
                scored[component.name].append(component.score)
        failures.update(f.kind for f in record.failures)
    return Metrics(
        tasks=len(by_task),
        attempts=len(records),
        pass_at_1=round(pass_at_1, 6),
        pass_hat_k=None if pass_hat_k is None else round(pass_hat_k, 6),
        mean_reward=round(sum(r.reward.total for r in records) / len(records), 6),
        components={name: round(sum(v) / len(v), 6) for name, v in sorted(scored.items())},
        failures=dict(sorted(failures.items())),
        mean_tool_calls=round(sum(r.tool_calls for r in records) / len(records), 3),
    )


def _grouped(records: Sequence[AttemptRecord], keys: Callable[[AttemptRecord], Iterable[str]],
             k: int) -> dict[str, Metrics]:
    groups: dict[str, list[AttemptRecord]] = defaultdict(list)
    for record in records:
        for key in keys(record):
            groups[key].append(record)
    return {key: compute_metrics(rows, k) for key, rows in sorted(groups.items())}


def build_report(run_id: str, model: str, k: int, seed: int, records: Iterable[AttemptRecord]) -> EvalReport:
    """The `EvalReport` of one run: metrics overall and grouped, from its attempt records in a stable
    order."""
    rows = _sorted(records)
    return EvalReport(
        run_id=run_id, model=model, k=k, seed=seed,
        overall=compute_metrics(rows, k),
        by_suite=_grouped(rows, lambda r: [r.suite], k),
        by_environment=_grouped(rows, lambda r: r.envs, k),
        by_domain=_grouped(rows, lambda r: [r.domain or "(none)"], k),
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _table(title: str, groups: dict[str, Metrics], k: int) -> list[str]:
    lines = [f"### {title}", "", f"| {title.split(' ')[-1]} | tasks | attempts | pass@1 | pass^{k} | mean reward | "
             "tool calls/attempt |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, m in groups.items():
        lines.append(f"| {key} | {m.tasks} | {m.attempts} | {_pct(m.pass_at_1)} | {_pct(m.pass_hat_k)} | "
                     f"{m.mean_reward:.3f} | {m.mean_tool_calls:.2f} |")
    return [*lines, ""]


def render_markdown(report: EvalReport, charts: Sequence[str] = ()) -> str:
    """The report as Markdown; `charts` are relative paths of SVG files to embed."""
    o = report.overall
    lines = [
        f"# Evaluation {report.run_id}", "",
        f"Model `{report.model}`, k = {report.k}, seed {report.seed}.", "",
        f"**Overall**: {o.tasks} tasks, {o.attempts} attempts, pass@1 {_pct(o.pass_at_1)}, "
        f"pass^{report.k} {_pct(o.pass_hat_k)}, mean reward {o.mean_reward:.3f}.", "",
    ]
    lines += [f"![{Path(chart).stem}]({chart})" for chart in charts] + ([""] if charts else [])
    lines += _table("By suite", report.by_suite, report.k)
    lines += _table("By environment", report.by_environment, report.k)
    lines += _table("By domain", report.by_domain, report.k)
    lines += ["### Reward components (mean where scored)", "", "| component | mean |", "|---|---:|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in o.components.items()]
    lines += ["", "### Failed steps", ""]
    lines += [f"- {kind}: {count}" for kind, count in o.failures.items()] or ["- none"]
    return "\n".join(lines) + "\n"


def bar_chart_svg(title: str, rows: Sequence[tuple[str, float, float]]) -> str:
    """Horizontal bars of two values in [0, 1] per row (pass@1 and mean reward), as an SVG document."""
    label_w, bar_w, row_h, top = 170, 300, 34, 40
    height = top + row_h * max(len(rows), 1) + 30
    width = label_w + bar_w + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, first, second) in enumerate(rows):
        y = top + index * row_h
        parts.append(f'<text x="10" y="{y + 16}">{escape(label[:26])}</text>')
        for offset, value, colour in ((0, first, "#3b6fb6"), (14, second, "#e39b2d")):
            length = round(bar_w * max(0.0, min(1.0, value)), 1)
            parts.append(f'<rect x="{label_w}" y="{y + offset}" width="{length}" height="12" fill="{colour}"/>')
            parts.append(f'<text x="{label_w + length + 4}" y="{y + offset + 10}">{value:.2f}</text>')
    legend_y = height - 12
    parts.append(f'<rect x="10" y="{legend_y - 9}" width="10" height="10" fill="#3b6fb6"/>'
                 f'<text x="24" y="{legend_y}">pass@1</text>')
    parts.append(f'<rect x="90" y="{legend_y - 9}" width="10" height="10" fill="#e39b2d"/>'
                 f'<text x="104" y="{legend_y}">mean reward</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_report(directory: Path, report: EvalReport) -> list[Path]:
    """Write `report.json`, `report.md` and the charts into `directory`; returns the paths."""
    charts = {
        "by_suite.svg": bar_chart_svg("pass@1 and mean reward by suite",
                                      [(k, m.pass_at_1, m.mean_reward) for k, m in report.by_suite.items()]),
        "by_environment.svg": bar_chart_svg("pass@1 and mean reward by environment",
                                            [(k, m.pass_at_1, m.mean_reward) for k, m in report.by_environment.items()]),
    }
    paths = []
    for name, svg in charts.items():
        paths.append(directory / name)
        write_text_atomic(directory / name, svg)
    write_text_atomic(directory / "report.json", report.model_dump_json(indent=2) + "\n")
    write_text_atomic(directory / "report.md", render_markdown(report, list(charts)))
    return [directory / "report.json", directory / "report.md", *paths]
