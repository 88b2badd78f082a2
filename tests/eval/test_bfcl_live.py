"""Fast gold replay without a changed verdict (issue 18, deliverable 3): the in-process live environments
give exactly what the toolkits' python environments give, state hashes are computed lazily only where
they cost, calls stay atomic, the live-instance memo is exact, and backend values become the same JSON."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
pytest.importorskip("mpmath")

from envfactory.eval import bfcl, bfcl_live
from envfactory.eval import bfcl_toolkit as kit
from envfactory.runtime import Environment, open_group
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.runtime.toolkit import python_environment
from envfactory.spec import Task


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    order = bfcl.parameter_order()
    return [task for category in bfcl.CATEGORIES for task in bfcl.load_tasks(category, order).tasks]


def _python_envs(official_compat: bool) -> dict[str, Environment]:
    suffix = "CompatToolkit" if official_compat else "Toolkit"
    return {bfcl.env_name(b): python_environment(getattr(kit, f"{b}{suffix}"), bfcl._meta(b)) for b in kit.BACKENDS}


@pytest.mark.parametrize("official_compat", [False, True])
def test_live_environments_replay_every_gold_trajectory_exactly_as_the_python_environments(
    tasks: list[Task], official_compat: bool
) -> None:
    python = _python_envs(official_compat)
    live = bfcl.bfcl_environments(trusted=True, official_compat=official_compat)
    assert {name: env.spec.content_hash for name, env in live.items()} == {
        name: env.spec.content_hash for name, env in python.items()}
    assert all(isinstance(env.backend, bfcl_live.LiveBfclBackend) for env in live.values())
    for task in tasks:
        gold = bfcl.gold_turns(task)
        want = bfcl.execute(task, python, gold, official_compat=official_compat, track_changes=True)
        got = bfcl.execute(task, live, gold, official_compat=official_compat, track_changes=True)
        assert (got.results, got.attributes, got.changed) == (want.results, want.attributes, want.changed), task.id
        assert got.state_hashes == want.state_hashes, task.id


def test_in_process_hashes_are_computed_when_first_read_and_equal_eager_ones(tasks: list[Task]) -> None:
    envs = bfcl.bfcl_environments(trusted=True)
    task = tasks[0]
    gold = bfcl.gold_turns(task)
    lazy = bfcl.execute(task, envs, gold)
    assert lazy.hashes is None  # nothing hashed while replaying
    eager = bfcl.execute(task, envs, gold, hash_states=True)
    assert eager.hashes is not None and len(eager.hashes) == sum(map(len, gold))
    assert lazy.state_hashes == eager.state_hashes and lazy.hashes == eager.hashes


def test_python_environments_record_hashes_as_the_calls_run(tasks: list[Task]) -> None:
    task = tasks[0]
    execution = bfcl.execute(task, _python_envs(False), bfcl.gold_turns(task))
    assert execution.hashes is not None and len(execution.hashes) == sum(len(t.gold_calls) for t in task.turns)


def test_a_call_never_committed_leaves_a_live_state_as_it_was(tasks: list[Task]) -> None:
    task = tasks[0]  # GorillaFileSystem first
    env = bfcl.bfcl_environments(trusted=True, backends=["GorillaFileSystem"])["bfcl_gorilla_file_system"]
    handle = env.backend.load_state(task.initial_state["bfcl_gorilla_file_system"])
    before, digest = handle.to_json(), handle.state_hash()
    ctx = CallContext(0, ClockConfig())
    prepared = env.backend.execute(handle, "mkdir", {"dir_name": "fresh"}, ctx)
    assert prepared.commit is not None  # not called: the session refused the result
    assert handle.to_json() == before and handle.state_hash() == digest
    listing = env.backend.execute(handle, "ls", {}, ctx).output  # rebuilt from scenario and calls
    assert "fresh" not in listing
    fork = handle.fork()
    mkdir = env.backend.execute(handle, "mkdir", {"dir_name": "fresh"}, ctx)
    assert mkdir.commit is not None
    mkdir.commit()
    assert "fresh" in env.backend.execute(handle, "ls", {}, ctx).output
    assert "fresh" not in env.backend.execute(fork, "ls", {}, ctx).output


def test_the_live_instance_memo_tells_one_from_one_point_oh_and_true() -> None:
    states = [kit.BfclState(backend="MathAPI", calls=[kit.BfclCall(name="absolute_value", arguments={"number": value})])
              for value in (1, 1.0, True)]
    keys = {kit._history(state) for state in states}
    assert len(keys) == 3


def test_an_uncommitted_toolkit_call_does_not_leave_its_instance_for_the_old_state(tasks: list[Task]) -> None:
    env = _python_envs(False)["bfcl_gorilla_file_system"]
    task = tasks[0]
    with open_group([env], {env.name: task.initial_state[env.name]}, naming="plain") as group:
        session = group.sessions[env.name]
        handle = session._state  # the test drives the backend below the session, as a refused result would
        env.backend.execute(handle, "mkdir", {"dir_name": "fresh"}, CallContext(0, ClockConfig()))  # never committed
        assert "fresh" not in str(group.call("ls", {}).output)


class _Node:
    def __init__(self, name: str, parent: Any = None) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, Any] = {}
        self._hidden = "never shown"


def test_backend_values_become_json_as_before() -> None:
    root = _Node("root")
    child = _Node("child", root)
    root.children["child"] = child
    shared = {"a": 1}
    value = {"tree": root, "nan": math.nan, "inf": -math.inf, "ids": {7: "seven"}, "tags": {"b", "a"},
             "pair": (1, 2.5), "twice": [shared, shared], "flat": {"x": 1, "y": 2.0, "z": None, "w": True}}
    assert kit.to_json(value) == {
        "tree": {"name": "root", "parent": None,
                 "children": {"child": {"name": "child", "parent": {"$ref": "ancestor"}, "children": {}}}},
        "nan": "nan", "inf": "-inf", "ids": {"7": "seven"}, "tags": ["a", "b"], "pair": [1, 2.5],
        "twice": [{"a": 1}, {"a": 1}], "flat": {"x": 1, "y": 2.0, "z": None, "w": True},
    }
    flat = {"x": 1.5}
    assert kit.to_json(flat) is not flat  # a copy, never the backend's own object
    assert kit.to_json({"x": [float("nan")]}) == {"x": ["nan"]}


class _Tag(str):
    """A str subclass: orjson would write it as text; the walk keeps the value itself."""


class _Plain:
    def __init__(self) -> None:
        self.count = 3
        self.scores = {"a": 1.5, "b": [1, 2]}
        self.token = None
        self._private = object()


def test_values_taken_by_the_orjson_round_trip_convert_as_the_walk_does() -> None:
    for value in ({"a": [1, 2.5, True, "x", {"b": (3, 4)}]}, [{"k": "v"}, [1, [2, [3]]]],
                  {"n": None, "inf": [math.inf]}, {"tag": _Tag("t")}, {"big": 2**70}, {"obj": _Plain()},
                  {"when": __import__("datetime").date(2024, 1, 2)}):
        assert kit.to_json(value) == kit._to_json(value, set()), value
    nested = {"a": {"b": [1]}}
    converted = kit.to_json(nested)
    assert converted == nested and converted["a"] is not nested["a"] and converted["a"]["b"] is not nested["a"]["b"]
    instance = _Plain()
    assert kit.public_attributes(instance) == {"count": 3, "scores": {"a": 1.5, "b": [1, 2]}, "token": None}
    instance.token = "t"
    attributes = kit.public_attributes(instance)
    assert attributes == {"count": 3, "scores": {"a": 1.5, "b": [1, 2]}, "token": "t"}
    assert attributes["scores"] is not instance.scores
