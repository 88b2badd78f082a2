"""Chain samplers (seeded objects, never the global RNG) and the validity check.

Contract:
- A sampler owns a `random.Random(seed)`; `sample()` returns the next chain of its sequence, so the
  same (graph, config, seed) gives the same chains in any process (no set or dict iteration order
  decides anything; every choice is from a sorted list).
- `TopologySampler` (the method's sampler, repaired): before a tool joins the chain, each required
  input gets a source — an earlier step that produces it, else the user when the input is
  user-providable (with probability `p_producer_for_providable` a producer is inserted anyway), else a
  producer inserted first, recursively up to `max_depth` levels; optional inputs that some tool can
  produce get a producer with probability `p_optional`. A tool whose required inputs cannot all be
  sourced within the caps is not added (the chain is rolled back to before it). Then successors are
  expanded breadth first (a random 1..`max_successors` of them) until the chain reaches a length drawn
  from `target_length`. Hard caps: `max_length` steps (producers included), `max_servers` servers, no
  tool twice.
- `RandomWalkSampler` (the baseline): a uniform walk over `depends` edges to a random length in
  [2, max_length], no producer insertion; inputs are bound afterwards to an earlier producer or the user
  where possible, else marked `NoSource`.
- `check_chain` rejects a chain in which a required input has no source, a step output is not an
  earlier step's field that feeds this input (an accepted edge), a user value binds a field that is not
  user-providable, a tool repeats, or a step's tool is unknown.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from envfactory.graph.chain import Binding, Chain, ChainStep, NoSource, StepOutput, UserValue
from envfactory.graph.index import GraphIndex, Producer, Slot
from envfactory.spec.base import trusted_construct


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """Limits and probabilities of the chain samplers (chain length, depth, servers, successors, optional
    inputs)."""
    max_length: int = 8
    target_length: tuple[int, int] = (2, 6)
    max_depth: int = 3
    max_servers: int = 3
    max_successors: int = 3
    p_optional: float = 0.4
    p_producer_for_providable: float = 0.1
    producer_tries: int = 3

    def __post_init__(self) -> None:
        if self.max_length < 1 or self.max_depth < 0 or self.max_servers < 1 or self.max_successors < 1:
            raise ValueError("max_length, max_servers and max_successors must be ≥ 1 and max_depth ≥ 0")
        low, high = self.target_length
        if not 1 <= low <= high:
            raise ValueError(f"target_length must be (low, high) with 1 ≤ low ≤ high, not {self.target_length}")
        for name in ("p_optional", "p_producer_for_providable"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {value}")


_USER = UserValue()
_NONE = NoSource()


class _Plan:
    """A chain under construction, with cheap rollback."""

    __slots__ = ("bindings", "pending", "servers", "step_of", "tools")

    def __init__(self) -> None:
        self.pending: set[int] = set()  # tools whose sources are being inserted (no cycles)
        self.tools: list[int] = []
        self.bindings: list[list[tuple[Slot, int, str]]] = []  # (slot, producer step or -1 user, output)
        self.step_of: dict[int, int] = {}
        self.servers: dict[int, int] = {}  # server → count of steps

    def mark(self) -> int:
        return len(self.tools)

    def rollback(self, mark: int, index: GraphIndex) -> None:
        while len(self.tools) > mark:
            tool = self.tools.pop()
            self.bindings.pop()
            del self.step_of[tool]
            server = index.servers[tool]
            self.servers[server] -= 1
            if not self.servers[server]:
                del self.servers[server]

    def add(self, tool: int, bindings: list[tuple[Slot, int, str]], index: GraphIndex) -> None:
        self.step_of[tool] = len(self.tools)
        self.tools.append(tool)
        self.bindings.append(bindings)
        server = index.servers[tool]
        self.servers[server] = self.servers.get(server, 0) + 1

    def source(self, slot: Slot) -> Producer | None:
        """The latest step already in the plan that produces `slot`."""
        by_tool = slot.by_tool
        for tool in reversed(self.tools):
            found = by_tool.get(tool)
            if found is not None:
                return found
        return None

    def chain(self, index: GraphIndex, sampler: str, seed: int, number: int) -> Chain:
        """The plan as a `Chain`. Built with `trusted_construct` (the hot path of sampling): every value
        comes from the index, so the models' validation would only repeat what is known."""
        steps = []
        for tool, bound in zip(self.tools, self.bindings, strict=True):
            bindings = []
            for slot, step, output in bound:
                source: UserValue | StepOutput | NoSource
                if step >= 0:
                    source = trusted_construct(StepOutput, {"kind": "step", "step": step,
                                                            "tool": index.ids[self.tools[step]], "output": output})
                elif step == -1:
                    source = _USER
                else:
                    source = _NONE
                bindings.append(trusted_construct(Binding, {"input": slot.path, "required": slot.required, "source": source}))
            steps.append(trusted_construct(ChainStep, {"tool": index.ids[tool], "bindings": bindings,
                                                       "server": index.server_names[index.servers[tool]]}))
        return trusted_construct(Chain, {"schema_version": 1, "sampler": sampler, "seed": seed, "number": number,
                                         "steps": steps})


