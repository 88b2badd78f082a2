"""Gold replay speed over every BFCL v3 multi-turn task: BFCL's own executor vs envfactory's runtime
in-process and sandboxed, in one run (issue 18, deliverable 3).

Run: `nice -n 5 python benchmarks/bfcl_speed.py [--passes 10] [--repetitions 5] [--json OUT]`
(needs `requirements/bench.txt`: nvidia-bfcl 26.3).

What is timed, per pass over every expressible entry of the five categories (base, miss_func, miss_param,
long_context, composite; the composite entries whose gold does not parse are listed and left out):
- `official`: BFCL's `execute_multi_turn_func_call` on each gold turn, with the long-context flag its
  checker passes, and after each turn the public attributes of every instance (what its state checker
  reads); a fresh model name per entry, its instances deleted from the module's globals afterwards.
- `official_checker`: BFCL's `multi_turn_checker` scoring the gold calls against themselves (it executes
  them twice: as the model's and as the ground truth), for scale.
- `ours_in_process`: `eval.bfcl.execute` of each entry's parsed gold calls on the official-compat
  environments in-process (`trusted=True`, benchmark data only; live backend instances, `eval.bfcl_live`).
- `ours_sandboxed`: `eval.bfcl.execute_all` of the same on sandboxed environments (one worker per backend
  class, started before timing): windows of 32 tasks are opened and planned before any of them runs, so each
  worker gets a window's loads and planned calls in one write (2026-12-08, round 5; batching gains nothing
  in-process, where `execute_all` measured slower than `execute` in a one-pass try).
- `ours_sandboxed_per_task`: `eval.bfcl.execute` task by task on the same sandboxed environments (what
  `ours_sandboxed` measured before round 5: one round trip per task and backend).
Each of these runs `--passes` passes in a row; the modes take turns within a repetition, so a change in
the machine's load reaches all of them; the figure is the best repetition of `--repetitions`. Ratios
are against `official`. Besides wall time, each repetition's CPU time is recorded (this process's, plus
for `ours_sandboxed` its workers' from /proc, where there is one): on a loaded machine it moves less than
wall time, and the ratios of the best CPU times are printed next to the wall-time ones. State hashes are computed lazily (`Execution.state_hashes`), so none is timed;
the results and per-turn attributes every check reads are. Before timing, each mode's gold replay is
checked valid once (ours: `eval.bfcl.check` against itself; BFCL's checker: `valid`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envfactory.eval import bfcl
from envfactory.runtime.sandbox import SandboxPool


def official_replay(entries: list[bfcl.BfclEntry]) -> None:
    """One pass of BFCL's executor over every entry's gold turns (see the module docstring)."""
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    for entry in entries:
        name = f"speed_{uuid.uuid4().hex}"
        for turn in entry.ground_truth:
            _, instances = utils.execute_multi_turn_func_call(
                turn, entry.initial_config, entry.involved_classes, name, entry.id, long_context=entry.long_context
            )
            for instance in instances.values():
                {key: value for key, value in vars(instance).items() if not key.startswith("_")}
        for key in [k for k in vars(utils) if k.startswith(name)]:
            del vars(utils)[key]


def official_checker(entries: list[bfcl.BfclEntry]) -> bool:
    """One pass of BFCL's checker scoring every entry's gold against itself; whether all were valid."""
    checker = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    valid = True
    for entry in entries:
        name = f"speed_{uuid.uuid4().hex}"
        decoded = [[list(calls)] if calls else [] for calls in entry.ground_truth]
        result = checker.multi_turn_checker(decoded, entry.ground_truth, entry.raw, f"multi_turn_{entry.category}", name)
        valid = valid and bool(result["valid"])
        for key in [k for k in vars(utils) if k.startswith(name)]:
            del vars(utils)[key]
    return valid


def ours(tasks: list[Any], envs: dict[str, Any]) -> None:
    """One pass of our gold replay (official-compat, as benchmark scoring runs it), one `execute` per task."""
    for task in tasks:
        bfcl.execute(task, envs, bfcl.gold_turns(task), official_compat=True)


def ours_batched(tasks: list[Any], envs: dict[str, Any]) -> None:
    """One pass of our gold replay in windows of tasks opened and planned together (`execute_all`)."""
    bfcl.execute_all([(task, bfcl.gold_turns(task)) for task in tasks], envs, official_compat=True)


def ours_valid(tasks: list[Any], envs: dict[str, Any]) -> bool:
    """Whether every gold replay, batched as `ours_batched` runs it, passes our check against itself."""
    runs = [(task, bfcl.gold_turns(task)) for task in tasks]
    executions = bfcl.execute_all(runs, envs, official_compat=True)
    return all(bfcl.check(task, execution, execution, gold).valid for (task, gold), execution in zip(runs, executions, strict=True))


def timed(run: Callable[[], object], passes: int, workers: Callable[[], float | None]) -> tuple[float, float | None]:
    """Wall seconds of `passes` runs, and CPU seconds (this process's plus `workers()`'s; None when a worker's
    CPU time cannot be read)."""
    before = workers()
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(passes):
        run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = workers()
    return wall, (cpu + after - before) if before is not None and after is not None else None


def worker_cpu(envs: dict[str, Any]) -> float | None:
    """CPU seconds the sandbox workers of `envs` have used so far (Linux /proc), or None where unreadable."""
    total = 0.0
    for env in envs.values():
        pid = env.backend.worker_pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, TypeError):
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=10, help="passes over every task per repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="repetitions; the best one counts")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    order = bfcl.parameter_order()
    loaded = [bfcl.load_tasks(category, order) for category in bfcl.CATEGORIES]
    entries = [entry for category in loaded for entry in category.entries]
    tasks = [task for category in loaded for task in category.tasks]
    skipped = {entry_id: reason for category in loaded for entry_id, reason in category.skipped.items()}
    calls = sum(len(turn) for entry in entries for turn in entry.ground_truth)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as workdir, SandboxPool(max_workers=8) as pool:
        trusted = bfcl.bfcl_environments(trusted=True, official_compat=True)
        boxed = bfcl.bfcl_environments(sandbox=pool, workdir=Path(workdir), official_compat=True)
        checks = {"official_checker": official_checker(entries), "ours_in_process": ours_valid(tasks, trusted),
                  "ours_sandboxed": ours_valid(tasks, boxed)}  # also starts every worker before timing
        modes: dict[str, Callable[[], object]] = {
            "official": lambda: official_replay(entries),
            "official_checker": lambda: official_checker(entries),
            "ours_in_process": lambda: ours(tasks, trusted),
            "ours_sandboxed": lambda: ours_batched(tasks, boxed),
            "ours_sandboxed_per_task": lambda: ours(tasks, boxed),
        }
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        cpu: dict[str, list[float | None]] = {mode: [] for mode in modes}
        for repetition in range(args.repetitions):
            for mode, run in modes.items():
                sandboxed = mode.startswith("ours_sandboxed")
                workers: Callable[[], float | None] = (lambda: worker_cpu(boxed)) if sandboxed else (lambda: 0.0)
                wall, used = timed(run, args.passes, workers)
                times[mode].append(wall)
                cpu[mode].append(used)
            print(f"repetition {repetition + 1}: " + ", ".join(f"{mode} {values[-1]:.2f} s" for mode, values in times.items()),
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    load_after = os.getloadavg()

    best = {mode: min(values) for mode, values in times.items()}
    best_cpu = {mode: min(v for v in values if v is not None) if None not in values else None
                for mode, values in cpu.items()}
    rows: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.python_version()}, {os.cpu_count()} cores",
        "load_average_before": load_before, "load_average_after": load_after,
        "entries": len(entries), "calls_per_pass": calls, "skipped": skipped, "passes": args.passes,
        "repetitions": args.repetitions, "gold_valid": checks, "seconds": times, "best_s": best,
        "ratio_to_official": {mode: best[mode] / best["official"] for mode in modes},
        "cpu_seconds": cpu, "best_cpu_s": best_cpu,
        "cpu_ratio_to_official": {mode: (value / best_cpu["official"]) if value is not None and best_cpu["official"] else None
                                  for mode, value in best_cpu.items()},
    }
    print(f"BFCL v3 multi-turn gold replay: {len(entries)} entries of 5 categories ({len(skipped)} unparsable "
          f"composite entries left out), {calls} calls a pass; best of {args.repetitions} x {args.passes} passes")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} cores)")
    for mode in modes:
        per_pass = best[mode] / args.passes
        used = best_cpu[mode]
        cpu_ratio = f"{used / best_cpu['official']:5.2f}x" if used is not None and best_cpu["official"] else "  n/a"
        print(f"  {mode:24s} {per_pass:7.3f} s/pass  {calls / per_pass:8.0f} calls/s  "
              f"{best[mode] / best['official']:5.2f}x official (CPU {cpu_ratio})   "
              f"gold valid: {checks.get(mode.removesuffix('_per_task'), True)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
