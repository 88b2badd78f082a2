"""Library-build throughput on each executor: the same build config serially, on the local process pool
and on a local Ray cluster, in one run; ratios against the serial build, and a check that every build
directory holds the same bytes (timings aside).

Run: `python benchmarks/library_fanout.py [--domains office,utilities] [--accept N] [--workers W]
[--no-ray] [--differential] [--json OUT]`.

The workload is a real library build over the user's catalog (`envfactory resources setup` first): propose,
compile, verify (fuzzing included) and, with `--differential`, moto's differential tests; no model (seed
realism off), so the bytes must match. Executors start their workers inside the timed region: a run pays
for them. A build's speculative window (`build.fanout`) may build proposals the serial order then skips:
the benchmark prints how many were built and how many were kept. A warm-up build (one environment per
domain) runs first, untimed: the first pass over a catalog loads every resource it proposes from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from envfactory.build.fanout import build_speculatively, hooks_for, standard_hooks
from envfactory.build.library import BuildEvent, LibraryBuilder
from envfactory.cli.resources import default_cache_dir
from envfactory.exec import Executor, PoolExecutor, RayExecutor, ray_available, usable_cores
from envfactory.resources import Catalog, default_sources
from envfactory.spec.library import LibraryConfig


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


def _build(catalog: Catalog, config: LibraryConfig, root: Path, executor: Executor | None) -> tuple[float, int]:
    hooks = hooks_for(config)
    differential, contamination = standard_hooks(hooks)
    submitted: list[int] = []

    def progress(event: BuildEvent) -> None:
        if event.kind == "wave":
            submitted.append(int(event.message.split()[1]))

    began = time.perf_counter()
    LibraryBuilder(catalog, config, root, differential=differential, contamination=contamination,
                   executor=executor, worker_hooks=hooks, progress=progress,
                   fan_out=build_speculatively if executor is not None else None).run()
    return time.perf_counter() - began, sum(submitted)


def main() -> int:
    """Run the three builds, print the table (and write `--json`); exit 1 when the bytes differ."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", default="office,utilities")
    parser.add_argument("--accept", type=int, default=4, help="accept_per_domain")
    parser.add_argument("--proposals", type=int, default=30, help="proposals_per_domain")
    parser.add_argument("--workers", type=int, default=max(2, usable_cores()))
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--differential", action="store_true", help="moto's differential tests (AWS only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = LibraryConfig(name="bench", domains=args.domains.split(","), proposals_per_domain=args.proposals,
                           accept_per_domain=args.accept, fuzz_calls=120, differential=args.differential,
                           contamination_check=False, seed_realism=False, embed_dedup=False)
    cache = default_cache_dir()
    sources, missing = default_sources(cache)
    work = Path(tempfile.mkdtemp(prefix="envfactory-bench-fanout-"))
    rows: list[dict[str, object]] = []
    try:
        with Catalog(sources, cache, missing) as catalog:
            catalog.refresh()
            # Warm-up outside the timed region: the first proposal pass over a catalog loads and indexes
            # every resource it reads (minutes), later passes reuse that; every executor gets it warm.
            _build(catalog, config.model_copy(update={"accept_per_domain": 1}), work / "warm-up", None)
            seconds, _ = _build(catalog, config, work / "serial", None)
            reference = _files(work / "serial")
            outcomes = sum(1 for name in reference if name.startswith("outcomes/"))
            rows.append({"executor": "serial", "seconds": round(seconds, 1), "built": outcomes, "same": True})
            kinds = [("pool", PoolExecutor)] + ([] if args.no_ray or not ray_available() else [("ray", RayExecutor)])
            for kind, make in kinds:
                executor = make(workers=args.workers)
                try:
                    seconds, submitted = _build(catalog, config, work / kind, executor)
                finally:
                    executor.close()
                rows.append({"executor": f"{kind} ×{args.workers}", "seconds": round(seconds, 1), "built": submitted,
                             "same": _files(work / kind) == reference})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = float(rows[0]["seconds"])  # type: ignore[arg-type]
    print(f"library build, {args.domains} × accept {args.accept}, {outcomes} verdicts, {usable_cores()} usable cores")
    print(f"{'executor':<10} {'seconds':>8} {'vs serial':>10} {'built':>6}  identical")
    for row in rows:
        ratio = base / float(row["seconds"]) if row["seconds"] else 0.0  # type: ignore[arg-type]
        print(f"{row['executor']:<10} {row['seconds']:>8} {ratio:>9.2f}× {row['built']:>6}  {row['same']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(row["same"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
