"""PNG curves of training stages (`envfactory train plot`), drawn from their `logs/steps.jsonl`.

One file per stage directory and kind: `<run>-<stage>-loss.png` (loss per step), `<run>-<stage>-reward.png`
(GRPO: the reward and each logged component per step, failed rollouts marked) and
`<run>-<stage>-step-time.png` (seconds per step). matplotlib's Agg backend; nothing is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from envfactory.errors import SpecError
from envfactory.spec.training import TrainStepRecord


def read_steps(stage_dir: Path) -> list[TrainStepRecord]:
    """The step records of a stage's `logs/steps.jsonl`; a missing file or a line that is not a step
    record raises `SpecError` naming the file and line."""
    path = stage_dir / "logs" / "steps.jsonl"
    if not path.is_file():
        raise SpecError(f"{stage_dir}: no logs/steps.jsonl (not a training stage directory?)")
    steps = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                steps.append(TrainStepRecord.model_validate_json(line))
            except ValidationError as exc:
                raise SpecError(f"{path}:{number}: not a training step record: {exc.errors()[0]['msg']}") from exc
    return steps


def plot_stages(stage_dirs: Sequence[Path], out: Path) -> list[Path]:
    """Draw every stage's curves into `out`; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stage_dir in stage_dirs:
        steps = read_steps(stage_dir)
        label = f"{stage_dir.parent.name}-{stage_dir.name}"
        xs = [s.step for s in steps]
        series = {"loss": [s.loss for s in steps], "step-time": [s.step_seconds for s in steps]}
        for kind, ys in series.items():
            if not any(y is not None for y in ys):
                continue
            fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
            ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", markersize=3)
            ax.set_xlabel("step")
            ax.set_ylabel("seconds" if kind == "step-time" else kind)
            ax.set_title(f"{label}: {kind}")
            ax.grid(alpha=0.3)
            written.append(_save(fig, out / f"{label}-{kind}.png"))
            plt.close(fig)
        if any(s.reward is not None for s in steps):
            fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
            ax.plot(xs, [s.reward if s.reward is not None else float("nan") for s in steps], marker="o",
                    markersize=3, linewidth=2, label="reward (total)")
            names = sorted({name for s in steps for name in s.components})
            for name in names:
                ax.plot(xs, [s.components.get(name, float("nan")) for s in steps], linewidth=1, alpha=0.7,
                        label=name)
            failed = [s.step for s in steps if s.failed_rollouts]
            for step in failed:
                ax.axvline(step, color="red", alpha=0.3)
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("step")
            ax.set_ylabel("reward")
            ax.set_title(f"{label}: reward and components" + (" (red: failed rollouts)" if failed else ""))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
            written.append(_save(fig, out / f"{label}-reward.png"))
            plt.close(fig)
    return written


def _save(fig: object, path: Path) -> Path:
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)  # type: ignore[attr-defined]
    tmp.replace(path)
    return path
