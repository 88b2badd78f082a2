"""Splits with leakage control and environment hold-out; duplicate removal and diversity statistics."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.export.conftest import load_tasks

from envfactory.export import (
    assign_splits,
    deduplicate,
    diversity,
    heldout_environments,
    heldout_unseen,
    leakage,
)
from envfactory.runtime import load_env
from envfactory.spec import ChainProvenance, EnvRef, GoldCall, ScriptedUser, Task, TaskQueries, Turn
from envfactory.spec.dataset import HygieneConfig, SplitConfig

ENV_NAMES = ("shop", "tracker", "calendar", "books", "vault")


def _task(envs: tuple[str, ...], chain: int, state: int, query: str, split_key: str = "") -> Task:
    tools = [f"{envs[0]}__op{chain}", f"{envs[-1]}__op{chain + 1}"]
    return Task.create(
        envs=[EnvRef(name=e, version="1") for e in envs],
        initial_state={e: {"collections": {"k": {"v": state}}} for e in envs},
        turns=[Turn(user=ScriptedUser(text=query), gold_calls=[GoldCall(tool=t, arguments={"n": state}) for t in tools])],
        queries=TaskQueries(explicit=query), split_key=split_key,
        provenance=ChainProvenance(chain_id=f"c{chain}", tools=tools),
    )


task_specs = st.lists(
    st.tuples(
        st.lists(st.sampled_from(ENV_NAMES), min_size=1, max_size=2, unique=True).map(tuple),
        st.integers(0, 6), st.integers(0, 6), st.integers(0, 10_000), st.sampled_from(["", "k1", "k2"]),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(specs=task_specs, seed=st.integers(0, 1000), heldout_fraction=st.sampled_from([0.0, 0.2, 0.4]))
def test_no_task_chain_template_or_state_is_shared_across_splits(specs, seed, heldout_fraction) -> None:  # type: ignore[no-untyped-def]
    tasks = {t.id: t for t in (_task(e, c, s, f"query {q}", k) for e, c, s, q, k in specs)}.values()
    config = SplitConfig(seed=seed, validation_fraction=0.2, test_fraction=0.2, heldout_env_fraction=heldout_fraction)
    assignments = assign_splits(list(tasks), config)
    assert leakage(assignments) == []
    assert heldout_unseen(assignments, heldout_environments(list(tasks), config)) == []
    by_key: dict[str, set[str]] = {}
    for task, a in zip(tasks, assignments, strict=True):
        if task.split_key:
            by_key.setdefault(task.split_key, set()).add(a.split)
    assert all(len(splits) == 1 for splits in by_key.values())


def test_the_leakage_check_itself_finds_a_shared_template_and_state() -> None:
    tasks = [_task(("shop",), 1, 1, "a"), _task(("shop",), 2, 2, "b")]
    assignments = assign_splits(tasks, SplitConfig(seed=1))
    forged = [assignments[0], assignments[1].model_copy(update={
        "split": "test" if assignments[0].split != "test" else "train",
        "chain_template": assignments[0].chain_template, "state_keys": assignments[0].state_keys})]
    problems = leakage(forged)
    assert any(p.startswith("chain template") for p in problems)
    assert any(p.startswith("environment state") for p in problems)


def test_splits_are_seeded_deterministic_and_fill_every_split() -> None:
    tasks = [_task(("shop",), i, i, f"query {i}") for i in range(40)]
    config = SplitConfig(seed=5, validation_fraction=0.1, test_fraction=0.2)
    first = assign_splits(tasks, config)
    assert first == assign_splits(list(tasks), config)
    counts = {s: sum(a.split == s for a in first) for s in ("train", "validation", "test")}
    assert counts == {"train": 28, "validation": 4, "test": 8}
    assert assign_splits(tasks, config.model_copy(update={"seed": 6})) != first


def test_named_heldout_environment_goes_only_to_heldout_with_every_task_touching_it() -> None:
    tasks = [_task(("shop",), 1, 1, "a"), _task(("shop", "vault"), 2, 2, "b"), _task(("books",), 3, 3, "c")]
    assignments = assign_splits(tasks, SplitConfig(heldout_envs=["vault"]))
    assert [a.split for a in assignments][1] == "heldout"
    assert all(a.split != "heldout" for a in assignments if "vault" not in a.envs)


def test_exact_and_trace_duplicates_are_removed_naming_the_kept_task() -> None:
    base = _task(("shop",), 1, 1, "Please add 30 to the wallet of customer cus_0002.")
    exact = _task(("shop",), 1, 2, "please ADD 30 to the wallet of customer cus_0002")
    same_trace = Task.create(**base.model_copy(update={"queries": TaskQueries(explicit="something else entirely")})
                             .model_dump(exclude={"id"}))
    result = deduplicate([base, exact, same_trace], HygieneConfig())
    reasons = {d.item: (d.reason, d.detail) for d in result.drops}
    first, second = sorted([base.id, exact.id])
    assert reasons[second] == ("exact_duplicate_query", f"same query as {first}")
    assert reasons[same_trace.id][0] == "duplicate_gold_trace" and base.id in reasons[same_trace.id][1]
    assert [t.id for t in result.kept] == [first]


def test_near_duplicates_are_removed_only_within_a_chain_template() -> None:
    base = _task(("shop",), 1, 1, "Please add 30 to the wallet of customer cus_0002.")
    near = _task(("shop",), 1, 3, "Please add 30 to the wallet of customer cus_0002 today if you can.")
    other_chain = _task(("shop",), 4, 4, "Please add 30 to the wallet of customer cus_0002 today if you could.")
    far = _task(("shop",), 1, 5, "Ship order ord_00001 with the express carrier.")
    result = deduplicate([base, near, other_chain, far], HygieneConfig(near_duplicate_threshold=0.6))
    assert [d.reason for d in result.drops] == ["near_duplicate_query"]
    assert "Jaccard 0.67" in result.drops[0].detail
    assert {t.id for t in result.kept} >= {other_chain.id, far.id}
    assert deduplicate([base, near], HygieneConfig(near_duplicate_threshold=0.9)).drops == []


def test_diversity_counts_the_fixture_tasks() -> None:
    tasks = load_tasks()
    envs = {name: load_env(name).spec for name in ("shop", "tracker")}
    stats = diversity(tasks, envs)
    assert stats.tasks == len(tasks)
    assert stats.environments == {"shop": 6, "tracker": 5}
    assert stats.domains == {"commerce": 6, "office": 5}
    assert stats.turn_counts == {"1": 10, "2": 1}
    assert stats.tools["shop__top_up_wallet"] == 2 and stats.distinct_tools == len(stats.tools)
    assert sum(stats.chain_shapes.values()) == len(tasks)


def test_fixture_states_differ_so_splits_are_by_state_not_by_environment() -> None:
    tasks = load_tasks()
    states = {copy.deepcopy(str(t.initial_state)) for t in tasks}
    assert len(states) == len(tasks)


def test_near_duplicate_gold_traces_are_removed_within_a_chain_template() -> None:
    def with_args(task: Task, extra: dict[str, object]) -> Task:
        turn = task.turns[0]
        calls = [c.model_copy(update={"arguments": {**c.arguments, **extra}}) for c in turn.gold_calls]
        return Task.create(**task.model_copy(update={"turns": [turn.model_copy(update={"gold_calls": calls})]})
                           .model_dump(exclude={"id"}))

    shared = {"a": 1, "b": 2, "c": 3, "d": 4}
    first = with_args(_task(("shop",), 1, 1, "Book the quarterly review with the finance team."), shared)
    second = with_args(_task(("shop",), 1, 2, "Set up a meeting about the budget for next spring."), shared)
    result = deduplicate([first, second], HygieneConfig(near_duplicate_trace_threshold=0.6))
    assert [d.reason for d in result.drops] == ["near_duplicate_trace"]
    assert "gold-trace Jaccard 0.67" in result.drops[0].detail
    assert deduplicate([first, second], HygieneConfig()).drops == []  # 0.67 < the default 0.95
