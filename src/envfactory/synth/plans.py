"""Candidates: what candidate number `n` of a run tries, decided by the run's seed and `n` alone.

Contract:
- `candidate_seed(seed, n)` is a stable 63-bit integer (sha256, not Python's `hash`), so candidate `n`
  is the same in every process, run and resume.
- `Planner.plan(n)` picks the environment (a seeded rotation over the sorted environments, so every
  environment gets candidates), the kind of task and the chain(s), then checks them with
  `graph.check_chain`. Kinds: *multi-environment* (share `multi_env_share`): a chain in each of two
  environments whose writes take the same kind of user-level entity, started at such a write, with one
  shared value; *read-only* (share `read_only_share`): the reads of a sampled chain, kept with the
  outputs they consume; otherwise the sampled chain as it is.
- The sampler is the configured one (`topology` or `random-walk`), each candidate with its own seed;
  chains stay within one environment (`max_servers=1`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envfactory.graph import RandomWalkSampler, SamplerConfig, TopologySampler, check_chain
from envfactory.graph.sample import sourcing_depth
from envfactory.spec import Binding, Chain, ChainProvenance, ChainStep, StepOutput, content_hash
from envfactory.spec.synth import SynthTasksConfig
from envfactory.synth.envs import SynthEnv
from envfactory.synth.realise import ChainPart, Dropped, Plan

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "Hedy", "Linus")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Berners",
         "Lamarr", "Torvalds")
_CITIES = ("Lisbon", "Osaka", "Nairobi", "Montreal", "Valparaiso", "Tallinn", "Hobart", "Kraków", "Accra", "Bergen")
_AMOUNTS = (25, 40, 75, 120, 250, 480, 960)
MULTI_CHAIN_LENGTH = 4
"""the longest chain per environment of a multi-environment task"""
START_TRIES = 4


def candidate_seed(seed: int, number: int) -> int:
    """A stable 63-bit seed for candidate `number` of a run seeded `seed`."""
    digest = hashlib.sha256(f"envfactory.synth:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def shared_value(kind: str, rng: random.Random) -> Any:
    """A user-level value of `kind` that two environments can both hold."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    if kind == "email":
        return f"{first.lower()}.{last.lower()}@example.com"
    if kind == "person":
        return f"{first} {last}"
    if kind == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "place":
        return rng.choice(_CITIES)
    return rng.choice(_AMOUNTS)


def read_projection(chain: Chain, senv: SynthEnv) -> Chain:
    """The chain's read steps whose inputs come from the user or from other kept steps, renumbered."""
    kept: dict[int, int] = {}
    steps: list[ChainStep] = []
    for index, step in enumerate(chain.steps):
        if senv.facts[senv.tool_name(step.tool)].writes:
            continue
        sources = [b.source for b in step.bindings if isinstance(b.source, StepOutput)]
        if any(source.step not in kept for source in sources):
            continue
        bindings = [
            Binding(input=b.input, required=b.required,
                    source=StepOutput(step=kept[b.source.step], tool=b.source.tool, output=b.source.output))
            if isinstance(b.source, StepOutput) else b
            for b in step.bindings
        ]
        kept[index] = len(steps)
        steps.append(ChainStep(tool=step.tool, server=step.server, bindings=bindings))
    return chain.model_copy(update={"steps": steps})


@dataclass(frozen=True, slots=True)
class Planned:
    """A candidate's plan with the rng its realisation goes on drawing from, the chain's provenance
    (chain id, tools, sampler, graph hash) that the task records, and the candidate's seed."""

    plan: Plan
    rng: random.Random
    provenance: ChainProvenance
    seed: int


