"""BFCL v3 multi-turn through our runtime (issue 8): task import, gold replay (in-process and sandboxed),
our checker vs the official one on gold and corrupted executions, bad input."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
pytest.importorskip("mpmath")

from envfactory.eval import bfcl
from envfactory.runtime import Environment, open_group
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import Task


@pytest.fixture(scope="module")
def entries() -> dict[str, list[bfcl.BfclEntry]]:
    return {category: bfcl.load_entries(category) for category in bfcl.CATEGORIES}


@pytest.fixture(scope="module")
def order() -> dict[str, tuple[str, list[str]]]:
    return bfcl.parameter_order()


@pytest.fixture(scope="module")
def tasks(entries: dict[str, list[bfcl.BfclEntry]], order: Any) -> dict[str, list[Task]]:
    return {category: [bfcl.to_task(e, order) for e in rows] for category, rows in entries.items()}


@pytest.fixture(scope="module")
def trusted() -> dict[str, Environment]:
    # In-process on purpose: these tests feed only benchmark data (gold calls and their corruptions).
    return bfcl.bfcl_environments(trusted=True)


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Environment]]:
    with SandboxPool(max_workers=8) as pool:
        yield bfcl.bfcl_environments(sandbox=pool, workdir=tmp_path_factory.mktemp("bfcl-envs"))


def test_both_categories_import_as_task_v1(tasks: dict[str, list[Task]], entries: Any) -> None:
    assert {c: len(rows) for c, rows in tasks.items()} == {"base": 200, "miss_func": 200}
    for category, rows in tasks.items():
        for entry, task in zip(entries[category], rows, strict=True):
            assert Task.model_validate(task.model_dump(mode="json")) == task  # id matches content
            assert task.tool_naming == "plain" and task.origin.source == "bfcl"
            assert task.origin.source_id == entry.id
            assert len(task.turns) == len(entry.ground_truth)
            assert all(t.user.kind == "scripted" for t in task.turns)
            assert sum(len(t.gold_calls) for t in task.turns) == sum(len(g) for g in entry.ground_truth)
    assert all(all(t.available_tools is None for t in task.turns) for task in tasks["base"])


def test_missing_functions_are_absent_until_the_turn_that_restores_them(tasks: Any, entries: Any) -> None:
    for entry, task in zip(entries["miss_func"], tasks["miss_func"], strict=True):
        assert entry.missed_function
        for turn_text, names in entry.missed_function.items():
            restored = int(turn_text)
            for index, turn in enumerate(task.turns):
                assert turn.available_tools is not None
                for name in names:
                    assert (name in turn.available_tools) == (index >= restored), (entry.id, index, name)
            # the turn that restores them has no user text, as in BFCL
            assert task.turns[restored].user.text == ""


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_every_gold_trajectory_replays_to_full_score(category: str, tasks: Any, trusted: Any) -> None:
    for task in tasks[category]:
        gold = bfcl.gold_turns(task)
        execution = bfcl.execute(task, trusted, gold)
        verdict = bfcl.check(task, execution, execution, gold)
        assert verdict.valid, (task.origin.source_id, verdict)
        assert bfcl.reward(verdict).total == 1.0
        # deterministic: a second replay gives the same results and state hashes
        again = bfcl.execute(task, trusted, gold)
        assert (again.results, again.state_hashes) == (execution.results, execution.state_hashes)


def test_sandboxed_replay_of_every_gold_trajectory_matches_in_process(
    tasks: Any, trusted: Any, sandboxed: Any
) -> None:
    for task in tasks["base"] + tasks["miss_func"]:
        gold = bfcl.gold_turns(task)
        inside = bfcl.execute(task, sandboxed, gold)
        here = bfcl.execute(task, trusted, gold)
        assert inside.results == here.results, task.origin.source_id
        assert inside.attributes == here.attributes, task.origin.source_id
        assert inside.state_hashes == here.state_hashes, task.origin.source_id
        assert bfcl.check(task, inside, here, gold).valid


def test_environments_are_sandboxed_unless_trusted_explicitly() -> None:
    with pytest.raises(ValueError, match="sandbox"):
        bfcl.bfcl_environments()


def test_official_checker_agrees_on_gold_and_every_corruption_class(entries: Any, trusted: Any) -> None:
    for category in bfcl.CATEGORIES:
        table = bfcl.agreement(entries[category], trusted)
        assert table["gold"].cases == 200 and table["gold"].ours_valid == 200
        for kind, row in table.items():
            assert row.agree == row.cases, (category, kind, row.disagreements)
            assert row.cases + row.not_applicable == 200
        # the corruptions bite: a dropped or altered call fails almost always, on both sides
        assert table["drop_call"].ours_valid <= 5
        assert table["alter_argument"].ours_valid <= 20
        assert table["reorder_calls"].cases - table["reorder_calls"].ours_valid > 20
        assert table["add_write"].cases - table["add_write"].ours_valid > 20


def test_official_checker_leaves_no_instances_in_its_module_globals(entries: Any) -> None:
    entry = entries["base"][0]
    assert bfcl.official_check(entry, entry.ground_truth)["valid"]
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    assert not [key for key in vars(utils) if key.startswith("envfactory_agreement_")]


def test_sessions_are_isolated_and_state_is_data(tasks: Any, trusted: Any) -> None:
    task = tasks["miss_func"][0]  # GorillaFileSystem + TwitterAPI
    envs = [trusted[ref.name] for ref in task.envs]
    with open_group(envs, task.initial_state, naming="plain") as one, \
            open_group(envs, task.initial_state, naming="plain") as two:
        before = two.hash()
        assert one.call("cd", {"folder": "document"}).ok
        assert one.call("mkdir", {"dir_name": "fresh"}).ok
        assert one.hash() != before and two.hash() == before
        listing = one.call("ls", {})
        assert "fresh" in str(listing.output)
        assert "fresh" not in str(two.call("ls", {}).output)
        state = one.sessions["bfcl_gorilla_file_system"].state_json()
        assert [c["name"] for c in state["calls"]] == ["cd", "mkdir", "ls"]
        assert isinstance(state["scenario"], str)


def test_a_held_out_tool_fails_like_an_undefined_name_and_changes_nothing(tasks: Any, trusted: Any) -> None:
    task = tasks["miss_func"][0]  # `sort` is held out until turn 3
    early = [[bfcl.Call("sort", {"file_name": "final_report.pdf"})], [], [], [], []]
    execution = bfcl.execute(task, trusted, early)
    assert execution.results[0] == ["Error during execution: name 'sort' is not defined"]
    assert execution.state_hashes == []


def test_backend_exceptions_are_results_and_bad_arguments_are_typed_errors(tasks: Any, trusted: Any) -> None:
    task = tasks["base"][0]
    envs = [trusted[ref.name] for ref in task.envs]
    with open_group(envs, task.initial_state, naming="plain") as group:
        missing = group.call("cat", {"file_name": "no-such-file"})
        assert missing.ok and "No such file" in str(missing.output)
        bad = group.call("cd", {"folder": 3})
        assert not bad.ok and bad.error is not None and bad.error.kind == "invalid_arguments"
        unknown = group.call("rm_rf_everything", {})
        assert unknown.error is not None and unknown.error.kind == "unknown_tool"


def test_call_strings_are_parsed_never_evaluated(order: Any) -> None:
    assert bfcl.parse_call("sort('a.txt')", order) == bfcl.Call("sort", {"file_name": "a.txt"})
    assert bfcl.parse_call("mv(source='a', destination='b')") == bfcl.Call("mv", {"source": "a", "destination": "b"})
    call = bfcl.Call("post_tweet", {"content": "hi", "tags": ["#a"], "mentions": []})
    assert bfcl.parse_call(bfcl.render_call(call)) == call
    for bad in ["__import__('os').system('true')", "cd(folder=open('x').read())", "cd(", "x.y()", "cd(**k)",
                "sort('a', 'b', 'c')"]:
        with pytest.raises(bfcl.MalformedCallError):
            bfcl.parse_call(bad, order)


def test_a_failed_verdict_becomes_a_zero_reward_with_its_reason() -> None:
    verdict = bfcl.Verdict(False, "multi_turn:instance_state_mismatch", 2, "x differs")
    reward = bfcl.reward(verdict)
    assert reward.total == 0.0
    component = reward.component("bfcl_multi_turn")
    assert component is not None and "instance_state_mismatch" in component.detail


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> Any:
        if name.startswith("bfcl"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(bfcl.importlib, "import_module", fake)
    with pytest.raises(bfcl.BenchmarkMissingError, match=r"pip install --no-deps nvidia-bfcl==26\.3 mpmath"):
        bfcl.load_entries("base")


def test_generated_environment_directories_hold_no_benchmark_code(tmp_path: Path) -> None:
    with SandboxPool(max_workers=1) as pool:
        bfcl.bfcl_environments(sandbox=pool, workdir=tmp_path, backends=["MathAPI"])
    files = sorted(p.name for p in (tmp_path / "bfcl_math_api").iterdir())
    assert files == ["env.json", "toolkit.py"]
    assert "class MathAPI" not in (tmp_path / "bfcl_math_api" / "toolkit.py").read_text()


def test_malformed_model_output_is_a_failure_with_its_reason(entries: Any, tasks: Any, trusted: Any) -> None:
    entry, task = entries["base"][0], tasks["base"][0]
    good = bfcl.score(task, trusted, entry.ground_truth)
    assert good.valid
    broken = [list(turn) for turn in entry.ground_truth]
    broken[1] = ["ls(a=)"] + broken[1]
    verdict = bfcl.score(task, trusted, broken)
    assert not verdict.valid and verdict.error_type == "multi_turn:malformed_output" and verdict.turn == 1
    assert "ls(a=)" in verdict.message
    short = bfcl.score(task, trusted, entry.ground_truth[:1])
    assert not short.valid and "turns" in short.message
    injected = [["__import__('os').system('touch /tmp/pwned')"]] + [list(t) for t in entry.ground_truth[1:]]
    assert bfcl.score(task, trusted, injected).error_type == "multi_turn:malformed_output"
