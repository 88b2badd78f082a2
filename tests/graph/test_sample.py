"""Samplers and the validity check: seeded objects (same seed → same chains, in any process and under
any PYTHONHASHSEED), binding plans, caps (length, servers, no repeats), topology-aware chains always
valid, random-walk chains often not, and `check_chain` rejecting forged chains."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from envfactory.graph import (
    Binding,
    Chain,
    ChainStep,
    GraphIndex,
    NoSource,
    RandomWalkSampler,
    SamplerConfig,
    StepOutput,
    ToolGraph,
    TopologySampler,
    UserValue,
    check_chain,
)


def test_same_seed_same_chains_and_no_global_rng(bundled_index: GraphIndex) -> None:
    random.seed(1)
    first = [TopologySampler(bundled_index, seed=7).sample() for _ in range(1)]
    a = TopologySampler(bundled_index, seed=7)
    random.seed(999)
    b = TopologySampler(bundled_index, seed=7)
    chains_a = [a.sample() for _ in range(50)]
    chains_b = [b.sample() for _ in range(50)]
    assert chains_a == chains_b and chains_a[0] == first[0]
    assert [c.number for c in chains_a] == list(range(50))
    other = [TopologySampler(bundled_index, seed=8).sample() for _ in range(50)]
    assert other != chains_a
    walk_a, walk_b = RandomWalkSampler(bundled_index, seed=7), RandomWalkSampler(bundled_index, seed=7)
    assert [walk_a.sample() for _ in range(20)] == [walk_b.sample() for _ in range(20)]


SCRIPT = """
import hashlib, sys
from envfactory.graph import GraphIndex, TopologySampler, RandomWalkSampler, build_graph, from_env_spec
from envfactory.graph.io import graph_bytes
from envfactory.runtime import bundled_env_names, load_env
graph = build_graph([from_env_spec(load_env(n).spec) for n in bundled_env_names()]).graph
index = GraphIndex.from_graph(graph)
digest = hashlib.sha256(graph_bytes(graph))
for sampler in (TopologySampler(index, seed=3), RandomWalkSampler(index, seed=3)):
    for _ in range(200):
        digest.update(sampler.sample().model_dump_json().encode())
print(digest.hexdigest())
"""


def test_identical_across_processes_and_hash_seeds(repo_root: Path) -> None:
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True,
                              cwd=repo_root, timeout=120)
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


def test_topology_chains_are_valid_and_bound(bundled_index: GraphIndex) -> None:
    sampler = TopologySampler(bundled_index, seed=0)
    chains = [sampler.sample() for _ in range(400)]
    assert all(check_chain(bundled_index, c) == [] for c in chains)
    assert sum(c.data_flow > 0 for c in chains) > 300
    for chain in chains:
        for number, step in enumerate(chain.steps):
            tool = bundled_index.position[step.tool]
            required = {s.path for s in bundled_index.slots[tool]}
            assert required <= {b.input for b in step.bindings}
            for binding in step.bindings:
                if isinstance(binding.source, StepOutput):
                    assert binding.source.step < number
                    assert chain.steps[binding.source.step].tool == binding.source.tool


def test_random_walk_is_often_invalid(bundled_index: GraphIndex) -> None:
    sampler = RandomWalkSampler(bundled_index, seed=0)
    chains = [sampler.sample() for _ in range(400)]
    invalid = [c for c in chains if check_chain(bundled_index, c)]
    assert 0.3 < len(invalid) / len(chains) < 1.0
    assert any(isinstance(b.source, NoSource) for c in invalid for s in c.steps for b in s.bindings)


@pytest.mark.parametrize("config", [SamplerConfig(max_length=3, target_length=(3, 3)),
                                    SamplerConfig(max_servers=1, max_length=6),
                                    SamplerConfig(max_depth=0, p_optional=1.0)])
def test_caps_hold(bundled_index: GraphIndex, config: SamplerConfig) -> None:
    sampler = TopologySampler(bundled_index, seed=5, config=config)
    for _ in range(300):
        chain = sampler.sample()
        assert len(chain.steps) <= config.max_length
        assert len(chain.servers) <= config.max_servers
        assert len(set(chain.tools)) == len(chain.tools)
        assert not check_chain(bundled_index, chain)


def test_start_tool_and_unknown_start(bundled_index: GraphIndex) -> None:
    sampler = TopologySampler(bundled_index, seed=1)
    chain = sampler.sample("shop__pay_order")
    assert "shop__pay_order" in chain.tools
    assert chain.tools.index("shop__pay_order") > 0  # its order had to be created first
    with pytest.raises(KeyError):
        sampler.sample("nope__nothing")


def test_sampler_config_is_checked() -> None:
    for bad in ({"max_length": 0}, {"p_optional": 1.5}, {"target_length": (4, 2)}, {"max_depth": -1}):
        with pytest.raises(ValueError):
            SamplerConfig(**bad)  # type: ignore[arg-type]


def test_empty_graph_cannot_be_sampled() -> None:
    with pytest.raises(ValueError, match="no tools"):
        TopologySampler(GraphIndex.from_graph(ToolGraph()))


def _chain(*steps: ChainStep) -> Chain:
    return Chain(sampler="hand", seed=0, number=0, steps=list(steps))


def test_check_chain_rejects_forged_chains(bundled_index: GraphIndex) -> None:
    good = _chain(
        ChainStep(tool="shop__list_orders", server="shop"),
        ChainStep(tool="shop__pay_order", server="shop", bindings=[
            Binding(input="id", required=True, source=StepOutput(step=0, tool="shop__list_orders", output="items[].id"))]),
    )
    assert check_chain(bundled_index, good) == []
    unbound = _chain(ChainStep(tool="shop__pay_order", server="shop"))
    assert "required and not bound" in check_chain(bundled_index, unbound)[0]
    user = _chain(ChainStep(tool="shop__pay_order", server="shop", bindings=[
        Binding(input="id", required=True, source=UserValue())]))
    assert "a user cannot state it" in check_chain(bundled_index, user)[0]
    later = _chain(
        ChainStep(tool="shop__pay_order", server="shop", bindings=[
            Binding(input="id", required=True, source=StepOutput(step=1, tool="shop__list_orders", output="items[].id"))]),
        ChainStep(tool="shop__list_orders", server="shop"),
    )
    assert "not earlier" in check_chain(bundled_index, later)[0]
    wrong = _chain(
        ChainStep(tool="shop__list_products", server="shop"),
        ChainStep(tool="shop__pay_order", server="shop", bindings=[
            Binding(input="id", required=True, source=StepOutput(step=0, tool="shop__list_products", output="items[].sku"))]),
    )
    assert "does not feed it" in check_chain(bundled_index, wrong)[0]
    twice = _chain(ChainStep(tool="shop__list_orders", server="shop"), ChainStep(tool="shop__list_orders", server="shop"))
    assert "appears twice" in check_chain(bundled_index, twice)[0]
    unknown = _chain(ChainStep(tool="shop__nothing", server="shop"))
    assert "unknown tool" in check_chain(bundled_index, unknown)[0]
    none = _chain(ChainStep(tool="shop__pay_order", server="shop", bindings=[
        Binding(input="id", required=True, source=NoSource())]))
    assert "nothing supplies it" in check_chain(bundled_index, none)[0]


def test_chains_round_trip_as_json(bundled_index: GraphIndex, bundled_graph: ToolGraph) -> None:
    chain = TopologySampler(bundled_index, seed=2).sample()
    assert Chain.model_validate_json(chain.model_dump_json()) == chain
