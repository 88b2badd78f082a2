"""Graph statistics: coverage, distributions and sampler validity, deterministic and serialisable."""

from __future__ import annotations

import json

from envfactory.graph import GraphIndex, SamplerConfig, graph_stats
from envfactory.graph.stats import reachable


def test_stats_on_the_bundled_graph(bundled_index: GraphIndex) -> None:
    report = graph_stats(bundled_index, samples=500, seed=1)
    figures = report.as_dict()
    assert figures["coverage"] >= 0.9 and figures["reachable_coverage"] >= figures["coverage"] - 1e-9
    assert figures["topology"]["valid_rate"] == 1.0
    assert figures["random_walk"]["valid_rate"] < figures["topology"]["valid_rate"]
    assert sum(figures["topology"]["chain_length"].values()) == 500
    assert sum(figures["random_walk"]["servers_per_chain"].values()) == 500
    assert max(int(k) for k in figures["topology"]["chain_length"]) <= SamplerConfig().max_length
    json.dumps(figures)
    again = graph_stats(bundled_index, samples=500, seed=1).as_dict()
    assert again == figures  # timings are kept out of the figures


def test_reachable_is_an_upper_bound(bundled_index: GraphIndex) -> None:
    report = graph_stats(bundled_index, samples=200, seed=2)
    bound = reachable(bundled_index, SamplerConfig().max_depth)
    covered = {bundled_index.position[t] for t in bundled_index.ids} - {bundled_index.position[t] for t in report.uncovered}
    assert covered <= bound | covered
    assert report.reachable_coverage >= report.coverage
