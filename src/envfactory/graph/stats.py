"""Graph and sampler statistics: coverage, chain-length and servers-per-chain distributions, validity
of topology-aware vs random-walk chains.

Contract:
- A chain "counts" when it is valid (`check_chain`), has ≥ 2 tools and ≥ 1 data-flow binding.
- Coverage is the share of tools that appear in at least one counting chain. `sampled` covers the
  `samples` topology-aware chains; `covered` adds, for every tool the samples missed, up to
  `targeted_tries` chains started from that tool (so every covered tool has a witness chain);
  `reachable` is an analytic upper bound (the tool's required inputs can all be sourced within the
  depth cap, and it feeds or is fed by such a tool), ignoring the server cap.
- Deterministic for a given graph, config and seed; timings are measured but kept apart from the
  figures (`StatsReport.timings`), so the saved JSON of figures is reproducible.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from envfactory.graph.chain import Chain
from envfactory.graph.index import GraphIndex
from envfactory.graph.sample import RandomWalkSampler, SamplerConfig, TopologySampler, check_chain


def counts(chain: Chain, valid: bool) -> bool:
    """Whether a chain counts towards the sampler's figures: valid, at least two steps and one data flow."""
    return valid and len(chain.steps) >= 2 and chain.data_flow >= 1


@dataclass(slots=True)
class SamplerStats:
    """What one sampler produced: samples, valid and counting chains, and their lengths, servers and
    problems."""
    name: str
    samples: int
    valid: int
    counting: int
    lengths: dict[int, int]
    servers: dict[int, int]
    problems: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """The counts, rates (rounded) and histograms, JSON-ready with string keys."""
        return {
            "sampler": self.name, "samples": self.samples, "valid": self.valid,
            "valid_rate": round(self.valid / self.samples, 4) if self.samples else 0.0,
            "counting": self.counting, "counting_rate": round(self.counting / self.samples, 4) if self.samples else 0.0,
            "chain_length": {str(k): v for k, v in sorted(self.lengths.items())},
            "servers_per_chain": {str(k): v for k, v in sorted(self.servers.items())},
            "mean_length": round(sum(k * v for k, v in self.lengths.items()) / self.samples, 3) if self.samples else 0.0,
            "problems": dict(sorted(self.problems.items(), key=lambda kv: (-kv[1], kv[0]))[:10]),
        }


@dataclass(slots=True)
class StatsReport:
    """Figures of a tool graph: sizes, edge kinds, slots with and without a source, sampled coverage and
    each sampler's stats."""
    tools: int
    servers: int
    feeds: int
    depends: int
    slots: int
    slots_without_source: int
    sampled_coverage: float
    coverage: float
    reachable_coverage: float
    uncovered: list[str]
    topology: SamplerStats
    random_walk: SamplerStats
    seed: int
    config: SamplerConfig
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every figure of the report, JSON-ready (rates rounded to 4 places), with both samplers' stats."""
        c = self.config
        return {
            "tools": self.tools, "servers": self.servers, "feeds_edges": self.feeds, "depends_edges": self.depends,
            "required_inputs": self.slots, "required_inputs_without_source": self.slots_without_source,
            "coverage": round(self.coverage, 4), "sampled_coverage": round(self.sampled_coverage, 4),
            "reachable_coverage": round(self.reachable_coverage, 4), "uncovered_tools": self.uncovered,
            "topology": self.topology.as_dict(), "random_walk": self.random_walk.as_dict(), "seed": self.seed,
            "sampler_config": {"max_length": c.max_length, "target_length": list(c.target_length),
                               "max_depth": c.max_depth, "max_servers": c.max_servers,
                               "max_successors": c.max_successors, "p_optional": c.p_optional,
                               "p_producer_for_providable": c.p_producer_for_providable},
        }


