"""`envfactory run`: config errors all at once, one run directory with a manifest listing every artifact,
stages that have not landed reported as such, resume that keeps finished stages, executor choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.cli.run import RunConfigError, execute, load_run_config
from envfactory.spec import RunConfig, RunManifest, RunSummary, StageManifest

REPO = Path(__file__).resolve().parents[2]
SMALL = {
    "name": "tiny", "seed": 3, "executor": {"kind": "serial"},
    "stages": {"library": {"source": "shipped", "envs": ["books", "blogger_posts", "drive"]},
               "synth_tasks": {"enabled": False}, "synth_trajectories": {"enabled": False},
               "export": {"enabled": False}},
}


def _write(tmp_path: Path, data: object, name: str = "run.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_every_config_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    bad = {
        "name": "Bad Name", "seed": -1, "colour": "red", "llm": "replay:missing.jsonl",
        "executor": {"kind": "cluster"},
        "stages": {
            "library": {"source": "shipped", "envs": ["no_such_env"], "domains": ["cooking"]},
            "synth_tasks": {"tasks": 0, "samplr": "topology"},
            "export": {"formats": "jsonl"},
        },
    }
    with pytest.raises(RunConfigError) as caught:
        load_run_config(_write(tmp_path, bad))
    problems = caught.value.problems
    joined = "\n".join(problems)
    for where in ("name:", "seed:", "colour: unknown key", "executor.kind:", "stages.synth_tasks.tasks:",
                  "stages.synth_tasks.samplr: unknown key", "stages.export.formats:",
                  "llm: cassette not found", "stages.library.envs: 'no_such_env'", "stages.library.domains: 'cooking'"):
        assert where in joined, (where, joined)
    assert len(problems) == 10


def test_a_built_library_needs_its_config_file_and_relative_paths_resolve_from_the_config(tmp_path: Path) -> None:
    with pytest.raises(RunConfigError, match=r"stages.library.config: file not found: .*nope.json"):
        load_run_config(_write(tmp_path, {"name": "b", "stages": {"library": {"source": "build", "config": "nope.json"}}}))
    with pytest.raises(RunConfigError, match=r"stages.library.config: Field required"):
        load_run_config(_write(tmp_path, {"name": "b", "stages": {"library": {"source": "build"}}}))
    (tmp_path / "lib.json").write_text("{}")
    config = load_run_config(_write(tmp_path, {"name": "b", "stages": {"library": {"source": "build", "config": "lib.json"}}}))
    assert config.stages.library.config == str(tmp_path / "lib.json")  # type: ignore[union-attr]


def test_trajectory_role_models_are_checked_and_their_cassettes_resolve_from_the_config(tmp_path: Path) -> None:
    roles = {"writer_llm": "replay:gone.jsonl#writer", "user_llm": "chatgpt", "judge_llm": "local#"}
    with pytest.raises(RunConfigError) as caught:
        load_run_config(_write(tmp_path, {"name": "r", "stages": {"synth_trajectories": roles}}))
    joined = "\n".join(caught.value.problems)
    assert "stages.synth_trajectories.writer_llm: cassette not found: " + str(tmp_path / "gone.jsonl") in joined
    assert "stages.synth_trajectories.user_llm: Value error, must be local" in joined
    assert "stages.synth_trajectories.judge_llm: Value error, must be local" in joined
    assert len(caught.value.problems) == 3
    (tmp_path / "c.jsonl").write_text("")
    config = load_run_config(_write(tmp_path, {"name": "r", "stages": {"synth_trajectories": {
        "writer_llm": "replay:c.jsonl#openai/writer@http://h/v1", "judge_llm": "openai:http://h/v1#judge"}}}))
    assert config.stages.synth_trajectories.role_llms() == {
        "writer": f"replay:{tmp_path / 'c.jsonl'}#openai/writer@http://h/v1", "judge": "openai:http://h/v1#judge"}


def test_unknown_export_formats_are_config_problems(tmp_path: Path) -> None:
    from envfactory.cli._run_stages import stage_function

    if stage_function("export") is None:
        pytest.skip("the export stage has not landed")
    with pytest.raises(RunConfigError, match=r"stages.export.formats: 'csv' is not a format \(choose from openai"):
        load_run_config(_write(tmp_path, {"name": "f", "stages": {"export": {"formats": ["openai", "csv"]}}}))


def test_the_shipped_configs_are_valid() -> None:
    for name in ("run-demo.json", "run-full.json"):
        config = load_run_config(REPO / "configs" / name)
        assert config.executor.kind == "pool" and config.stages.synth_tasks.enabled


def test_a_run_writes_one_directory_with_manifest_summary_and_stage_artifacts(tmp_path: Path) -> None:
    config = RunConfig.model_validate(SMALL)
    summary = execute(config, _ws(tmp_path))
    run_dir = tmp_path / "ws" / "runs" / config.default_run_id()
    statuses = {r.stage: r.status for r in summary.stages}
    assert statuses == {"library": "complete", "graph": "complete", "synth-tasks": "skipped",
                        "synth-trajectories": "skipped", "export": "skipped", "train": "skipped"}
    assert summary.status == "complete"
    selection = json.loads((run_dir / "library" / "library.json").read_text())
    assert [e["name"] for e in selection["envs"]] == ["blogger_posts", "books", "drive"]
    graph = StageManifest.model_validate_json((run_dir / "graph" / "manifest.json").read_bytes())
    assert graph.counts["environments"] == 3 and graph.counts["tools"] > 10
    manifest = RunManifest.model_validate_json((run_dir / "manifest.json").read_bytes())
    assert manifest.command == "envfactory run" and manifest.seeds == {"run": 3}
    assert set(manifest.artifacts) == {"library/library.json", "graph/graphs.jsonl", "graph/summary.json"}
    import hashlib

    for path, digest in manifest.artifacts.items():
        assert hashlib.sha256((run_dir / path).read_bytes()).hexdigest() == digest
    assert manifest.config == json.loads((run_dir / "config.json").read_text())
    assert RunSummary.model_validate_json((run_dir / "summary.json").read_bytes()) == summary


def test_stages_whose_layer_has_not_landed_are_reported_never_imitated(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from envfactory.cli import _run_stages

    monkeypatch.setitem(_run_stages.STAGE_SOURCES, "synth-tasks",
                        ("envfactory.synth_not_here", "run_synth_tasks", "issue #21, synth tasks"))
    config = RunConfig.model_validate({**SMALL, "stages": {**SMALL["stages"], "synth_tasks": {"tasks": 5}}})  # type: ignore[dict-item]
    summary = execute(config, _ws(tmp_path))
    by_stage = {r.stage: r for r in summary.stages}
    assert by_stage["synth-tasks"].status == "not_available"
    assert by_stage["synth-tasks"].note == "not available yet (issue #21, synth tasks has not landed)"
    assert not (tmp_path / "ws" / "runs" / summary.run_id / "synth-tasks").exists()
    assert by_stage["graph"].status == "complete" and summary.status == "partial"
    assert by_stage["export"].status == "skipped"


def test_resume_keeps_finished_stages_and_a_new_run_refuses_an_existing_directory(tmp_path: Path) -> None:
    config = RunConfig.model_validate(SMALL)
    first = execute(config, _ws(tmp_path))
    run_dir = tmp_path / "ws" / "runs" / first.run_id
    graph_bytes = (run_dir / "graph" / "graphs.jsonl").read_bytes()
    manifest_bytes = (run_dir / "manifest.json").read_bytes()
    from envfactory.errors import EnvFactoryError

    with pytest.raises(EnvFactoryError, match="pass --resume"):
        execute(config, _ws(tmp_path))
    said: list[str] = []
    again = execute(config, _ws(tmp_path), resume=True, say=said.append)
    assert "library: already complete, kept" in said and "graph: already complete, kept" in said
    assert (run_dir / "graph" / "graphs.jsonl").read_bytes() == graph_bytes
    assert (run_dir / "manifest.json").read_bytes() == manifest_bytes
    assert [r.manifest_digest for r in again.stages] == [r.manifest_digest for r in first.stages]
    # a stage whose output was damaged after it finished is run again
    (run_dir / "graph" / "graphs.jsonl").write_bytes(b"{}")
    execute(config, _ws(tmp_path), resume=True)
    assert (run_dir / "graph" / "graphs.jsonl").read_bytes() == graph_bytes


def test_a_changed_config_does_not_reuse_a_run_directory(tmp_path: Path) -> None:
    config = RunConfig.model_validate(SMALL)
    execute(config, _ws(tmp_path))
    from envfactory.errors import EnvFactoryError

    with pytest.raises(EnvFactoryError, match="another config"):
        execute(config.model_copy(update={"seed": 4}), _ws(tmp_path), run_id=config.default_run_id(), resume=True)
    other = config.model_copy(update={"seed": 4})
    assert other.default_run_id() != config.default_run_id()


def test_the_executor_is_not_part_of_the_run_id_and_a_run_resumes_on_another(tmp_path: Path) -> None:
    serial = RunConfig.model_validate(SMALL)
    pool = RunConfig.model_validate({**SMALL, "executor": {"kind": "pool", "workers": 2}})
    assert serial.default_run_id() == pool.default_run_id()
    first = execute(serial, _ws(tmp_path))
    again = execute(pool, _ws(tmp_path), resume=True)
    assert again.run_id == first.run_id
    assert [r.manifest_digest for r in again.stages] == [r.manifest_digest for r in first.stages]


def test_the_cli_prints_a_summary_and_json(tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL)
    result = CliRunner().invoke(app, ["run", "--config", str(path), "-w", str(tmp_path / "ws"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stages"][0]["stage"] == "library" and data["stages"][0]["counts"]["environments"] == 3
    bad = _write(tmp_path, {"name": "x", "nonsense": 1}, "bad.json")
    result = CliRunner().invoke(app, ["run", "--config", str(bad), "-w", str(tmp_path / "ws")])
    assert result.exit_code == 1 and "nonsense: unknown key" in result.output


def test_ray_without_ray_installed_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.setattr("importlib.import_module", lambda name, package=None: no_ray(name))
    path = _write(tmp_path, SMALL)
    result = CliRunner().invoke(app, ["run", "--config", str(path), "-w", str(tmp_path / "ws"), "--executor", "ray"])
    assert result.exit_code == 1
    assert "pip install -e '.[ray]'" in result.output
    assert not (tmp_path / "ws" / "runs").exists()  # nothing was started


def _ws(tmp_path: Path):  # type: ignore[no-untyped-def]
    from envfactory.store import Workspace

    return Workspace(tmp_path / "ws")


def test_the_graph_stage_writes_the_graphs_synthesis_samples_from_or_one_combined_graph(tmp_path: Path) -> None:
    from envfactory.graph import load_graph
    from envfactory.spec.pipeline import GraphSummary

    per_env = execute(RunConfig.model_validate(SMALL), _ws(tmp_path))
    run_dir = tmp_path / "ws" / "runs" / per_env.run_id
    summary = GraphSummary.model_validate_json((run_dir / "graph" / "summary.json").read_bytes())
    assert list(summary.graphs) == ["blogger_posts", "books", "drive"]
    lines = (run_dir / "graph" / "graphs.jsonl").read_bytes().splitlines()
    assert len(lines) == 3
    try:
        from envfactory.runtime import load_env
        from envfactory.synth.envs import prepare_env
    except ImportError:
        pass
    else:  # the same graphs synthesis samples its chains from
        assert prepare_env(load_env("books")).graph_hash == summary.graphs["books"]
    combined_config = RunConfig.model_validate({**SMALL, "stages": {**SMALL["stages"], "graph": {"scope": "combined"}}})  # type: ignore[dict-item]
    combined = execute(combined_config, _ws(tmp_path))
    combined_dir = tmp_path / "ws" / "runs" / combined.run_id
    graph = load_graph(combined_dir / "graph" / "graph.json")
    combined_summary = GraphSummary.model_validate_json((combined_dir / "graph" / "summary.json").read_bytes())
    assert list(combined_summary.graphs) == ["combined"] and combined_summary.tools == len(graph.tools())
    # edges between environments exist only in the combined graph
    assert combined_summary.accepted_feeds > summary.accepted_feeds
    assert combined_summary.tools == summary.tools


def test_too_few_verified_trajectories_make_the_run_partial_and_the_headline_says_what_was_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The orchestrator's own checks, with the trajectory stage replaced by a test double that writes a
    manifest with one verified trajectory (the real stage is tested in tests/synth)."""
    from envfactory.cli import _run_stages
    from envfactory.cli.run import headline
    from envfactory.store import StageDir

    def one_verified(ctx: _run_stages.RunContext) -> StageManifest:
        stage = StageDir.open(ctx.workspace, ctx.run_id, "synth-trajectories")
        stage.write_json("funnel.json", {"verified": 1})
        return stage.finish(outputs=["funnel.json"], counts={"tasks": 3, "queries": 3, "verified": 1})

    monkeypatch.setitem(_run_stages.ADAPTERS, "synth-tasks", lambda ctx: StageDir.open(
        ctx.workspace, ctx.run_id, "synth-tasks").finish(outputs=[], counts={"chains": 9, "gated": 4, "kept": 3}))
    monkeypatch.setitem(_run_stages.ADAPTERS, "synth-trajectories", one_verified)
    monkeypatch.setattr("envfactory.cli.run.stage_function", lambda stage: (lambda: None))
    stages = {**SMALL["stages"], "synth_tasks": {"tasks": 3},  # type: ignore[dict-item]
              "synth_trajectories": {"queries": 3, "min_verified": 2}}
    summary = execute(RunConfig.model_validate({**SMALL, "stages": stages}), _ws(tmp_path))
    record = {r.stage: r for r in summary.stages}["synth-trajectories"]
    assert record.status == "partial"
    assert record.note == "1 solver-verified trajectories, fewer than min_verified 2"
    assert summary.status == "partial"
    line = headline(summary)
    assert "environments 3 → chains 9 → gated tasks 4 (kept 3) → queries 3 → verified trajectories 1" in line
    assert "SFT —" in line  # export was disabled: nothing claimed


