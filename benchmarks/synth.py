"""Task synthesis throughput (issue #21): gated tasks per CPU-minute of `synth tasks`, model-free.

Runs the `synth-tasks` stage over the shipped library twice in this process, with the topology-aware
sampler and with the random-walk baseline (the ablation of METHOD §11), on the same seed, and prints
for each: kept tasks, candidates tried, CPU seconds (environment loading and graph building included)
and gated tasks per CPU-minute, then the topology / random-walk ratio. The contamination gate runs
against the installed BFCL and τ² task texts (loading them is not timed).

    python benchmarks/synth.py [--tasks 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from envfactory.resources.benchmarks import benchmark_tasks
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SamplerName, SynthFunnel, SynthTasksConfig
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
