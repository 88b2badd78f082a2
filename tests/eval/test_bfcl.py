"""BFCL v3 multi-turn through our runtime (issues 8 and 18): all five categories' task import (long-context
flag, missing functions and parameters, unparsable composite gold reported), gold replay (in-process and
sandboxed), our checker vs the official one on gold and corrupted executions, official-compat behaviour,
bad input."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
pytest.importorskip("mpmath")

from envfactory.eval import bfcl, bfcl_agreement, bfcl_data
from envfactory.runtime import Environment, open_group
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import Task


@pytest.fixture(scope="module")
def order() -> dict[str, tuple[str, list[str]]]:
    return bfcl.parameter_order()


@pytest.fixture(scope="module")
def loaded(order: Any) -> dict[str, bfcl.LoadedCategory]:
    return {category: bfcl.load_tasks(category, order) for category in bfcl.CATEGORIES}


@pytest.fixture(scope="module")
def entries(loaded: dict[str, bfcl.LoadedCategory]) -> dict[str, list[bfcl.BfclEntry]]:
    return {category: rows.entries for category, rows in loaded.items()}


@pytest.fixture(scope="module")
def tasks(loaded: dict[str, bfcl.LoadedCategory]) -> dict[str, list[Task]]:
    return {category: rows.tasks for category, rows in loaded.items()}


@pytest.fixture(scope="module")
def trusted() -> dict[str, Environment]:
    # In-process on purpose: these tests feed only benchmark data (gold calls and their corruptions).
    return bfcl.bfcl_environments(trusted=True)


@pytest.fixture(scope="module")
def compat() -> dict[str, Environment]:
    # In-process on purpose, as above: the official-compat environments (scoring replays only).
    return bfcl.bfcl_environments(trusted=True, official_compat=True)


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Environment]]:
    with SandboxPool(max_workers=8) as pool:
        yield bfcl.bfcl_environments(sandbox=pool, workdir=tmp_path_factory.mktemp("bfcl-envs"))


def test_every_category_imports_as_task_v1(tasks: dict[str, list[Task]], entries: Any) -> None:
    assert {c: len(rows) for c, rows in tasks.items()} == {
        "base": 200, "miss_func": 200, "miss_param": 200, "long_context": 200, "composite": 184}
    for category, rows in tasks.items():
        for entry, task in zip(entries[category], rows, strict=True):
            assert Task.model_validate(task.model_dump(mode="json")) == task  # id matches content
            assert task.tool_naming == "plain" and task.origin.source == "bfcl"
            assert task.origin.source_id == entry.id
            assert len(task.turns) == len(entry.ground_truth)
            assert all(t.user.kind == "scripted" for t in task.turns)
            assert sum(len(t.gold_calls) for t in task.turns) == sum(len(g) for g in entry.ground_truth)
    assert all(all(t.available_tools is None for t in task.turns) for task in tasks["base"])


@pytest.mark.parametrize("category", ["miss_func", "composite"])
def test_missing_functions_are_absent_until_the_turn_that_restores_them(
    category: str, tasks: Any, entries: Any
) -> None:
    for entry, task in zip(entries[category], tasks[category], strict=True):
        if category == "miss_func":
            assert entry.missed_function
        if not entry.missed_function:
            assert all(turn.available_tools is None for turn in task.turns)
        for turn_text, names in entry.missed_function.items():
            restored = int(turn_text)
            for index, turn in enumerate(task.turns):
                assert turn.available_tools is not None
                for name in names:
                    assert (name in turn.available_tools) == (index >= restored), (entry.id, index, name)
            # the turn that restores them has no user text, as in BFCL
            assert task.turns[restored].user.text == ""


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_every_gold_trajectory_replays_to_full_score(category: str, tasks: Any, trusted: Any, compat: Any) -> None:
    for task in tasks[category]:
        gold = bfcl.gold_turns(task)
        for envs, official_compat in ((trusted, False), (compat, True)):
            execution = bfcl.execute(task, envs, gold, official_compat=official_compat)
            verdict = bfcl.check(task, execution, execution, gold)
            assert verdict.valid, (task.origin.source_id, verdict)
            assert bfcl.reward(verdict).total == 1.0
            # deterministic: a second replay gives the same results and state hashes
            again = bfcl.execute(task, envs, gold, official_compat=official_compat)
            assert (again.results, again.state_hashes) == (execution.results, execution.state_hashes)


def test_sandboxed_replay_of_every_gold_trajectory_matches_in_process(
    tasks: Any, trusted: Any, sandboxed: Any
) -> None:
    for category in bfcl.CATEGORIES:
        for task in tasks[category]:
            gold = bfcl.gold_turns(task)
            inside = bfcl.execute(task, sandboxed, gold)
            here = bfcl.execute(task, trusted, gold)
            assert inside.results == here.results, task.origin.source_id
            assert inside.attributes == here.attributes, task.origin.source_id
            assert inside.state_hashes == here.state_hashes, task.origin.source_id
            assert bfcl.check(task, inside, here, gold).valid


def test_a_batched_replay_gives_each_task_what_its_own_replay_gives(
    tasks: Any, trusted: Any, sandboxed: Any, tmp_path: Path
) -> None:
    """`execute_all` opens and plans a window of tasks before running any (sandboxed: the window's loads and
    planned calls reach each worker in one write); every result, attribute list and state hash is the per-task
    replay's, strict and official-compat, sandboxed and in-process, across window boundaries."""
    runs = [(task, bfcl.gold_turns(task)) for category in bfcl.CATEGORIES for task in tasks[category][::9]]
    with SandboxPool(max_workers=8) as pool:
        boxed_compat = bfcl.bfcl_environments(sandbox=pool, workdir=tmp_path, official_compat=True)
        for envs, compat in ((sandboxed, False), (trusted, False), (boxed_compat, True)):
            batched = bfcl.execute_all(runs, envs, official_compat=compat, window=7)
            for (task, gold), got in zip(runs, batched, strict=True):
                want = bfcl.execute(task, envs, gold, official_compat=compat)
                assert (got.results, got.attributes) == (want.results, want.attributes), task.id
                assert got.state_hashes == want.state_hashes, task.id


