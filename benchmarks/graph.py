"""Tool-graph speed and sampler quality, each figure next to a baseline from the same run.

- Build over ~750 catalog operations (14 AWS and Google services) without any model: flatten, indexed
  schema matching, user-providable heuristics, assembly (target ≤ 60 s on 2 cores). With `--embed`,
  the same build plus embedding edges (packaged all-MiniLM-L6-v2), cold cache and warm cache.
- Indexed vs naive schema matching on a ~160-operation subset: the same edges (checked), and the
  pairs scored and time of each.
- Sampling: topology-aware chains per second (all valid) against the random-walk baseline's chains per
  second and validity, over `--samples` chains each (target ≥ 1,000 valid chains/s).

Run: `python benchmarks/graph.py [--samples N] [--embed] [--json OUT]`. `bench_graph()` returns the
figures as a dict (for the README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from envfactory.cli.resources import default_cache_dir
from envfactory.graph import (
    GraphIndex,
    RandomWalkSampler,
    TopologySampler,
    build_graph,
    check_chain,
    tools_from_operations,
)
from envfactory.graph.build import prepare, schema_candidates
from envfactory.graph.stats import counts
from envfactory.resources import Catalog, default_sources
from envfactory.spec import Operation

BUILD_SERVICES = (
    "aws:sqs", "aws:sns", "aws:secretsmanager", "aws:kms", "aws:dynamodb", "aws:lambda", "aws:logs", "aws:ecr",
    "aws:events", "google:tasks", "google:calendar", "google:gmail", "google:drive:v3", "google:sheets",
)
NAIVE_SERVICES = ("aws:sqs", "aws:sns", "aws:secretsmanager", "google:tasks", "google:calendar", "google:sheets")


def _operations(catalog: Catalog, services: tuple[str, ...]) -> list[Operation]:
    return [op for service in services for op in catalog.resource(service).operations]


def _sampling(index: GraphIndex, samples: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sampler in (TopologySampler(index, seed=seed), RandomWalkSampler(index, seed=seed)):
        start = time.perf_counter()
        chains = [sampler.sample() for _ in range(samples)]
        seconds = time.perf_counter() - start
        checked = [not check_chain(index, chain) for chain in chains]
        valid = sum(checked)
        useful = sum(1 for chain, ok in zip(chains, checked, strict=True) if counts(chain, ok))
        out[sampler.name] = {"chains_per_s": round(samples / seconds), "valid_rate": round(valid / samples, 4),
                             "valid_per_s": round(valid / seconds), "counting_rate": round(useful / samples, 4),
                             "counting_per_s": round(useful / seconds)}
    topo, walk = out["topology"], out["random-walk"]
    out["validity_ratio"] = round(topo["valid_rate"] / walk["valid_rate"], 2) if walk["valid_rate"] else None
    out["valid_per_s_ratio"] = round(topo["valid_per_s"] / walk["valid_per_s"], 2) if walk["valid_per_s"] else None
    out["counting_per_s_ratio"] = (round(topo["counting_per_s"] / walk["counting_per_s"], 2)
                                   if walk["counting_per_s"] else None)
    return out


def bench_graph(samples: int = 10_000, embed: bool = False, repeat: int = 3) -> dict[str, Any]:
    sources, missing = default_sources(default_cache_dir())
    figures: dict[str, Any] = {}
    with Catalog(sources, default_cache_dir(), missing) as catalog:
        operations = _operations(catalog, BUILD_SERVICES)
        small = _operations(catalog, NAIVE_SERVICES)
    sets = tools_from_operations(operations)
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = build_graph(sets)
        times.append(time.perf_counter() - start)
    assert result is not None
    info = result.graph.graph
    figures["build"] = {"tools": info.tools, "params": info.params, "edges": info.edges,
                        "seconds_median": round(statistics.median(times), 3), "target_s": 60,
                        "stages": {k: round(v, 3) for k, v in result.timings.items()}}
    if embed:
        from envfactory.llm import CachedEmbedder, SentenceTransformerEmbedder
        from envfactory.store import KVStore

        with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp:
            inner = SentenceTransformerEmbedder()
            inner.load()
            embedder = CachedEmbedder(inner, KVStore(Path(tmp) / "cache.sqlite"))
            start = time.perf_counter()
            build_graph(sets, embedder=embedder)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            build_graph(sets, embedder=embedder)
            warm = time.perf_counter() - start
        figures["build_with_embeddings"] = {"cold_cache_s": round(cold, 2), "warm_cache_s": round(warm, 2),
                                            "texts_embedded": embedder.misses}

    prepared = prepare(tools_from_operations(small))
    start = time.perf_counter()
    indexed = schema_candidates(prepared)
    indexed_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = schema_candidates(prepared, naive=True)
    naive_s = time.perf_counter() - start
    figures["matching"] = {
        "tools": len(prepared.tools), "edges_indexed": len(indexed.scores), "edges_naive": len(naive.scores),
        "same_edges": indexed.scores == naive.scores, "pairs_scored_indexed": indexed.scored,
        "pairs_scored_naive": naive.scored, "indexed_s": round(indexed_s, 3), "naive_s": round(naive_s, 3),
        "speedup": round(naive_s / indexed_s, 1) if indexed_s else None,
    }
    index = GraphIndex.from_graph(result.graph)
    figures["sampling"] = _sampling(index, samples, seed=0)
    figures["sampling"]["target_valid_per_s"] = 1000
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--embed", action="store_true", help="also time a build with embedding edges")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = bench_graph(args.samples, args.embed)
    b, m, s = figures["build"], figures["matching"], figures["sampling"]
    print(f"build, {b['tools']} tools, {b['params']} fields, no model: {b['seconds_median']} s (target ≤ {b['target_s']} s); "
          f"stages {b['stages']}")
    if "build_with_embeddings" in figures:
        e = figures["build_with_embeddings"]
        print(f"build with embeddings: {e['cold_cache_s']} s cold ({e['texts_embedded']} texts), {e['warm_cache_s']} s warm")
    print(f"schema matching on {m['tools']} tools: indexed {m['indexed_s']} s ({m['pairs_scored_indexed']:,} pairs) vs "
          f"naive {m['naive_s']} s ({m['pairs_scored_naive']:,} pairs): {m['speedup']}x, same edges: {m['same_edges']}")
    t, w = s["topology"], s["random-walk"]
    for name, f in (("topology-aware", t), ("random walk", w)):
        print(f"sampling, {name}: {f['chains_per_s']:,} chains/s, {f['valid_rate']:.1%} valid ({f['valid_per_s']:,} valid/s), "
              f"{f['counting_rate']:.1%} valid with ≥ 2 tools and a data-flow binding ({f['counting_per_s']:,}/s)")
    print(f"topology-aware vs random walk: validity {s['validity_ratio']}x, valid chains/s {s['valid_per_s_ratio']}x, "
          f"useful chains/s {s['counting_per_s_ratio']}x")
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return 0 if m["same_edges"] else 1


if __name__ == "__main__":
    sys.exit(main())
