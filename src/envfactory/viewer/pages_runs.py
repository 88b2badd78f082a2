"""Run, funnel and evaluation pages: runs with their stage manifests, the library funnels and run
funnels with plots, and evaluation runs (per-suite tables and charts, each attempt's trajectory).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from envfactory.spec.library import LibraryFunnel
from envfactory.viewer.charts import bar_chart, count, percent
from envfactory.viewer.jsonl import Page
from envfactory.viewer.models import KNOWN_EVAL_VERSIONS, AttemptView, EvalReportView, check_version
from envfactory.viewer.pages_records import trajectory_context, validate_line
from envfactory.viewer.render import PageResult, query_int
from envfactory.viewer.workspace import (
    ATTEMPT_FILE,
    EVAL_REPORT,
    ArtifactProblem,
    NotFound,
    RunInfo,
    WorkspaceData,
)

PAGE_SIZE = 50
FUNNEL_STAGES = ("resources_considered", "proposals", "proposals_processed", "built", "verified", "accepted")


def runs_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/runs?q=&page=`: every run with its command and stages."""
    needle = query.get("q", "").strip().lower()
    runs = data.runs()
    if needle:
        runs = [r for r in runs if needle in r.run_id.lower()
                or (r.manifest is not None and needle in r.manifest.command.lower())]
    page = Page.of(runs, query_int(query, "page", 1), PAGE_SIZE)
    return PageResult("runs.html", {"title": "Runs", "page": page, "q": query.get("q", "")})


def stage_funnel(data: WorkspaceData, run: RunInfo, stage: str) -> dict[str, Any] | None:
    """A stage's own `funnel.json` (synthesis stages write one: `stages` in order, `drops` per stage and
    reason, and scalar figures), read tolerantly; None when the stage has none."""
    path = run.path / stage / "funnel.json"
    if not path.is_file():
        return None
    try:
        raw = data.json(path)
    except ArtifactProblem as exc:
        return {"problem": str(exc), "charts": [], "figures": {}}
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), dict):
        return {"problem": f"{data.display(path)}: no \"stages\" object to plot", "charts": [], "figures": {}}
    stages = [(str(k), float(v)) for k, v in raw["stages"].items() if isinstance(v, int | float)]
    charts = [bar_chart(f"{stage}: funnel", stages)]
    drops = raw.get("drops")
    for where, reasons in (drops.items() if isinstance(drops, dict) else []):
        if isinstance(reasons, dict) and reasons:
            charts.append(bar_chart(f"{stage}: dropped at {where}", sorted(
                (str(k), float(v)) for k, v in reasons.items() if isinstance(v, int | float))))
    kept = raw.get("kept")
    for part in ("domains", "per_env"):
        counts = kept.get(part) if isinstance(kept, dict) else None
        if isinstance(counts, dict) and counts:
            charts.append(bar_chart(f"{stage}: kept per {'domain' if part == 'domains' else 'environment'}",
                                    sorted((str(k), float(v)) for k, v in counts.items() if isinstance(v, int | float))))
    charts += _strength_charts(stage, raw.get("per_strength"))
    figures = {k: v for k, v in raw.items() if isinstance(v, int | float | str) and k != "schema_version"}
    return {"problem": "", "charts": charts, "figures": figures}


def _strength_charts(stage: str, per_strength: Any) -> list[Any]:
    """Trajectory synthesis: mean over-specification and solve rate per refinement strength."""
    if not isinstance(per_strength, dict) or not per_strength:
        return []
    rows = {str(k): v for k, v in sorted(per_strength.items()) if isinstance(v, dict)}
    overspec = [(f"strength {k}", float(v.get("mean_overspec", 0.0))) for k, v in rows.items()]
    solved = [(f"strength {k}", v.get("solved", 0) / v["attempts"] if v.get("attempts") else 0.0)
              for k, v in rows.items()]
    return [bar_chart(f"{stage}: mean over-specification by refinement strength", overspec, percent, 1.0),
            bar_chart(f"{stage}: solve rate by refinement strength", solved, percent, 1.0)]