def test_an_endpoint_run_takes_its_model_name_from_the_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from envfactory.cli._run_stages import RunContext
    from envfactory.exec import SerialExecutor
    from envfactory.store import RunDir, Workspace

    config = RunConfig.model_validate({"name": "endpoint", "llm": "openai:http://127.0.0.1:9/v1"})
    space = Workspace(tmp_path).ensure()
    ctx = RunContext(config, space, RunDir.create(space, "r"), SerialExecutor(max_attempts=1), False, lambda _: None)
    monkeypatch.setenv("ENVFACTORY_LLM_MODEL", "served-model")
    assert ctx.llm().model_id == "openai/served-model@http://127.0.0.1:9/v1"  # no request is made to build it
    worker = ctx.worker_model()
    assert (worker.provider, worker.model, worker.base_url) == ("openai", "served-model", "http://127.0.0.1:9/v1")


def test_the_task_stage_tuning_reaches_the_sampler(tmp_path: Path) -> None:
    """`max_chain_length` (the demo config sets 2) bounds every sampled chain; one-call chains only here."""
    from envfactory.spec import Task

    stages = {**SMALL["stages"], "synth_tasks": {"tasks": 6, "batch_size": 8, "max_chain_length": 1}}  # type: ignore[dict-item]
    config = RunConfig.model_validate({**SMALL, "stages": stages})
    summary = execute(config, _ws(tmp_path))
    assert summary.status == "complete", summary.stages
    lines = (tmp_path / "ws" / "runs" / summary.run_id / "synth-tasks" / "tasks.jsonl").read_bytes().splitlines()
    tasks = [Task.model_validate_json(line) for line in lines]
    assert len(tasks) == 6 and {len(task.gold_calls()) for task in tasks} == {1}
    assert config.stages.synth_tasks.max_chain_length == 1
