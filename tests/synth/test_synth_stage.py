"""The synth-tasks stage: kept tasks are grounded, gated and replay; runs are deterministic and resume."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from synth_helpers import QUIET_BENCHMARK, RUN_ENVS, run_small

from envfactory.runtime import load_env
from envfactory.runtime.loader import bundled_envs_root
from envfactory.spec import OutputContainsCheck, Task, Trajectory
from envfactory.spec.synth import FUNNEL_STAGES, SynthFunnel, SynthTasksConfig, TaskGates
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, SynthError, run_synth_tasks
from envfactory.synth.stage import load_synth_envs
from envfactory.synth.tasks import GOLD_PATH_MODEL, TEMPLATE_USER
from envfactory.verify.gates import GATES, gate_task

ARTIFACTS = ("tasks.jsonl", "trajectories.jsonl", "gates.jsonl", "drops.jsonl", "funnel.json")
REPO = Path(__file__).resolve().parents[2]


def _stage(root: Path, run_id: str = "r") -> Path:
    return root / "runs" / run_id / "synth-tasks"


def _tasks(stage: Path) -> list[Task]:
    return [Task.model_validate_json(line) for line in (stage / "tasks.jsonl").read_bytes().splitlines()]


def _trajectories(stage: Path) -> list[Trajectory]:
    return [Trajectory.model_validate_json(line) for line in (stage / "trajectories.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    manifest = run_small(root, tasks=14)
    assert manifest.status == "complete"
    return _stage(root)


def test_kept_tasks_replay_to_their_hashes_and_pass_every_gate(small_run: Path) -> None:
    tasks, trajectories = _tasks(small_run), _trajectories(small_run)
    assert len(tasks) == 14 and len({t.id for t in tasks}) == 14
    envs = {name: load_env(name) for name in RUN_ENVS}
    for task, trajectory in zip(tasks, trajectories, strict=True):
        assert trajectory.task_id == task.id and task.compute_id() == task.id
        outcome = gate_task(task, envs, trajectory=trajectory)  # from the files, as a reader would
        assert outcome.passed, (task.id, outcome.failed, outcome.detail)
        assert trajectory.reward is not None and trajectory.reward.total == 1.0
        assert trajectory.producer.model == GOLD_PATH_MODEL and trajectory.producer.provider == TEMPLATE_USER
        assert task.queries.source == "template" and task.queries.explicit == trajectory.messages[0].content
        assert task.provenance is not None and task.provenance.sampler == "topology"
        calls = [(c.tool, c.arguments) for c in trajectory.tool_calls()]
        assert calls == [(g.tool, g.arguments) for g in task.gold_calls()]


def test_every_kept_task_has_the_records_of_the_gates_it_passed(small_run: Path) -> None:
    tasks = _tasks(small_run)
    records = [TaskGates.model_validate_json(line) for line in (small_run / "gates.jsonl").read_bytes().splitlines()]
    assert [r.task_id for r in records] == [t.id for t in tasks]  # one per kept task, in the same order
    for task, record in zip(tasks, records, strict=True):
        assert tuple(g.gate for g in record.gates) == GATES and all(g.passed and g.detail for g in record.gates)
        details = {g.gate: g.detail for g in record.gates}
        assert details["gold_reward"] == "the gold path scores 1.0000"
        assert details["no_op"] == "a no-op agent scores 0.0000"
        assert f"{len(task.gold_calls())} gold call(s) replayed" in details["gold_replay"]


def _apply(state: object, pointer: str, op: str, value: object) -> None:
    """Apply one JSON-pointer change to `state` in place (the test's own applier)."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.lstrip("/").split("/")]
    node = state
    for token in tokens[:-1]:
        assert isinstance(node, dict)
        node = node[token]
    assert isinstance(node, dict)
    if op == "remove":
        del node[tokens[-1]]
    else:
        node[tokens[-1]] = value


def test_gold_path_diffs_turn_the_initial_state_into_the_expected_one(small_run: Path) -> None:
    writes = 0
    for task, trajectory in zip(_tasks(small_run), _trajectories(small_run), strict=True):
        call_ids = [c.id for c in trajectory.tool_calls()]
        assert [d.call_id for d in trajectory.state_diffs] == [i for i in call_ids if i in
                                                               {d.call_id for d in trajectory.state_diffs}]
        if task.read_only:
            assert trajectory.state_diffs == []  # reads change nothing
            continue
        writes += 1
        assert trajectory.state_diffs, task.id
        states = orjson.loads(orjson.dumps(task.initial_state))
        for diff in trajectory.state_diffs:
            for change in diff.changes:
                _apply(states[diff.env], change.path, change.op, change.new)
        assert states == task.expected_final_state, task.id
    assert writes


def test_read_only_tasks_score_facts_and_write_tasks_score_state(small_run: Path) -> None:
    tasks = _tasks(small_run)
    read_only = [t for t in tasks if t.read_only]
    writes = [t for t in tasks if not t.read_only]
    assert read_only and writes
    for task in read_only:
        assert not task.expected_final_state and not task.expected_final_hash
        facts = [c.text for c in task.checks if isinstance(c, OutputContainsCheck)]
        assert facts and facts == task.turns[0].expected_outputs
        answer = task.gold_calls()[-1].result
        assert all(fact in orjson.dumps(answer).decode() for fact in facts)  # facts come from the gold result
        assert all(fact.lower() not in task.explicit_query.lower() for fact in facts)  # and are not given away
        assert task.reward.calls_weight == 0.0 and task.reward.final_state == "not_scored"
    for task in writes:
        assert set(task.expected_final_hash) == {ref.name for ref in task.envs}
        assert any(call.essential_arguments for call in task.gold_calls())


def test_multi_environment_tasks_share_a_user_level_value(small_run: Path) -> None:
    multi = [t for t in _tasks(small_run) if len(t.envs) > 1]
    assert multi, "the small run should include a multi-environment task"
    tools = {name: set(load_env(name).tools) for name in RUN_ENVS}
    for task in multi:
        per_env: dict[str, set[str]] = {}
        for call in task.gold_calls():
            env = next(ref.name for ref in task.envs
                       if call.tool.startswith(f"{ref.name}__") or call.tool in tools[ref.name])
            values = [str(v) for v in call.arguments.values() if isinstance(v, str | int)]
            # a shared person may be a full name in one service and first and last names in the other
            per_env.setdefault(env, set()).update({*values, *(w for v in values for w in v.split(" ") if len(w) > 3)})
        assert len(per_env) == 2
        first, second = per_env.values()
        assert first & second, f"{task.id}: no value given to both environments"


def test_funnel_counts_every_candidate_once(small_run: Path) -> None:
    funnel = SynthFunnel.model_validate_json((small_run / "funnel.json").read_bytes())
    stages = [funnel.stages[name] for name in FUNNEL_STAGES]
    assert stages == sorted(stages, reverse=True) and funnel.stages["chains"] == funnel.candidates
    drops = [orjson.loads(line) for line in (small_run / "drops.jsonl").read_bytes().splitlines()]
    assert len(drops) + funnel.kept.tasks == funnel.candidates
    for stage, reasons in funnel.drops.items():
        assert sum(reasons.values()) == sum(1 for d in drops if d["stage"] == stage)
    assert funnel.kept.tasks == 14 and sum(funnel.kept.domains.values()) == 14
    manifest = orjson.loads((small_run / "manifest.json").read_bytes())
    assert {ref["path"] for ref in manifest["outputs"]} == set(ARTIFACTS)
    assert manifest["counts"]["kept"] == 14


def test_same_config_and_seed_give_identical_bytes(small_run: Path, tmp_path: Path) -> None:
    run_small(tmp_path, tasks=14)
    for name in ARTIFACTS:
        assert (_stage(tmp_path) / name).read_bytes() == (small_run / name).read_bytes(), name


def test_random_walk_sampler_is_the_ablation(tmp_path: Path) -> None:
    manifest = run_small(tmp_path, tasks=4, sampler="random-walk", batch_size=16)
    funnel = SynthFunnel.model_validate_json((_stage(tmp_path) / "funnel.json").read_bytes())
    assert funnel.sampler == "random-walk" and manifest.counts["kept"] == funnel.kept.tasks
    assert funnel.drops.get("valid"), "random walks leave inputs unbound; the funnel says so"
    assert all(t.provenance is not None and t.provenance.sampler == "random-walk" for t in _tasks(_stage(tmp_path)))


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {helpers!r})
    from synth_helpers import QUIET_BENCHMARK, RUN_ENVS
    from envfactory.spec.synth import SynthTasksConfig
    from envfactory.store import Workspace
    from envfactory.synth import SynthDeps, run_synth_tasks

    def die_after_two(progress):
        if progress.candidates >= 8:
            os.kill(os.getpid(), signal.SIGKILL)

    config = SynthTasksConfig(envs=list(RUN_ENVS), tasks=10, seed=5, batch_size=4)
    run_synth_tasks(config, Workspace(Path({root!r})), SynthDeps(run_id="r", benchmark_tasks=list(QUIET_BENCHMARK),
                                                               progress=die_after_two))