def test_environments_are_sandboxed_unless_trusted_explicitly() -> None:
    with pytest.raises(ValueError, match="sandbox"):
        bfcl.bfcl_environments()
    with pytest.raises(ValueError, match="sandbox"):
        bfcl.bfcl_environments(official_compat=True)


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_official_checker_agrees_on_gold_and_every_corruption_class(
    category: str, loaded: Any, compat: Any
) -> None:
    rows = loaded[category]
    table = bfcl_agreement.agreement(rows, compat)
    expressible = 184 if category == "composite" else 200
    assert table["gold"].cases == expressible and table["gold"].ours_valid == expressible
    for kind, row in table.items():
        assert row.agree == row.cases, (category, kind, row.disagreements)
        assert row.cases + row.not_applicable == expressible
        assert row.skipped == 200 - expressible
    # the corruptions bite: a dropped or altered call fails almost always, on both sides
    assert table["drop_call"].ours_valid <= 5
    assert table["alter_argument"].ours_valid <= 45
    assert table["reorder_calls"].cases - table["reorder_calls"].ours_valid > 20
    assert table["add_write"].cases - table["add_write"].ours_valid > 20
    # a held-out function called early has a place exactly where functions are held out
    assert table["stringify_number"].cases > 100
    held_out = sum(1 for entry in rows.entries if entry.missed_function)
    assert table["held_out_early"].cases + 2 >= held_out and (held_out == 0) == (table["held_out_early"].cases == 0)


def test_without_official_compat_verdicts_differ_where_the_runtime_is_stricter(
    loaded: Any, trusted: Any
) -> None:
    rows = loaded["miss_func"]
    strict = bfcl_agreement.agreement(rows, trusted, ["held_out_early", "stringify_number"], official_compat=False)
    row = strict["held_out_early"]
    # BFCL runs the call (it changes state or adds a result); our strict runtime refuses it.
    assert row.cases > 150 and row.agree < row.cases and row.disagreements
    # a number passed as a string: BFCL's backend sometimes accepts it, our strict schema never does
    row = strict["stringify_number"]
    assert row.ours_valid < row.official_valid and row.agree < row.cases


