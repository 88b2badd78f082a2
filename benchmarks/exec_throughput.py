"""Executor throughput: the same batch of work items on the serial path, the local process pool and a
local Ray cluster, in one run; ratios against the serial path.

Run: `python benchmarks/exec_throughput.py [--items N] [--workers W] [--no-ray] [--json OUT]`.

The workload is real and CPU-bound: re-verifying environments of the shipped library (every check of
`verify.envchecks.verify_environment` with the shipped scenarios and recorded differential evidence),
one environment per item, cycling over the declarative ones until `--items`. Each item carries only the
environment's name and the seed; the result is the evidence digest, which must equal the shipped one
on every executor (the figures are printed only when all three agree). The pool and Ray start their
workers inside the timed region: start-up is part of what a run pays.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Literal

from envfactory.exec import Executor, PoolExecutor, RayExecutor, SerialExecutor, ray_available, usable_cores
from envfactory.spec import SpecModel


class ReverifyItem(SpecModel):
    """One environment of the shipped library to verify again."""

    schema_version: Literal[1] = 1
    name: str
    repeat: int = 0


class ReverifyResult(SpecModel):
    schema_version: Literal[1] = 1
    name: str
    digest: str


def reverify(item: ReverifyItem) -> ReverifyResult:
    """Every environment check of one shipped environment; its evidence digest."""
    from envfactory.runtime import library_root
    from envfactory.spec import VerificationReport, load_scenarios
    from envfactory.spec.library import LibraryConfig
    from envfactory.verify.envchecks import verify_environment

    root = library_root()
    config = LibraryConfig.model_validate_json((root / "config.json").read_bytes())
    directory = root / item.name
    scenarios = load_scenarios((directory / "scenarios.json").read_bytes()) if (directory / "scenarios.json").is_file() else []
    differential = list(VerificationReport.model_validate_json((directory / "report.json").read_bytes()).differential)
    report = verify_environment(item.name, scenarios, seed=config.seed, fuzz_calls=config.fuzz_calls,
                                differential=differential)
    return ReverifyResult(name=item.name, digest=report.evidence_digest)


def _items(count: int) -> tuple[list[ReverifyItem], dict[str, str]]:
    from envfactory.runtime import library_root
    from envfactory.spec.library import LibraryIndex

    root = library_root()
    index = LibraryIndex.model_validate_json((root / "index.json").read_bytes())
    names = [e.name for e in index.entries if json.loads((root / e.name / "spec.json").read_bytes())
             .get("implementation", {}).get("kind") == "declarative"]
    items = [ReverifyItem(name=names[i % len(names)], repeat=i // len(names)) for i in range(count)]
    return items, {e.name: e.report_digest for e in index.entries}


def _measure(executor: Executor, items: list[ReverifyItem]) -> tuple[float, list[str]]:
    from exec_throughput import reverify as importable  # the module name workers import, not __main__

    started = time.perf_counter()
    outcomes = executor.map(importable, items)
    elapsed = time.perf_counter() - started
    return elapsed, [o.result.digest if o.result else f"failed: {o.error}" for o in outcomes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--workers", type=int, default=usable_cores())
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)  # pool and Ray workers import this module by name
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, here)

    items, shipped = _items(args.items)
    runs: dict[str, tuple[float, list[str]]] = {}
    runs["serial"] = _measure(SerialExecutor(), items)
    runs["pool"] = _measure(PoolExecutor(workers=args.workers), items)
    if not args.no_ray and ray_available():
        started = time.perf_counter()
        ray_executor = RayExecutor(workers=args.workers)
        startup = time.perf_counter() - started
        try:
            elapsed, digests = _measure(ray_executor, items)
        finally:
            ray_executor.close()
        runs["ray"] = (elapsed + startup, digests)
    expected = [shipped[item.name] for item in items]
    agree = all(digests == expected for _, digests in runs.values())
    base = runs["serial"][0]
    rows = {name: {"seconds": round(t, 2), "items_per_s": round(len(items) / t, 2), "speedup": round(base / t, 2)}
            for name, (t, _) in runs.items()}
    print(f"{len(items)} items (shipped environments re-verified), {args.workers} workers, {usable_cores()} usable cores")
    for name, row in rows.items():
        print(f"  {name:<7} {row['seconds']:>7.2f} s  {row['items_per_s']:>6.2f} items/s  ×{row['speedup']:.2f} vs serial")
    print("results identical on every executor and equal to the shipped digests:", agree)
    if args.json:
        args.json.write_text(json.dumps({"items": len(items), "workers": args.workers, "rows": rows, "agree": agree},
                                        indent=1) + "\n")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
