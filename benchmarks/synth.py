"""Task synthesis throughput (issue #21): gated tasks per CPU-minute of `synth tasks`, model-free.

Runs the `synth-tasks` stage over the shipped library twice in this process, with the topology-aware
sampler and with the random-walk baseline (the ablation of METHOD §11), on the same seed, and prints
for each: kept tasks, candidates tried, CPU seconds (environment loading and graph building included)
and gated tasks per CPU-minute, then the topology / random-walk ratio. The contamination gate runs
against the installed BFCL and τ² task texts (loading them is not timed).

    python benchmarks/synth.py [--tasks 100] [--seed 0]

With `--trajectories RUN` it instead reports a finished `synth trajectories` run of the workspace
(`--workspace`, default `workspace`): verified trajectories and queries per hour of the stage's wall time
and the hours 1,000 verified trajectories would take at that rate (`trajectory_throughput`; the wall time
is the last invocation's, so the rate is honest only for a run that was not resumed), then the
calibration report (`envfactory synth calibration`; `--baseline RUN2` a `--no-refine`
run on the same tasks).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from envfactory.cli.synth_report import calibration_table
from envfactory.resources.benchmarks import benchmark_tasks
from envfactory.spec import StageManifest
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SamplerName, SynthFunnel, SynthTasksConfig
from envfactory.spec.synth_trajectories import TrajectoryFunnel
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks
from envfactory.synth.calibration import calibration_report, read_items
from envfactory.synth.trajectories import STAGE as TRAJECTORY_STAGE


def measure(sampler: SamplerName, tasks: int, seed: int, bench: list[BenchmarkTask], root: Path) -> dict[str, float]:
    config = SynthTasksConfig(library=True, tasks=tasks, seed=seed, sampler=sampler)
    cpu, wall = time.process_time(), time.perf_counter()
    manifest = run_synth_tasks(config, Workspace(root), SynthDeps(run_id=sampler, benchmark_tasks=bench))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    funnel = SynthFunnel.model_validate_json((root / "runs" / sampler / "synth-tasks" / "funnel.json").read_bytes())
    kept = manifest.counts["kept"]
    return {"kept": kept, "candidates": funnel.candidates, "valid": funnel.stages["valid"],
            "executed": funnel.stages["executed"], "cpu_s": cpu, "wall_s": wall,
            "per_cpu_minute": 60.0 * kept / cpu if cpu else 0.0, "multi_env": funnel.kept.multi_env,
            "read_only": funnel.kept.read_only}


def trajectory_throughput(stage_dir: Path) -> dict[str, float]:
    """Items, queries and verified trajectories of a finished trajectory stage, its wall seconds, the
    rates per hour and the hours 1,000 verified would take (inf at a rate of 0). The wall time is the last
    invocation's: for a resumed run the rate overstates what it took."""
    manifest = StageManifest.model_validate_json((stage_dir / "manifest.json").read_bytes())
    funnel = TrajectoryFunnel.model_validate_json((stage_dir / "funnel.json").read_bytes())
    wall = manifest.timings.get("wall_s", 0.0)
    hours = wall / 3600.0
    verified, queries = funnel.stages["verified"], funnel.stages["queries"]
    per_hour = verified / hours if hours else 0.0
    return {"items": float(len(list((stage_dir / "items").glob("*.json")))), "queries": float(queries),
            "verified": float(verified), "conversational": float(funnel.conversational), "wall_s": wall,
            "verified_per_hour": per_hour, "queries_per_hour": queries / hours if hours else 0.0,
            "hours_for_1000": 1000.0 / per_hour if per_hour else float("inf"),
            "model_calls": float(funnel.model_calls)}


def report_trajectories(workspace: Path, run: str, baseline: str | None) -> None:
    """Print `trajectory_throughput` and the calibration report of `run` (see the module docstring)."""
    from envfactory.cli._output import console

    stage_dir = Workspace(workspace).run_path(run) / TRAJECTORY_STAGE
    row = trajectory_throughput(stage_dir)
    print(f"{run}: {row['items']:.0f} items, {row['queries']:.0f} queries, {row['verified']:.0f} verified "
          f"({row['conversational']:.0f} conversational), {row['model_calls']:.0f} model calls in "
          f"{row['wall_s']:.0f} s of the last invocation: {row['verified_per_hour']:.1f} verified/h, "
          f"{row['queries_per_hour']:.1f} queries/h, 1,000 verified in {row['hours_for_1000']:.1f} h")
    base = Workspace(workspace).run_path(baseline) / TRAJECTORY_STAGE if baseline else None
    report = calibration_report(read_items(stage_dir), run=run, baseline=read_items(base) if base else None,
                                baseline_run=baseline)
    console().print(calibration_table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trajectories", metavar="RUN", help="report a finished synth trajectories run instead")
    parser.add_argument("--baseline", metavar="RUN", help="with --trajectories: a --no-refine run on the same tasks")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    args = parser.parse_args()
    if args.trajectories:
        report_trajectories(args.workspace, args.trajectories, args.baseline)
        return
    bench = benchmark_tasks()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        samplers: tuple[SamplerName, ...] = ("topology", "random-walk")
        for sampler in samplers:
            rows[sampler] = measure(sampler, args.tasks, args.seed, bench, Path(tmp))
    print(f"{'sampler':<12} {'candidates':>10} {'valid':>6} {'executed':>8} {'kept':>5} {'multi':>6} {'read':>5} "
          f"{'cpu s':>8} {'wall s':>8} {'tasks/cpu-min':>14}")
    for sampler, row in rows.items():
        print(f"{sampler:<12} {row['candidates']:>10.0f} {row['valid']:>6.0f} {row['executed']:>8.0f} {row['kept']:>5.0f} "
              f"{row['multi_env']:>6.0f} {row['read_only']:>5.0f} {row['cpu_s']:>8.1f} {row['wall_s']:>8.1f} "
              f"{row['per_cpu_minute']:>14.1f}")
    base = rows["random-walk"]["per_cpu_minute"]
    ratio = rows["topology"]["per_cpu_minute"] / base if base else float("inf")
    print(f"topology / random-walk throughput: {ratio:.2f}x "
          f"(kept per candidate: {rows['topology']['kept'] / rows['topology']['candidates']:.2f} vs "
          f"{rows['random-walk']['kept'] / rows['random-walk']['candidates']:.2f})")


if __name__ == "__main__":
    main()