def test_official_checker_leaves_no_instances_in_its_module_globals(entries: Any) -> None:
    entry = entries["base"][0]
    assert bfcl_agreement.official_check(entry, entry.ground_truth)["valid"]
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

    monkeypatch.setattr(importlib, "import_module", fake)
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


def test_long_context_scenarios_load_exactly_where_bfcl_loads_them(entries: Any, tasks: Any) -> None:
    for category in bfcl.CATEGORIES:
        expected = category in ("long_context", "composite")
        for entry, task in zip(entries[category], tasks[category], strict=True):
            assert entry.long_context is expected
            assert all(state["long_context"] is expected for state in task.initial_state.values()), entry.id
    # the same scenario loads bigger: base_0 and long_context_0 share their initial config
    base, long = tasks["base"][0], tasks["long_context"][0]
    assert entries["base"][0].initial_config == entries["long_context"][0].initial_config
    fs = "bfcl_gorilla_file_system"
    assert len(str(long.initial_state[fs]["attributes"])) > len(str(base.initial_state[fs]["attributes"]))


def test_missing_parameter_turns_have_no_gold_and_are_executed_but_not_checked(
    entries: Any, tasks: Any, trusted: Any
) -> None:
    entry, task = entries["miss_param"][0], tasks["miss_param"][0]
    empty = [index for index, gold in enumerate(entry.ground_truth) if not gold]
    assert empty == [3] and task.turns[3].gold_calls == [] and "one of the file" in task.turns[3].user.text
    gold = bfcl.gold_turns(task)
    reference = bfcl.execute(task, trusted, gold)
    # calling nothing in the turn that lacks a parameter passes, as the official checker has it
    assert bfcl.check(task, reference, reference, gold).valid
    # a call there still runs: a state change made in it is seen by the next turn's check
    early = [list(turn) for turn in gold]
    early[3] = [bfcl.Call("mkdir", {"dir_name": "extra"})]
    verdict = bfcl.check(task, bfcl.execute(task, trusted, early), reference, early)
    assert not verdict.valid and verdict.turn == 4 and verdict.error_type == "multi_turn:instance_state_mismatch"
    strings = [list(t) for t in entry.ground_truth]
    strings[3] = ["mkdir(dir_name='extra')"]
    assert not bfcl_agreement.official_check(entry, strings)["valid"]


def test_unparsable_composite_gold_is_reported_with_entry_and_reason_and_the_rest_loads(loaded: Any, order: Any) -> None:
    composite = loaded["composite"]
    assert len(composite.skipped) == 16
    assert set(composite.skipped).isdisjoint(e.id for e in composite.entries)
    reason = composite.skipped["multi_turn_composite_45"]
    assert reason.startswith("turn 3: gold call \"cd(folder='ResearchDocs)\" does not parse") and "unterminated" in reason
    assert all(len(text) < 400 for text in composite.skipped.values())  # long gold strings are shortened
    raw = {e.id: e for e in bfcl.load_entries("composite")}["multi_turn_composite_153"]
    with pytest.raises(bfcl.UnexpressibleTaskError, match=r"multi_turn_composite_153: turn 1: .*does not parse") as info:
        bfcl.to_task(raw, order)
    assert info.value.entry_id == "multi_turn_composite_153"
    # every other category loads whole
    assert all(not loaded[c].skipped for c in bfcl.CATEGORIES if c != "composite")


def test_an_entry_of_another_format_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = bfcl_data._data_lines

    def without_answer(*parts: str) -> list[dict[str, Any]]:
        rows = real(*parts)
        return [r for r in rows if r["id"] != "multi_turn_base_7"] if parts[0] == "possible_answer" else rows

    monkeypatch.setattr(bfcl_data, "_data_lines", without_answer)
    with pytest.raises(bfcl.UnexpressibleTaskError, match=r"multi_turn_base_7: .*no ground truth"):
        bfcl.load_entries("base")
    with pytest.raises(ValueError, match="unknown BFCL category"):
        bfcl.load_entries("irrelevance")  # type: ignore[arg-type]


