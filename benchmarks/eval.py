"""Gold replay speed: BFCL v3 multi-turn and τ²-bench through envfactory's runtime vs the benchmarks'
own execution, measured in one run on this machine.

Run: `python benchmarks/eval.py [--json OUT]` (needs `requirements/bench.txt`). For all five BFCL
multi-turn categories, best of repeated passes with the ratios the issue-18 target is stated in, see
`benchmarks/bfcl_speed.py`.

- BFCL (base + miss_func, 400 entries): every gold turn executed by BFCL's own
  `execute_multi_turn_func_call` (instances in its module globals, `eval` of the call strings), then
  the same calls through our runtime in-process (`trusted=True`, benchmark data only) and sandboxed
  (the default for model output; one worker per backend class).
- τ² (airline 50 + retail 114): every task's gold actions through tau2's own `Environment.get_response`
  on a fresh `get_environment()`, then through our `tau2_<domain>` environment in a fresh session.
Both sides build a fresh environment per task and read back the final state once (BFCL: the instances'
public attributes; τ²: the DB hash), so the comparison includes set-up. Timings are printed, never
written into artifacts other than the optional `--json`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import tempfile
import time
import uuid
from typing import Any

from envfactory.eval import bfcl, tau2
from envfactory.runtime.sandbox import SandboxPool


def bfcl_official(entries: list[bfcl.BfclEntry]) -> tuple[float, int]:
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    calls = 0
    start = time.perf_counter()
    for entry in entries:
        name = f"speed_{uuid.uuid4().hex}"
        instances: dict[str, Any] = {}
        for turn in entry.ground_truth:
            _, instances = utils.execute_multi_turn_func_call(
                turn, entry.initial_config, entry.involved_classes, name, entry.id
            )
            calls += len(turn)
        for instance in instances.values():
            {k: v for k, v in vars(instance).items() if not k.startswith("_")}
        for key in [k for k in vars(utils) if k.startswith(name)]:
            del vars(utils)[key]
    return time.perf_counter() - start, calls


def bfcl_ours(tasks: list[Any], envs: dict[str, Any]) -> float:
    start = time.perf_counter()
    for task in tasks:
        bfcl.execute(task, envs, bfcl.gold_turns(task))
    return time.perf_counter() - start


def tau2_official(cases: list[tau2.Tau2Case]) -> tuple[float, int]:
    message = importlib.import_module("tau2.data_model.message")
    calls = 0
    start = time.perf_counter()
    for case in cases:
        module = importlib.import_module(f"tau2.domains.{case.domain}.environment")
        env = module.get_environment()
        for index, call in enumerate(case.task.turns[0].gold_calls):
            env.get_response(message.ToolCall(id=str(index), name=call.tool, arguments=dict(call.arguments)))
            calls += 1
        env.get_db_hash()
    return time.perf_counter() - start, calls


def tau2_ours(cases: list[tau2.Tau2Case], envs: dict[str, Any]) -> float:
    start = time.perf_counter()
    for case in cases:
        tau2.replay(case, envs[case.domain], tau2.gold_steps(case))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    rows: dict[str, Any] = {"machine": f"{platform.machine()} {platform.python_version()}"}

    entries = bfcl.load_entries("base") + bfcl.load_entries("miss_func")
    order = bfcl.parameter_order()
    tasks = [bfcl.to_task(e, order) for e in entries]
    official, calls = bfcl_official(entries)
    trusted = bfcl_ours(tasks, bfcl.bfcl_environments(trusted=True))
    with tempfile.TemporaryDirectory() as workdir, SandboxPool(max_workers=8) as pool:
        envs = bfcl.bfcl_environments(sandbox=pool, workdir=workdir)
        bfcl_ours(tasks[:8], envs)  # start the workers before timing
        sandboxed = bfcl_ours(tasks, envs)
    rows["bfcl"] = {"entries": len(entries), "calls": calls, "official_s": official,
                    "ours_in_process_s": trusted, "ours_sandboxed_s": sandboxed}

    domains = ("airline", "retail")  # the figures in docs/eval.md; telecom's user actions and initial states
    cases = [c for d in domains for c in tau2.load_cases(d)]  # would need them on the official side too
    envs2 = {d: tau2.tau2_environment(d) for d in domains}
    t_official, t_calls = tau2_official(cases)
    t_ours = tau2_ours(cases, envs2)
    rows["tau2"] = {"tasks": len(cases), "calls": t_calls, "official_s": t_official, "ours_s": t_ours}

    b, t = rows["bfcl"], rows["tau2"]
    print(f"BFCL gold replay, {b['entries']} entries, {b['calls']} calls:")
    print(f"  BFCL's executor       {b['official_s']:7.2f} s  {b['calls'] / b['official_s']:8.0f} calls/s")
    print(f"  ours, in-process      {b['ours_in_process_s']:7.2f} s  {b['calls'] / b['ours_in_process_s']:8.0f} calls/s"
          f"  ({b['ours_in_process_s'] / b['official_s']:.2f}x)")
    print(f"  ours, sandboxed       {b['ours_sandboxed_s']:7.2f} s  {b['calls'] / b['ours_sandboxed_s']:8.0f} calls/s"
          f"  ({b['ours_sandboxed_s'] / b['official_s']:.2f}x)")
    print(f"τ² gold replay, {t['tasks']} tasks, {t['calls']} calls:")
    print(f"  tau2's environment    {t['official_s']:7.2f} s  {t['calls'] / t['official_s']:8.0f} calls/s")
    print(f"  ours                  {t['ours_s']:7.2f} s  {t['calls'] / t['ours_s']:8.0f} calls/s"
          f"  ({t['ours_s'] / t['official_s']:.2f}x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