class Planner:
    """Turns candidate numbers into plans (see the module contract)."""

    def __init__(self, senvs: Sequence[SynthEnv], config: SynthTasksConfig) -> None:
        """Plan over `senvs` (sorted by name; none is a `ValueError`) with the samplers, shares and seed of
        `config`; precomputes per environment the write tools by entity kind and the reads that a short
        chain can feed."""
        if not senvs:
            raise ValueError("no environments to plan tasks over")
        self.config = config
        self.senvs = sorted(senvs, key=lambda s: s.name)
        order = list(range(len(self.senvs)))
        random.Random(candidate_seed(config.seed, -1)).shuffle(order)
        self.order = order
        self.sampler_config = SamplerConfig(max_length=config.max_chain_length,
                                            target_length=(1, config.max_chain_length), max_servers=1)
        short = min(MULTI_CHAIN_LENGTH, config.max_chain_length)
        self.part_config = SamplerConfig(max_length=short, target_length=(1, short), max_servers=1)
        self.entity_starts: list[dict[str, list[str]]] = []  # per env: kind -> write tools (graph ids) taking it
        self.read_starts: list[list[str]] = []  # per env: reads whose inputs can be sourced in a short chain
        for senv in self.senvs:
            need = sourcing_depth(senv.index)
            reachable = [graph_id for graph_id, depth in zip(senv.index.ids, need, strict=True) if depth < short]
            self.read_starts.append([g for g in reachable if not senv.facts[senv.tool_name(g)].writes])
            starts: dict[str, list[str]] = {}
            for graph_id in reachable:
                facts = senv.facts.get(senv.tool_name(graph_id))
                if facts is None or not facts.writes:
                    continue
                for kind in sorted(set(facts.entities.values())):
                    starts.setdefault(kind, []).append(graph_id)
            self.entity_starts.append(starts)
        self.multi_order = [i for i in self.order if any(
            any(kind in other for j, other in enumerate(self.entity_starts) if j != i) for kind in self.entity_starts[i])]

    def _sample(self, senv: SynthEnv, seed: int, start: str | None = None, *, part: bool = False) -> Chain:
        cls = TopologySampler if self.config.sampler == "topology" else RandomWalkSampler
        return cls(senv.index, seed=seed, config=self.part_config if part else self.sampler_config).sample(start)

    def _part(self, env: int, kind: str, rng: random.Random) -> Chain:
        """A chain of environment `env` started at a write taking `kind` (tries a few such writes:
        a start whose inputs cannot be sourced gives an empty chain)."""
        starts = list(self.entity_starts[env][kind])
        rng.shuffle(starts)
        chain = self._sample(self.senvs[env], rng.randrange(2**31), starts[0], part=True)
        for attempt in range(1, START_TRIES):
            if chain.steps:
                break  # optional producers the sampler inserts first may leave no room for the start: retry
            chain = self._sample(self.senvs[env], rng.randrange(2**31), starts[attempt % len(starts)], part=True)
        return chain

    def _partner(self, env: int, rng: random.Random) -> tuple[int, str] | None:
        kinds = sorted(self.entity_starts[env])
        rng.shuffle(kinds)
        for kind in kinds:
            partners = [i for i, starts in enumerate(self.entity_starts) if i != env and kind in starts]
            if partners:
                return rng.choice(partners), kind
        return None

    def plan(self, number: int) -> Planned | Dropped:
        """The plan of candidate `number`, or why it has none."""
        seed = candidate_seed(self.config.seed, number)
        rng = random.Random(seed)
        draw = rng.random()
        multi = draw < self.config.multi_env_share and bool(self.multi_order)
        # multi-environment candidates rotate over the environments that can share an entity
        env = self.multi_order[number % len(self.multi_order)] if multi else self.order[number % len(self.order)]
        senv = self.senvs[env]
        parts: list[ChainPart] = []
        shared: dict[str, Any] = {}
        shared_kind: str | None = None
        read_only = False
        partner = self._partner(env, rng) if multi else None
        if partner is not None:
            other, shared_kind = partner
            shared = {shared_kind: shared_value(shared_kind, rng)}
            parts.extend(ChainPart(self.senvs[index], self._part(index, shared_kind, rng)) for index in (env, other))
        else:
            read_only = draw >= 1.0 - self.config.read_only_share
            reads = self.read_starts[env]
            start = rng.choice(reads) if read_only and reads else None
            chain = self._sample(senv, rng.randrange(2**31), start)
            parts.append(ChainPart(senv, read_projection(chain, senv) if read_only else chain))
        names = [p.senv.name for p in parts]
        for part in parts:
            if not part.chain.steps:
                return Dropped("valid", "no reads in the chain" if read_only else "empty chain", envs=tuple(names))
            problems = check_chain(part.senv.index, part.chain)
            if problems:
                return Dropped("valid", problems[0].rsplit(": ", 1)[-1], problems[0], envs=tuple(names))
        provenance = ChainProvenance(
            chain_id=content_hash([p.chain.model_dump(mode="json") for p in parts]),
            tools=[t for p in parts for t in p.chain.tools], sampler=self.config.sampler,
            sampler_seed=parts[0].chain.seed, graph_hash=content_hash([p.senv.graph_hash for p in parts]),
            grounding_seed=seed,
        )
        return Planned(Plan(parts=tuple(parts), shared=shared, shared_kind=shared_kind, read_only=read_only),
                       rng, provenance, seed)