def test_official_compat_passes_arguments_our_schema_refuses_as_bfcl_does(
    entries: Any, tasks: Any, trusted: Any, compat: Any
) -> None:
    # multi_turn_base_173, turn 3: `close_ticket(ticket_id='ticket_001')`; the docs type ticket_id as integer
    entry, task = entries["base"][173], tasks["base"][173]
    gold = bfcl.gold_turns(task)
    assert gold[3][-1] == bfcl.Call("close_ticket", {"ticket_id": "ticket_001"})
    strict = bfcl.execute(task, trusted, gold)
    assert "invalid arguments for close_ticket" in strict.results[3][-1]
    loose = bfcl.execute(task, compat, gold, official_compat=True)
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    name = "envfactory_compat_probe"
    try:
        official = [utils.execute_multi_turn_func_call(turn, entry.initial_config, entry.involved_classes, name,
                                                       entry.id, long_context=entry.long_context)[0]
                    for turn in entry.ground_truth]
    finally:
        for key in [k for k in vars(utils) if k.startswith(name)]:
            del vars(utils)[key]
    assert loose.results == official
    # an undocumented keyword goes through too, with Python's own error text
    extra = [[bfcl.Call("close_ticket", {"ticket_id": 1, "reason": "x"})]] + [[] for _ in gold[1:]]
    result = bfcl.execute(task, compat, extra, official_compat=True).results[0][0]
    assert result.startswith("Error during execution: ") and "unexpected keyword argument 'reason'" in result
    # a required parameter left out: Python's own TypeError text, as BFCL's eval gives it
    bare = [[bfcl.Call("close_ticket", {})]] + [[] for _ in gold[1:]]
    result = bfcl.execute(task, compat, bare, official_compat=True).results[0][0]
    assert result.startswith("Error during execution: ") and "missing 1 required positional argument" in result
    # a tool no backend has fails like an undefined Python name
    unknown = [[bfcl.Call("rm_rf_everything", {})]] + [[] for _ in gold[1:]]
    assert bfcl.execute(task, compat, unknown, official_compat=True).results[0] == [
        "Error during execution: name 'rm_rf_everything' is not defined"]


def test_official_compat_runs_a_held_out_function_as_bfcl_does(tasks: Any, compat: Any) -> None:
    task = tasks["miss_func"][0]  # `sort` is held out until turn 3
    early = [[bfcl.Call("cd", {"folder": "document"}), bfcl.Call("sort", {"file_name": "final_report.pdf"})],
             [], [], [], []]
    result = bfcl.execute(task, compat, early, official_compat=True).results[0][1]
    assert "not defined" not in result and result.startswith("{")


def test_compat_environments_are_never_what_an_agent_gets(trusted: Any, compat: Any) -> None:
    raw = {t.name for env in compat.values() for t in env.spec.tools if t.name.startswith("raw_call_")}
    assert len(raw) == 8
    assert not [t.name for env in trusted.values() for t in env.spec.tools if t.name.startswith("raw_call_")]


def test_sandboxed_compat_environments_give_the_in_process_compat_results(
    tasks: Any, compat: Any, tmp_path: Path
) -> None:
    task = tasks["base"][173]  # a gold call the docs' types refuse: close_ticket(ticket_id='ticket_001')
    gold = bfcl.gold_turns(task)
    backends = [ref.name for ref in task.envs]
    names = [b for b in bfcl._toolkit_module().BACKENDS if bfcl.env_name(b) in backends]
    with SandboxPool(max_workers=len(names)) as pool:
        inside = bfcl.bfcl_environments(sandbox=pool, workdir=tmp_path, backends=names, official_compat=True)
        boxed = bfcl.execute(task, inside, gold, official_compat=True)
        boxed_hashes = boxed.state_hashes  # lazy: a second replay, so while the pool is open
    here = bfcl.execute(task, compat, gold, official_compat=True)
    assert boxed.results == here.results and boxed_hashes == here.state_hashes
    assert not any("invalid arguments" in r for turn in boxed.results for r in turn)