UNREACHABLE = 1 << 30


def sourcing_depth(index: GraphIndex) -> list[int]:
    """For each tool, how many levels of producers its required inputs need at least (0: the user can
    state them all; `UNREACHABLE`: some input has no source at all). A fixpoint over the producer
    relation, so cycles are fine."""
    need = [UNREACHABLE] * len(index)
    changed = True
    while changed:
        changed = False
        for tool in range(len(index)):
            worst = 0
            for slot in index.slots[tool]:
                if slot.providable:
                    continue
                best = min((need[p.tool] for p in slot.producers if p.tool != tool), default=UNREACHABLE)
                worst = max(worst, best + 1 if best < UNREACHABLE else UNREACHABLE)
            if worst < need[tool]:
                need[tool] = worst
                changed = True
    return need


class _Sampler:
    """What both samplers share: the index, the config and their own seeded RNG (never the global one)."""

    def __init__(self, index: GraphIndex, seed: int = 0, config: SamplerConfig | None = None) -> None:
        if not len(index):
            raise ValueError("the graph has no tools to sample from")
        self.index = index
        self.seed = seed
        self.config = config or SamplerConfig()
        self._rng = random.Random(seed)
        self._number = 0


class TopologySampler(_Sampler):
    """See the module docstring."""

    name = "topology"

    def __init__(self, index: GraphIndex, seed: int = 0, config: SamplerConfig | None = None) -> None:
        """A sampler over `index` drawing from `random.Random(seed)`: same index, seed and config, same
        chains in the same order."""
        super().__init__(index, seed, config)
        self._need = sourcing_depth(index)  # prunes producers that cannot be sourced within the depth cap

    def sample(self, start: str | int | None = None) -> Chain:
        """The next chain: from `start` (a tool id or position) when given, else from a random tool (a
        start whose inputs cannot be sourced is replaced by another, up to `START_TRIES` times)."""
        index, config, rng = self.index, self.config, self._rng
        target = min(config.max_length, rng.randint(*config.target_length))
        plan = _Plan()
        for _ in range(1 if start is not None else self.START_TRIES):
            if self._insert(self._start(start), plan, 0):
                break
        queue: deque[int] = deque()
        if plan.tools:
            self._expand(plan.tools[-1], plan, queue)
        while queue and len(plan.tools) < target:
            tool = queue.popleft()
            if tool in plan.step_of or not self._server_ok(tool, plan):
                continue
            if self._insert(tool, plan, 0):
                self._expand(tool, plan, queue)
        number = self._number
        self._number += 1
        return plan.chain(index, self.name, self.seed, number)

    START_TRIES = 8

    def _expand(self, tool: int, plan: _Plan, queue: deque[int]) -> None:
        successors = [s for s in self.index.successors[tool] if s not in plan.step_of and self._server_ok(s, plan)]
        if successors:
            count = self._rng.randint(1, min(len(successors), self.config.max_successors))
            queue.extend(self._rng.sample(successors, count))

    def _start(self, start: str | int | None) -> int:
        if start is None:
            return self._rng.randrange(len(self.index))
        if isinstance(start, str):
            if start not in self.index.position:
                raise KeyError(f"no tool {start!r} in the graph")
            return self.index.position[start]
        return start

    def _server_ok(self, tool: int, plan: _Plan) -> bool:
        return self.index.servers[tool] in plan.servers or len(plan.servers) < self.config.max_servers

    def _insert(self, tool: int, plan: _Plan, depth: int) -> bool:
        """Add `tool` after sourcing its inputs; False (and the plan unchanged) if that is impossible."""
        plan.pending.add(tool)
        try:
            return self._insert_pending(tool, plan, depth)
        finally:
            plan.pending.discard(tool)

    def _insert_pending(self, tool: int, plan: _Plan, depth: int) -> bool:
        index, config, rng = self.index, self.config, self._rng
        mark = plan.mark()
        bound: list[tuple[Slot, int, str]] = []
        for slot in index.slots[tool]:
            existing = plan.source(slot)
            if existing is not None:
                bound.append((slot, plan.step_of[existing.tool], existing.output))
                continue
            wants_producer = not slot.providable or (slot.producers and rng.random() < config.p_producer_for_providable)
            produced = self._produce(slot, tool, plan, depth) if wants_producer and slot.producers else None
            if produced is not None:
                bound.append((slot, plan.step_of[produced.tool], produced.output))
            elif slot.providable:
                bound.append((slot, -1, ""))
            else:
                plan.rollback(mark, index)
                return False
        for slot in index.optional[tool]:
            if rng.random() >= config.p_optional:
                continue
            existing = plan.source(slot)
            if existing is None:
                existing = self._produce(slot, tool, plan, depth)
            if existing is not None:
                bound.append((slot, plan.step_of[existing.tool], existing.output))
        if len(plan.tools) >= config.max_length or not self._server_ok(tool, plan):
            plan.rollback(mark, index)
            return False
        plan.add(tool, bound, index)
        return True

    def _produce(self, slot: Slot, consumer: int, plan: _Plan, depth: int) -> Producer | None:
        """Insert a producer of `slot` (and its own sources) into the plan; None if none fits."""
        if depth >= self.config.max_depth:
            return None
        room = self.config.max_depth - depth - 1
        need = self._need
        candidates = [p for p in slot.producers if need[p.tool] <= room and p.tool != consumer
                      and p.tool not in plan.step_of and p.tool not in plan.pending and self._server_ok(p.tool, plan)]
        for _ in range(min(self.config.producer_tries, len(candidates))):
            producer = candidates.pop(self._rng.randrange(len(candidates)))
            if self._insert(producer.tool, plan, depth + 1):
                return producer
        return None