def _stage_rows(data: WorkspaceData, run: RunInfo) -> list[dict[str, Any]]:
    rows = []
    for stage in run.stages:
        try:
            manifest = data.stage_manifest(run, stage)
            rows.append({"stage": stage, "manifest": manifest, "problem": "",
                         "counts_chart": bar_chart(f"{stage}: counts", sorted(manifest.counts.items())),
                         "drops_chart": bar_chart(f"{stage}: drops by reason", sorted(manifest.drops.items()))
                         if manifest.drops else None, "funnel": stage_funnel(data, run, stage)})
        except ArtifactProblem as exc:
            rows.append({"stage": stage, "manifest": None, "problem": str(exc), "funnel": None})
    return rows


def run_page(data: WorkspaceData, run_id: str) -> PageResult:
    """`/run/<id>`: the run manifest and each stage manifest, with its counts and drops plotted."""
    run = data.run(run_id)
    stages = _stage_rows(data, run)
    funnel = [(row["stage"], float(row["manifest"].counts.get("out", row["manifest"].counts.get("kept", 0))))
              for row in stages if row["manifest"] is not None and row["manifest"].counts]
    return PageResult("run.html", {"title": f"Run {run_id}", "run": run, "stages": stages,
                                   "stage_chart": bar_chart("items out of each stage", funnel) if funnel else None})


def _library_funnel(data: WorkspaceData, label: str, path: Any) -> dict[str, Any]:
    try:
        funnel = data.model(path, LibraryFunnel, "library funnel")
    except ArtifactProblem as exc:
        return {"label": label, "funnel": None, "problem": str(exc)}
    stages = [(name.replace("_", " "), float(getattr(funnel, name))) for name in FUNNEL_STAGES]
    return {
        "label": label, "funnel": funnel, "problem": "",
        "stages": bar_chart(f"{label}: funnel", stages),
        "domains": bar_chart(f"{label}: accepted per domain", sorted(funnel.accepted_per_domain.items())),
        "rejected": bar_chart(f"{label}: rejections by reason", sorted(funnel.rejected_reasons.items()))
        if funnel.rejected_reasons else None,
        "checks": bar_chart(f"{label}: checks passed in the final round",
                            [(rate.name, rate.passed / rate.total if rate.total else 0.0)
                             for rate in funnel.final_check_rates], percent, scale=1.0),
        "first_checks": bar_chart(f"{label}: checks passed in the first round",
                                  [(rate.name, rate.passed / rate.total if rate.total else 0.0)
                                   for rate in funnel.first_round_check_rates], percent, scale=1.0),
    }


def funnels_page(data: WorkspaceData) -> PageResult:
    """`/funnels`: the shipped library's funnel, each workspace build's, and each run's stage funnel."""
    funnels = [_library_funnel(data, "shipped library", data.library / "funnel.json")]
    for _, label, build in data.build_roots():
        if (build / "funnel.json").is_file():
            funnels.append(_library_funnel(data, label, build / "funnel.json"))
    run_funnels = []
    for run in data.runs():
        stages = _stage_rows(data, run)
        rows = [(f"{row['stage']}: {name}", float(value)) for row in stages if row["manifest"] is not None
                for name, value in row["manifest"].counts.items()]
        if rows:
            run_funnels.append({"run": run, "chart": bar_chart(f"run {run.run_id}: stage counts", rows),
                                "stage_funnels": [row["funnel"] for row in stages if row["funnel"]]})
    return PageResult("funnels.html", {"title": "Funnels", "funnels": funnels, "run_funnels": run_funnels})


def attempt_summary(value: Any) -> dict[str, Any]:
    """The list fields of one evaluation attempt record (raw JSON)."""
    reward = value.get("reward") or {}
    trajectory = value.get("trajectory") or {}
    return {"suite": str(value.get("suite", "")), "task_id": str(value.get("task_id", "")),
            "attempt": value.get("attempt", 0), "passed": bool(value.get("passed", False)),
            "reward": reward.get("total") if isinstance(reward, dict) else None,
            "termination": str(value.get("termination", "")), "verdict": str(value.get("verdict", ""))[:200],
            "envs": ", ".join(str(e) for e in value.get("envs", [])), "tool_calls": value.get("tool_calls", 0),
            "trajectory_id": str(trajectory.get("id", "")) if isinstance(trajectory, dict) else ""}


