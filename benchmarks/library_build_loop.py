"""Library build time, the build loop with the environment kept in memory against the loop that wrote and
reloaded it (issue 15, deliverable 5), in one run; a check that both give the same bytes.

Run: `python benchmarks/library_build_loop.py [--limit N] [--repeats R] [--json OUT]` (after the README test
set-up; the catalog must be indexed: `envfactory resources list` once).

Workload: `LibraryBuilder.run()` with the shipped library's config (`prefer_rules`, seed realism replayed from
the library's cassette, moto's differential tests, the contamination check) over a proposal batch made of the
shipped environments' recorded proposals (the first `--limit`, default all), so every proposal is ordered by a
dry compile and then built, verified and accepted. Embedding dedup is off: the batch is given, nothing is
proposed.

The two paths, built alternately `--repeats` times each after an untimed warm-up (every operation read
from the catalog once, the hooks, the cassette):
- baseline (the loop before this change, kept here only): `ReloadingBuilder` compiles each proposal again in
  its first round after the ordering's dry compile, writes each round's directory with `write_env_dir` (which
  loads it back from disk), lets the differential hook load the directory once more, and verification loads
  it a third time;
- in memory (`LibraryBuilder`): the first round takes the dry compile, the round's environment is opened from
  the objects just written (`build.envdir.write_compiled`) and handed to the differential hook and to
  verification (which records the same `load` evidence for it as for the directory: same reports).
With `--disk-verify`, a third path (`DiskVerifying`, the loop of commit 9b7e5ad: in memory, but verification
loads the directory) is built too and compared byte for byte; it says what handing verification the
environment saves.

Figures: for each repeat, both paths' wall time and CPU time (this process and its finished children, the moto
workers: less sensitive to other jobs on a shared machine than wall time), and the ratio in memory / baseline
of that repeat (the two builds ran one after the other); the summary is the median of the per-repeat ratios.
Absolute times are printed for reference only. Exit 1 when the builds' files differ (timings aside) or an
environment does not reproduce its shipped spec hash and report digest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from envfactory.build.compile import CompiledEnv
from envfactory.build.envdir import write_env_dir
from envfactory.build.fanout import hooks_for, standard_hooks
from envfactory.build.library import LibraryBuilder, recorded_llm
from envfactory.build.ordering import proposal_richness
from envfactory.build.propose import PROPOSER_VERSION
from envfactory.cli.resources import default_cache_dir
from envfactory.resources import Catalog, default_sources
from envfactory.runtime import Environment, library_root
from envfactory.spec import (
    DifferentialResult,
    EnvSpec,
    Operation,
    Proposal,
    ProposalBatch,
    ScenarioTest,
    VerificationReport,
)
from envfactory.spec.library import LibraryConfig, LibraryIndex, ProposalOutcome
from envfactory.store.atomic import write_atomic


class ReloadingBuilder(LibraryBuilder):
    """The build loop as it was before the environment stayed in memory (the baseline, kept only here)."""

    def _richness(self, proposal: Proposal) -> tuple[int, int]:
        """The dry compile, not kept: the first round compiles the proposal again."""
        return proposal_richness(proposal, self.catalog) if self.catalog is not None else (0, 0)

    def _write_round(self, compiled: CompiledEnv, env_dir: Path) -> tuple[EnvSpec, Environment | None]:
        """Write the directory and load it back (`write_env_dir`); no environment is kept, so the
        differential hook loads the directory again."""
        return write_env_dir(compiled, env_dir), None


class DiskVerifying(LibraryBuilder):
    """The in-memory loop whose verification still loads the round's directory (`--disk-verify`)."""

    def _verify(self, env_dir: Path, env: Environment | None, spec: EnvSpec, scenarios: Sequence[ScenarioTest],
                differential: Sequence[DifferentialResult], operations: Mapping[str, Operation]) -> VerificationReport:
        return super()._verify(env_dir, None, spec, scenarios, differential, operations)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (user + system)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _build(kind: type[LibraryBuilder], catalog: Catalog, config: LibraryConfig, library: Path,
           batch: ProposalBatch, root: Path) -> tuple[float, float]:
    """One build of `batch` into `root` (emptied first) by a builder of class `kind`: (wall s, CPU s)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_atomic(root / "proposals.json", batch.to_json_bytes())
    write_atomic(root / "proposals.config-hash", (config.proposals_hash(PROPOSER_VERSION, "") + "\n").encode())
    differential, contamination = standard_hooks(hooks_for(config))
    builder = kind(catalog, config, root, differential=differential, contamination=contamination,
                   llm=recorded_llm(library, config))
    began, cpu = time.perf_counter(), _cpu()
    builder.run(resume=True)  # resume: the root holds the given proposal batch
    return time.perf_counter() - began, _cpu() - cpu


def main() -> int:
    """Build with both loops, print the figures (and write `--json`); exit 1 on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=library_root())
    parser.add_argument("--limit", type=int, default=0, help="the first N shipped proposals (0: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--disk-verify", action="store_true", help="also build with verification loading the directory")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    library: Path = args.library
    shipped = LibraryConfig.model_validate_json((library / "config.json").read_bytes())
    config = shipped.model_copy(update={"embed_dedup": False})
    index = LibraryIndex.model_validate_json((library / "index.json").read_bytes())
    entries = index.entries[: args.limit] if args.limit else index.entries
    proposals = [Proposal.model_validate_json((library / e.name / "proposal.json").read_bytes()) for e in entries]
    batch = ProposalBatch(proposals=proposals)
    work = Path(tempfile.mkdtemp(prefix="envfactory-bench-build-loop-"))
    kinds: dict[str, type[LibraryBuilder]] = {"baseline": ReloadingBuilder, "in_memory": LibraryBuilder}
    if args.disk_verify:
        kinds["disk_verify"] = DiskVerifying
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
    problems: list[str] = []
    try:
        cache = default_cache_dir()
        sources, missing = default_sources(cache)
        with Catalog(sources, cache, missing) as catalog:
            # Untimed warm-up: every operation the batch names is read from the catalog once (a cold read
            # costs more than a build's compile), and a small build loads the hooks and the cassette.
            for proposal in proposals:
                for operation in proposal.operations:
                    catalog.operation(operation.operation_id)
            warm = ProposalBatch(proposals=proposals[:3])
            _build(LibraryBuilder, catalog, config, library, warm, work / "warm-up")
            for repeat in range(args.repeats):
                order = list(kinds) if repeat % 2 == 0 else list(reversed(kinds))
                for name in order:
                    wall, cpu = _build(kinds[name], catalog, config, library, batch, work / name)
                    times[name].append((wall, cpu))
                    print(f"repeat {repeat + 1}: {name:<11} wall {wall:7.2f} s  CPU {cpu:7.2f} s  "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)
        built = _files(work / "baseline")
        problems += [f"the {name} build's files differ from the baseline's" for name in kinds
                     if name != "baseline" and _files(work / name) != built]
        by_name = {e.name: e for e in entries}
        for path in sorted((work / "in_memory" / "outcomes").glob("*.json")):
            outcome = ProposalOutcome.model_validate_json(path.read_bytes())
            entry = by_name.get(outcome.env_name)
            if entry is None or outcome.status != "accepted" or outcome.spec_hash != entry.spec_hash \
                    or outcome.report_digest != entry.report_digest:
                problems.append(f"{outcome.proposal_name}: not the shipped environment ({outcome.reason or 'hash'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = {name: ([new[0] / old[0] for old, new in zip(times["baseline"], times[name], strict=True)],
                     [new[1] / old[1] for old, new in zip(times["baseline"], times[name], strict=True)])
              for name in kinds if name != "baseline"}
    wall_ratio, cpu_ratio = (statistics.median(r) for r in ratios["in_memory"])
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"workload: {len(proposals)} shipped proposals, ordered (prefer_rules) and built, {args.repeats} repeat(s)")
    labels = {"baseline": "baseline (compile again, write and reload)",
              "in_memory": "in memory (compile once, no reload)",
              "disk_verify": "in memory, verification loads the directory"}
    for name in kinds:
        print(f"{labels[name]:<48} wall median {statistics.median(t[0] for t in times[name]):7.2f} s, "
              f"CPU median {statistics.median(t[1] for t in times[name]):7.2f} s")
    for name, (walls, cpus) in ratios.items():
        print(f"{name} / baseline, median of the per-repeat ratios: wall {statistics.median(walls):.2f} "
              f"({', '.join(f'{r:.2f}' for r in walls)}), CPU {statistics.median(cpus):.2f} "
              f"({', '.join(f'{r:.2f}' for r in cpus)})")
    print("same files: " + ("yes" if not problems else "NO: " + "; ".join(problems[:5])))
    if args.json:
        args.json.write_text(json.dumps({"proposals": len(proposals), "wall_cpu_s": times, "wall_ratio": wall_ratio,
                                         "cpu_ratio": cpu_ratio, "problems": problems}, indent=1, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