""")


def test_a_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    script = _KILLED_RUN.format(helpers=str(Path(__file__).parent), root=str(killed))
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300, check=False)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    stage = _stage(killed)
    assert sorted(p.name for p in (stage / "parts").iterdir()) == ["batch-000000.json", "batch-000001.json"]
    assert not (stage / "manifest.json").exists() and not (stage / "tasks.jsonl").exists()
    with pytest.raises(SynthError, match="--resume"):
        run_small(killed, tasks=10, batch_size=4)
    manifest = run_small(killed, tasks=10, batch_size=4, resume=True)
    assert manifest.timings["batches_reused"] == 2.0
    reference = tmp_path / "reference"
    run_small(reference, tasks=10, batch_size=4)
    for name in ARTIFACTS:
        assert (stage / name).read_bytes() == (_stage(reference) / name).read_bytes(), name
    ids = [t.id for t in _tasks(stage)]
    assert len(ids) == len(set(ids)) == 10


def test_a_stage_made_with_another_config_is_refused(tmp_path: Path) -> None:
    run_small(tmp_path, tasks=2, batch_size=4, envs=("zoom_us_roles_members",))
    with pytest.raises(SynthError, match="another config"):
        run_small(tmp_path, tasks=3, batch_size=4, envs=("zoom_us_roles_members",), resume=True)


def test_bad_input_is_refused_before_work_starts(tmp_path: Path) -> None:
    config = SynthTasksConfig(envs=["no_such_environment"], tasks=1)
    with pytest.raises(SynthError, match="no_such_environment"):
        run_synth_tasks(config, Workspace(tmp_path), SynthDeps(run_id="r", benchmark_tasks=list(QUIET_BENCHMARK)))
    with pytest.raises(SynthError, match="contamination gate"):
        run_synth_tasks(SynthTasksConfig(envs=["zoom_us_roles_members"], tasks=1), Workspace(tmp_path),
                        SynthDeps(run_id="r", benchmark_tasks=[]))
    with pytest.raises(ValueError, match="library"):
        SynthTasksConfig(tasks=1)
    assert not (tmp_path / "runs" / "r" / "synth-tasks" / "parts").exists()


def test_environments_that_need_a_sandbox_are_skipped_with_the_reason(tmp_path: Path) -> None:
    untrusted = tmp_path / "calendar_copy"  # a python toolkit outside the package: never run in-process
    shutil.copytree(bundled_envs_root() / "calendar", untrusted)
    loaded = load_synth_envs(SynthTasksConfig(envs=["zoom_us_roles_members", str(untrusted)], tasks=1))
    assert [s.name for s in loaded.envs] == ["zoom_us_roles_members"]
    assert "sandbox" in loaded.skipped[str(untrusted)]