def evals_page(data: WorkspaceData) -> PageResult:
    """`/evals`: every evaluation run with its headline metrics."""
    rows = []
    for run in data.eval_runs():
        row: dict[str, Any] = {"run": run, "report": None, "problem": ""}
        try:
            row["report"] = _report(data, run)
        except ArtifactProblem as exc:
            row["problem"] = str(exc)
        rows.append(row)
    return PageResult("evals.html", {"title": "Evaluation runs", "rows": rows})


def _report(data: WorkspaceData, run: RunInfo) -> EvalReportView:
    path = run.path / EVAL_REPORT
    raw = data.json(path)
    problem = check_version(raw, KNOWN_EVAL_VERSIONS, data.display(path))
    if problem:
        raise ArtifactProblem(problem)
    return data.model(path, EvalReportView, "evaluation report")


def _suite_charts(report: EvalReportView) -> list[Any]:
    charts = [bar_chart("pass@1 by suite", [(s, m.pass_at_1) for s, m in report.by_suite.items()], percent, 1.0),
              bar_chart("mean reward by suite", [(s, m.mean_reward) for s, m in report.by_suite.items()],
                        percent, 1.0)]
    if report.by_domain:
        charts.append(bar_chart("pass@1 by domain", [(d, m.pass_at_1) for d, m in report.by_domain.items()],
                                percent, 1.0))
    if report.overall.failures:
        charts.append(bar_chart("failed steps by kind", sorted(report.overall.failures.items()), count))
    return charts


def eval_page(data: WorkspaceData, run_id: str, query: dict[str, str]) -> PageResult:
    """`/eval/<run>?q=&page=`: the report's tables and charts and the attempts, paged and searchable."""
    run = data.run(run_id)
    if not run.is_eval:
        raise NotFound(f"run {run_id!r} is not an evaluation run")
    problems: list[str] = []
    report = None
    if (run.path / EVAL_REPORT).is_file():
        try:
            report = _report(data, run)
        except ArtifactProblem as exc:
            problems.append(str(exc))
    else:
        problems.append(f"{data.display(run.path)}: no {EVAL_REPORT} yet (the run has not finished, or failed)")
    page = None
    if (run.path / ATTEMPT_FILE).is_file():
        index = data.indexes.get(run.path / ATTEMPT_FILE, "attempt", attempt_summary)
        page = Page.of(index.search(query.get("q", "").strip()), query_int(query, "page", 1), PAGE_SIZE)
        page = replace(page, items=[(n, index.summary(n)) for n in page.items])
    else:
        problems.append(f"{data.display(run.path)}: no {ATTEMPT_FILE}")
    return PageResult("eval.html", {"title": f"Evaluation {run_id}", "run": run, "report": report,
                                    "charts": _suite_charts(report) if report else [], "problems": problems,
                                    "page": page, "q": query.get("q", "")})


def attempt_page(data: WorkspaceData, run_id: str, number: int) -> PageResult:
    """`/eval/<run>/attempt/<n>`: one attempt's verdict, failures, reward and trajectory."""
    run = data.run(run_id)
    path = run.path / ATTEMPT_FILE
    if not path.is_file():
        raise NotFound(f"run {run_id!r} has no attempts")
    index = data.indexes.get(path, "attempt", attempt_summary)
    try:
        raw = index.raw(number)
    except IndexError:
        raise NotFound(f"run {run_id!r} has no attempt number {number}") from None
    attempt = validate_line(data, raw, AttemptView, f"{data.display(path)} record {number}")
    context: dict[str, Any] = {"title": f"Attempt {number} of {run_id}", "run": run, "attempt": attempt,
                               "number": number}
    if attempt.trajectory is not None:
        context.update(trajectory_context(attempt.trajectory))
    return PageResult("attempt.html", context)
