"""The shipped environment library: full re-verification, build + verify time per compiled environment,
and the funnel yield of the build that produced it.

Run: `python benchmarks/library.py [--library DIR] [--json OUT]` (after the README test set-up; the
catalog must be indexed: `envfactory resources list` once).

For every environment of the library:
- build: compile its recorded proposal from the catalog (pinned packages) and write the directory
  (with seed realism, the LLM's recorded answers are replayed from the library's cassette: no model
  runs, so the figure is build + verify time without LLM calls);
- verify: every check of `verify.envchecks` (load, parity, seed round-trip, determinism, isolation,
  fuzz, scenarios, differential against moto where the library config asks for it);
- agreement: the re-verified report digest equals the shipped one.
Baseline, measured in the same run: the full verification of the hand-written bundled `shop`
environment (same checks, same fuzz budget). Figures are printed as ratios against it; absolute times
are printed for reference and never written into artifacts other than the optional `--json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from envfactory.build.library import LibraryBuilder, recorded_llm
from envfactory.build.reference import library_differential
from envfactory.cli.resources import default_cache_dir
from envfactory.resources import Catalog, default_sources
from envfactory.runtime import library_root
from envfactory.spec import Proposal
from envfactory.spec.library import LibraryConfig, LibraryFunnel, LibraryIndex
from envfactory.verify.envchecks import verify_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=library_root())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    library: Path = args.library
    config = LibraryConfig.model_validate_json((library / "config.json").read_bytes())
    index = LibraryIndex.model_validate_json((library / "index.json").read_bytes())
    funnel = LibraryFunnel.model_validate_json((library / "funnel.json").read_bytes())

    started = time.perf_counter()
    verify_environment("shop", seed=config.seed, fuzz_calls=config.fuzz_calls)
    baseline_s = time.perf_counter() - started

    cache = default_cache_dir()
    sources, missing = default_sources(cache)
    per_env: dict[str, float] = {}
    disagreements: list[str] = []
    verdicts: dict[str, str] = {}
    with Catalog(sources, cache, missing) as catalog, tempfile.TemporaryDirectory() as tmp:
        builder = LibraryBuilder(catalog, config, Path(tmp) / "bench",
                                 differential=library_differential if config.differential else None,
                                 llm=recorded_llm(library, config))  # recorded answers: no model runs
        for number, entry in enumerate(index.entries, 1):
            proposal = Proposal.model_validate_json((library / entry.name / "proposal.json").read_bytes())
            began = time.perf_counter()
            outcome = builder.build_proposal(proposal)
            per_env[entry.name] = time.perf_counter() - began
            verdicts[entry.name] = outcome.status
            if outcome.report_digest != entry.report_digest or outcome.spec_hash != entry.spec_hash:
                disagreements.append(entry.name)
            print(f"[{number:>3}/{len(index.entries)}] {entry.name:<48} {outcome.status:<9} "
                  f"{per_env[entry.name] * 1000:8.1f} ms", flush=True)

    times = sorted(per_env.values())
    median_s = statistics.median(times)
    p90_s = times[int(0.9 * (len(times) - 1))]
    print()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"baseline: full verification of bundled `shop` = {baseline_s * 1000:.1f} ms (ratio 1.00)")
    print(f"library: {len(index.entries)} environments; build + verify per environment: "
          f"median {median_s * 1000:.1f} ms ({median_s / baseline_s:.2f}× baseline), "
          f"p90 {p90_s * 1000:.1f} ms ({p90_s / baseline_s:.2f}×), max {times[-1] * 1000:.1f} ms "
          f"({times[-1] / baseline_s:.2f}×); target median ≤ 60 s")
    print(f"re-verification: {sum(v == 'accepted' for v in verdicts.values())}/{len(verdicts)} accepted again; "
          f"{len(verdicts) - len(disagreements)}/{len(verdicts)} reproduce the shipped spec hash and report digest")
    yield_ = funnel.accepted / funnel.proposals_processed if funnel.proposals_processed else 0.0
    print(f"funnel: resources {funnel.resources_considered} → proposals {funnel.proposals} → processed "
          f"{funnel.proposals_processed} → built {funnel.built} → verified {funnel.verified} → accepted "
          f"{funnel.accepted} (yield {yield_:.2f} of processed proposals)")
    if args.json:
        args.json.write_text(json.dumps({
            "baseline_s": baseline_s, "per_env_s": per_env, "median_s": median_s, "p90_s": p90_s,
            "disagreements": disagreements, "funnel": funnel.model_dump(mode="json"),
        }, indent=1, sort_keys=True))
    if disagreements:
        raise SystemExit(f"not reproduced: {', '.join(disagreements)}")


if __name__ == "__main__":
    main()
