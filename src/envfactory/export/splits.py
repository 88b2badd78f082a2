"""Seeded train / validation / test / heldout splits with leakage control.

Contract:
- Leakage keys of a task: its chain template (the tool sequence of its gold calls, or its chain
  provenance's tools), each environment's initial state (`<env>:<hash of the state>`), its `split_key`
  when set, and its own id. Tasks sharing any key form one leakage group (union-find), and a group is
  never divided, so no task, chain template or environment state appears in two splits.
- Environment hold-out: the environments named in `heldout_envs` plus a seeded `heldout_env_fraction` of
  the others. A group touching a held-out environment goes to `heldout`; so every environment of the
  `heldout` split that is held out appears in no other split.
- The remaining groups are shuffled with `random.Random(seed)` (never the global RNG) and each goes to
  the split furthest below its target share of tasks. The same tasks and config give the same
  assignment in every process.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from envfactory.spec import Task, content_hash
from envfactory.spec.dataset import SplitAssignment, SplitConfig, SplitName


def chain_template(task: Task) -> str:
    """The task's chain template: its chain's tools when recorded, else its gold calls' tool sequence."""
    tools = list(task.provenance.tools) if task.provenance and task.provenance.tools else [
        call.tool for call in task.gold_calls()
    ]
    return ">".join(tools) if tools else "(no calls)"


def state_keys(task: Task) -> list[str]:
    """One key per environment: its name and the hash of its initial state."""
    return sorted(f"{ref.name}:{content_hash(task.initial_state.get(ref.name))[:16]}" for ref in task.envs)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # deterministic root: the smaller key


def heldout_environments(tasks: Sequence[Task], config: SplitConfig) -> list[str]:
    """The held-out environments: the named ones plus a seeded fraction of the rest."""
    names = sorted({ref.name for task in tasks for ref in task.envs})
    chosen = set(config.heldout_envs) & set(names)
    rest = [n for n in names if n not in chosen]
    count = round(config.heldout_env_fraction * len(names))
    if count:
        chosen |= set(random.Random(config.seed).sample(rest, min(count, len(rest))))
    return sorted(chosen)


def assign_splits(tasks: Sequence[Task], config: SplitConfig) -> list[SplitAssignment]:
    """Assign every task to a split (see the module contract); the result follows the tasks' order."""
    links = _UnionFind()
    for task in tasks:
        keys = [f"task:{task.id}", f"chain:{chain_template(task)}", *(f"state:{k}" for k in state_keys(task))]
        if task.split_key:
            keys.append(f"split:{task.split_key}")
        for key in keys[1:]:
            links.union(keys[0], key)
    members: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        members[links.find(f"task:{task.id}")].append(task)
    heldout = set(heldout_environments(tasks, config))
    split_of: dict[str, SplitName] = {}
    seen_groups = []
    for root, group in members.items():
        if any(ref.name in heldout for task in group for ref in task.envs):
            split_of[root] = "heldout"
        else:
            seen_groups.append(root)
    seen_groups.sort()
    random.Random(config.seed).shuffle(seen_groups)
    total = sum(len(members[root]) for root in seen_groups)
    targets: dict[SplitName, float] = {
        "train": (1.0 - config.validation_fraction - config.test_fraction) * total,
        "validation": config.validation_fraction * total,
        "test": config.test_fraction * total,
    }
    filled: dict[SplitName, int] = {"train": 0, "validation": 0, "test": 0}
    for root in seen_groups:
        # The split with the largest unmet share; ties go in the order train, validation, test.
        split = max(targets, key=lambda s: (targets[s] - filled[s]) / targets[s] if targets[s] else -1.0)
        split_of[root] = split
        filled[split] += len(members[root])
    return [
        SplitAssignment(
            task_id=task.id, split=split_of[links.find(f"task:{task.id}")],
            group=content_hash(links.find(f"task:{task.id}"))[:16], envs=[ref.name for ref in task.envs],
            chain_template=chain_template(task), state_keys=state_keys(task),
        )
        for task in tasks
    ]


def leakage(assignments: Sequence[SplitAssignment]) -> list[str]:
    """Every task id, chain template or environment state found in more than one split (empty = none)."""
    where: dict[str, set[str]] = defaultdict(set)
    for a in assignments:
        where[f"task {a.task_id}"].add(a.split)
        where[f"chain template {a.chain_template}"].add(a.split)
        for key in a.state_keys:
            where[f"environment state {key}"].add(a.split)
    problems = [f"{key} in {sorted(splits)}" for key, splits in sorted(where.items()) if len(splits) > 1]
    return problems


def heldout_unseen(assignments: Sequence[SplitAssignment], heldout: Sequence[str]) -> list[str]:
    """Held-out environments that appear in a non-heldout split (empty = the hold-out holds)."""
    seen = {env for a in assignments if a.split != "heldout" for env in a.envs}
    return sorted(set(heldout) & seen)