class RandomWalkSampler(_Sampler):
    """See the module docstring."""

    name = "random-walk"

    def sample(self, start: str | int | None = None) -> Chain:
        """The next chain: a walk over `depends` edges from `start` (a tool id or position) or a random tool,
        to a random length in [2, max_length]; inputs with no earlier producer or user source are left unbound
        (the baseline: its chains may fail `check_chain`)."""
        index, rng = self.index, self._rng
        if start is None:
            current = rng.randrange(len(index))
        else:
            current = index.position[start] if isinstance(start, str) else start
        target = rng.randint(min(2, self.config.max_length), self.config.max_length)
        plan = _Plan()
        servers: set[int] = set()
        while True:
            bound: list[tuple[Slot, int, str]] = []
            for slot in index.slots[current]:
                existing = plan.source(slot)
                if existing is not None:
                    bound.append((slot, plan.step_of[existing.tool], existing.output))
                else:
                    bound.append((slot, -1 if slot.providable else -2, ""))
            plan.add(current, bound, index)
            servers.add(index.servers[current])
            if len(plan.tools) >= target:
                break
            options = [s for s in index.successors[current] if s not in plan.step_of
                       and (index.servers[s] in servers or len(servers) < self.config.max_servers)]
            if not options:
                break
            current = options[rng.randrange(len(options))]
        number = self._number
        self._number += 1
        return plan.chain(index, self.name, self.seed, number)


Sampler = TopologySampler | RandomWalkSampler


def check_chain(index: GraphIndex, chain: Chain) -> list[str]:
    """Every reason `chain` is not valid (empty when it is); see the module docstring."""
    problems: list[str] = []
    seen: set[int] = set()
    for number, step in enumerate(chain.steps):
        tool = index.position.get(step.tool)
        if tool is None:
            problems.append(f"step {number}: unknown tool {step.tool}")
            continue
        if tool in seen:
            problems.append(f"step {number}: {step.tool} appears twice")
        seen.add(tool)
        slots = {s.path: s for s in index.slots[tool]}
        others = {s.path: s for s in index.optional[tool]}
        bound: dict[str, int] = {}
        for binding in step.bindings:
            bound[binding.input] = bound.get(binding.input, 0) + 1
            slot = slots.get(binding.input) or others.get(binding.input)
            where = f"step {number} ({step.tool}) input {binding.input}"
            if slot is None and (binding.required or not isinstance(binding.source, StepOutput)):
                problems.append(f"{where}: not an input this tool takes")
                continue
            source = binding.source
            if isinstance(source, NoSource):
                problems.append(f"{where}: nothing supplies it")
            elif isinstance(source, UserValue):
                if slot is not None and not slot.providable:
                    problems.append(f"{where}: bound to a user value but a user cannot state it")
            else:
                if source.step >= number:
                    problems.append(f"{where}: takes the output of step {source.step}, which is not earlier")
                    continue
                producer = index.position.get(chain.steps[source.step].tool)
                if producer is None or (producer, source.output, tool, binding.input) not in index.feeds:
                    problems.append(f"{where}: {chain.steps[source.step].tool}.{source.output} does not feed it")
        for path in slots:
            if path not in bound:
                problems.append(f"step {number} ({step.tool}) input {path}: required and not bound")
        problems.extend(f"step {number} ({step.tool}) input {p}: bound {n} times" for p, n in bound.items() if n > 1)
    return problems
