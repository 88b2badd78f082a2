"""The funnel of the trajectory stage: counts, drop reasons, model usage and calibration figures.

`build_funnel(config, tasks_in, items)` is a pure function of the items: tasks → queries (an explicit
query was written and validated) → refined (a refined query was written and validated) → solved (some
attempt verified) → verified (a verified trajectory was selected). Per refinement strength (the number of
operators; "0" is the explicit query) it gives the mean over-specification and, over the attempts made on
that query, how many verified. With a judge, `judge` sums its verdicts (`judge_figures`): passes the
reward did not confirm (`judge_only`, never counted as verified) and verified attempts it failed
(`disagreed`). `wilson_interval` gives the 95% interval used in reports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from envfactory.spec.synth_trajectories import (
    JudgeFigures,
    StrengthFigures,
    SynthTrajectoriesConfig,
    TrajectoryFunnel,
    TrajectoryItem,
)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 0) for no trials."""
    if trials == 0:
        return (0.0, 0.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def judge_figures(items: Sequence[TrajectoryItem]) -> JudgeFigures | None:
    """The judge's verdicts over every judged attempt of `items`; None when no attempt was judged."""
    judged = [a for i in items for a in i.attempts if a.judge is not None]
    if not judged:
        return None
    verdicts = Counter(a.judge.verdict for a in judged if a.judge is not None)
    return JudgeFigures(
        model=next(a.judge.model for a in judged if a.judge is not None), judged=len(judged),
        passed=verdicts["pass"], failed=verdicts["fail"], errors=verdicts["error"],
        judge_only=sum(1 for a in judged if a.judge is not None and a.judge.verdict == "pass" and not a.verified),
        disagreed=sum(1 for a in judged if a.judge is not None and a.judge.verdict == "fail" and a.verified),
    )


def build_funnel(config: SynthTrajectoriesConfig, tasks_in: int, items: Sequence[TrajectoryItem]) -> TrajectoryFunnel:
    """The stage's funnel over its items (see the module docstring)."""
    drops: dict[str, Counter[str]] = {}
    with_query = [i for i in items if i.query is not None and i.query.explicit]
    refined = [i for i in with_query if i.query is not None and i.query.refined]
    solved = [i for i in items if any(a.verified for a in i.attempts)]
    verified = [i for i in items if i.status == "verified"]
    for item in items:
        if item.status == "dropped":
            drops.setdefault("queries", Counter())[item.reason] += 1
        elif item.status == "failed":
            drops.setdefault("solved", Counter())[item.reason] += 1
        elif item.status == "unsolved" and item.attempts:
            drops.setdefault("solved", Counter())["no_attempt_verified"] += 1
    if config.refines:
        for item in with_query:
            if item.query is not None and not item.query.refined:
                drops.setdefault("refined", Counter())["refinement_invalid"] += 1
            elif item.selected is not None and item.attempts[item.selected].query == "explicit":
                drops.setdefault("refined", Counter())["refined_unsolved_explicit_kept"] += 1
    per_strength: dict[str, StrengthFigures] = {}

    def add(strength: int, overspec: float, kind: str, item: TrajectoryItem) -> None:
        figures = per_strength.get(str(strength), StrengthFigures())
        tried = [a for a in item.attempts if a.query == kind]
        per_strength[str(strength)] = StrengthFigures(
            queries=figures.queries + 1,
            mean_overspec=round((figures.mean_overspec * figures.queries + overspec) / (figures.queries + 1), 4),
            attempts=figures.attempts + len(tried), solved=figures.solved + sum(a.verified for a in tried),
        )

    for item in with_query:
        assert item.query is not None
        add(0, item.query.explicit_overspec.score, "explicit", item)
        if item.query.refined and item.query.refined_overspec is not None:
            add(len(item.query.operators), item.query.refined_overspec.score, "refined", item)
    return TrajectoryFunnel(
        preset=config.preset, seed=config.seed, k=config.k,
        completed=sum(1 for i in with_query if i.query is not None and i.query.completed),
        stages={"tasks": tasks_in, "queries": len(with_query), "refined": len(refined), "solved": len(solved),
                "verified": len(verified)},
        drops={stage: dict(sorted(counter.items())) for stage, counter in sorted(drops.items())},
        conversational=sum(i.conversational for i in verified),
        model_calls=sum(i.model_calls for i in items), prompt_tokens=sum(i.prompt_tokens for i in items),
        completion_tokens=sum(i.completion_tokens for i in items),
        explicit_overspec=_mean([i.query.explicit_overspec.score for i in with_query if i.query is not None]),
        refined_overspec=_mean([i.query.refined_overspec.score for i in refined
                                if i.query is not None and i.query.refined_overspec is not None]),
        per_strength=dict(sorted(per_strength.items())), judge=judge_figures(items),
    )