def _run(index: GraphIndex, sampler: TopologySampler | RandomWalkSampler, samples: int,
         covered: set[int]) -> SamplerStats:
    lengths: Counter[int] = Counter()
    servers: Counter[int] = Counter()
    problems: Counter[str] = Counter()
    valid = counting = 0
    for _ in range(samples):
        chain = sampler.sample()
        found = check_chain(index, chain)
        lengths[len(chain.steps)] += 1
        servers[len(chain.servers)] += 1
        if not found:
            valid += 1
            if counts(chain, True):
                counting += 1
                covered.update(index.position[t] for t in chain.tools)
        for problem in found:
            problems[problem.rsplit(": ", 1)[-1]] += 1
    return SamplerStats(sampler.name, samples, valid, counting, dict(lengths), dict(servers), dict(problems))


def reachable(index: GraphIndex, max_depth: int) -> set[int]:
    """Tools that can be in a counting chain, by analysis (see the module docstring)."""
    n = len(index)
    memo: dict[tuple[int, int], bool] = {}

    def sourced(tool: int, depth: int, visiting: frozenset[int]) -> bool:
        key = (tool, depth)
        if key in memo:
            return memo[key]
        ok = True
        for slot in index.slots[tool]:
            if slot.providable:
                continue
            if depth >= max_depth or not any(
                p.tool != tool and p.tool not in visiting and sourced(p.tool, depth + 1, visiting | {tool})
                for p in slot.producers
            ):
                ok = False
                break
        memo[key] = ok
        return ok

    result: set[int] = set()
    for consumer in range(n):
        inputs = index.slots[consumer] + index.optional[consumer]
        for slot in inputs:
            for producer in slot.producers:
                if producer.tool == consumer or not sourced(producer.tool, 1, frozenset({consumer})):
                    continue
                others_ok = all(
                    other is slot or other.providable
                    or any(p.tool != consumer and sourced(p.tool, 1, frozenset({consumer})) for p in other.producers)
                    for other in index.slots[consumer]
                )
                if others_ok:
                    result.update((consumer, producer.tool))
    return result


def graph_stats(index: GraphIndex, *, samples: int = 10_000, seed: int = 0, config: SamplerConfig | None = None,
                targeted_tries: int = 20) -> StatsReport:
    """Sample, check and count (see the module docstring)."""
    config = config or SamplerConfig()
    timings: dict[str, float] = {}
    covered: set[int] = set()
    started = time.perf_counter()
    topology = _run(index, TopologySampler(index, seed=seed, config=config), samples, covered)
    timings["topology_s"] = time.perf_counter() - started
    sampled = len(covered)
    started = time.perf_counter()
    walk = _run(index, RandomWalkSampler(index, seed=seed, config=config), samples, set())
    timings["random_walk_s"] = time.perf_counter() - started
    started = time.perf_counter()
    targeted = TopologySampler(index, seed=seed + 1, config=config)
    for tool in range(len(index)):
        if tool in covered:
            continue
        for _ in range(targeted_tries):
            chain = targeted.sample(start=tool)
            if index.position[index.ids[tool]] in {index.position[t] for t in chain.tools} and counts(
                    chain, not check_chain(index, chain)):
                covered.update(index.position[t] for t in chain.tools)
                break
    timings["targeted_s"] = time.perf_counter() - started
    bound = reachable(index, config.max_depth)
    all_slots = [s for slots in index.slots for s in slots]
    n = len(index) or 1
    return StatsReport(
        tools=len(index), servers=len(index.server_names), feeds=len(index.feeds),
        depends=sum(len(s) for s in index.successors), slots=len(all_slots),
        slots_without_source=sum(1 for s in all_slots if not s.providable and not s.producers),
        sampled_coverage=sampled / n, coverage=len(covered) / n, reachable_coverage=len(bound | covered) / n,
        uncovered=[index.ids[i] for i in range(len(index)) if i not in covered],
        topology=topology, random_walk=walk, seed=seed, config=config, timings=timings,
    )
