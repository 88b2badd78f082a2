"""Dataset hygiene: exact and near-duplicate removal, and diversity statistics.

Contract:
- `query_text(task)` is the text a user says: the refined query, else the explicit one, else the
  scripted user turns (or the simulated user's instructions) joined.
- `deduplicate(tasks, config)` walks tasks in id order and keeps the first of each duplicate set:
  `exact_duplicate_query` (same environments and same normalised query: case, punctuation and spacing
  ignored), `duplicate_gold_trace` (same gold calls with the same arguments from the same initial state),
  `near_duplicate_query` (Jaccard similarity of word shingles >= the threshold, among tasks with the same
  chain template, so near-identical wording for different work is kept), `near_duplicate_trace` (the same
  chain template, and the Jaccard similarity of the gold calls' flattened (call, argument path, value)
  items >= `near_duplicate_trace_threshold`). Every drop names the task kept.
  Near-duplicate search is quadratic within a chain template; chain templates keep those blocks small.
- `diversity(tasks, envs)` counts tools, environments, domains, chain shapes (`<calls>c-<envs>e`),
  distinct chain templates and turn counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envfactory.export.splits import chain_template
from envfactory.spec import EnvSpec, ScriptedUser, SimulatedUser, Task, canonical_json, content_hash
from envfactory.spec.dataset import DiversityStats, ExportDrop, HygieneConfig

_WORD = re.compile(r"[a-z0-9]+")


def query_text(task: Task) -> str:
    """The task's request in words (see the module contract)."""
    if task.queries.refined or task.queries.explicit:
        return task.queries.refined or task.queries.explicit
    parts = []
    for turn in task.turns:
        if isinstance(turn.user, ScriptedUser):
            parts.append(turn.user.text)
        elif isinstance(turn.user, SimulatedUser):
            parts.append(turn.user.instructions)
    return "\n".join(parts)


def normalise(text: str) -> str:
    """Lower-case words of `text` joined by single spaces (punctuation dropped), for near-duplicate checks."""
    return " ".join(_WORD.findall(text.lower()))


def shingles(text: str, size: int) -> frozenset[str]:
    """The set of `size`-word windows of the normalised text (the whole text when it is shorter; empty for
    no words)."""
    words = normalise(text).split()
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two shingle sets (1.0 when both are empty)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True, slots=True)
class HygieneResult:
    """The tasks that pass the hygiene checks, in order, and a drop record for each one that does not."""
    kept: list[Task]
    drops: list[ExportDrop]


def trace_items(task: Task) -> frozenset[str]:
    """The gold trace as a set of `<call index>:<tool>:<argument path>=<value>` items (values as JSON)."""
    items: set[str] = set()

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}/{key}", inner)
        elif isinstance(value, list) and value:
            for index, inner in enumerate(value):
                walk(f"{prefix}/{index}", inner)
        else:
            items.add(f"{prefix}={canonical_json(value).decode()}")

    for index, call in enumerate(task.gold_calls()):
        walk(f"{index}:{call.tool}", call.arguments)
    return frozenset(items)


def _trace_key(task: Task) -> str:
    calls = [(call.tool, call.arguments) for call in task.gold_calls()]
    return content_hash({"calls": calls, "state": task.initial_state})


def deduplicate(tasks: Sequence[Task], config: HygieneConfig) -> HygieneResult:
    """Remove exact and near duplicates (see the module contract)."""
    kept: list[Task] = []
    drops: list[ExportDrop] = []
    by_query: dict[str, str] = {}
    by_trace: dict[str, str] = {}
    blocks: dict[str, list[tuple[str, frozenset[str], frozenset[str]]]] = {}
    for task in sorted(tasks, key=lambda t: t.id):
        text = query_text(task)
        query_key = content_hash({"envs": sorted(r.name for r in task.envs), "query": normalise(text)})
        trace_key = _trace_key(task)
        if query_key in by_query:
            drops.append(ExportDrop(item=task.id, stage="hygiene", reason="exact_duplicate_query",
                                    detail=f"same query as {by_query[query_key]}"))
            continue
        if trace_key in by_trace:
            drops.append(ExportDrop(item=task.id, stage="hygiene", reason="duplicate_gold_trace",
                                    detail=f"same gold calls and initial state as {by_trace[trace_key]}"))
            continue
        words, trace = shingles(text, config.shingle_words), trace_items(task)
        block = blocks.setdefault(chain_template(task), [])
        twin = _near_twin(words, trace, block, config)
        if twin is not None:
            drops.append(ExportDrop(item=task.id, stage="hygiene", reason=twin[0], detail=twin[1]))
            continue
        by_query[query_key] = task.id
        by_trace[trace_key] = task.id
        block.append((task.id, words, trace))
        kept.append(task)
    order = {task.id: index for index, task in enumerate(tasks)}
    kept.sort(key=lambda t: order[t.id])
    return HygieneResult(kept=kept, drops=drops)


def _near_twin(words: frozenset[str], trace: frozenset[str], block: list[tuple[str, frozenset[str], frozenset[str]]],
               config: HygieneConfig) -> tuple[str, str] | None:
    """(reason, detail) when a kept task of the same chain template is a near duplicate, else None."""
    for other, their_words, their_trace in block:
        if (score := jaccard(words, their_words)) >= config.near_duplicate_threshold:
            return "near_duplicate_query", f"Jaccard {score:.2f} with {other}"
        if (score := jaccard(trace, their_trace)) >= config.near_duplicate_trace_threshold:
            return "near_duplicate_trace", f"gold-trace Jaccard {score:.2f} with {other}"
    return None


def diversity(tasks: Sequence[Task], envs: Mapping[str, EnvSpec]) -> DiversityStats:
    """Counts over `tasks` (see the module contract); keys are sorted so the stats hash stably."""
    tools: Counter[str] = Counter()
    environments: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    turns: Counter[str] = Counter()
    templates = set()
    for task in tasks:
        calls = task.gold_calls()
        tools.update(call.tool for call in calls)
        environments.update(ref.name for ref in task.envs)
        domains.update({envs[ref.name].meta.domain or "unknown" for ref in task.envs if ref.name in envs})
        shapes[f"{len(calls)}c-{len(task.envs)}e"] += 1
        turns[str(len(task.turns))] += 1
        templates.add(chain_template(task))

    def ordered(counter: Counter[str]) -> dict[str, int]:
        return dict(sorted(counter.items()))

    return DiversityStats(
        tasks=len(tasks), tools=ordered(tools), environments=ordered(environments), domains=ordered(domains),
        chain_shapes=ordered(shapes), chain_templates=len(templates), turn_counts=ordered(turns),
        distinct_tools=len(tools),
    )
