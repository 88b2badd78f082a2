"""Roles with their own models (issue 22, deliverable 5) through `envfactory synth trajectories`: the
solver, the writer and the judge as three models behind the suite's OpenAI-compatible stub
(`openai_stub`, tests/conftest.py; the scripted oracle of `traj_fixtures` answers, served through
`llm.http_server`), each role's model id in the stage manifest, every answer recorded into one cassette;
then the same run replayed from that cassette, role by role (`replay:FILE#MODEL-ID`), gives the same
items and funnel byte for byte without a request reaching the stub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from traj_fixtures import OracleClient, shop_tasks, write_task_stage
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.llm.http_server import parse_request
from envfactory.spec import StageManifest
from envfactory.spec.synth_trajectories import TrajectoryFunnel
from envfactory.store import Workspace
from envfactory.synth.judge import judge_prompt_hash
from openai_stub import OpenAIStub, openai_answer

STAGE = Path("runs/ci/synth-trajectories")


def _serve_roles(stub: OpenAIStub) -> None:
    oracle = openai_answer(OracleClient(shop_tasks()))

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = parse_request(body)
        if request.response_format is not None and request.response_format.name == "judge_verdict":
            verdict = {"states_fact": True, "reason": "it gives the price"}
            return 200, {"object": "chat.completion", "model": body["model"], "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": json.dumps(verdict)}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        return oracle(body)

    stub.answer = answer


def _run(root: Path, *roles: str) -> tuple[int, str]:
    if not (root / "runs/ci/synth-tasks").exists():
        write_task_stage(Workspace(root), "ci", shop_tasks())
    result = CliRunner().invoke(app, ["synth", "trajectories", "--from", "ci", "--seed", "3", *roles,
                                      "-w", str(root)])
    return result.exit_code, result.output


def test_three_role_models_over_http_then_replayed_from_one_cassette(openai_stub: OpenAIStub, tmp_path: Path) -> None:
    _serve_roles(openai_stub)
    url, cassette = openai_stub.base_url, tmp_path / "roles.jsonl"
    code, output = _run(tmp_path / "live", "--llm", f"openai:{url}", "--model", "solver", "--writer-llm",
                        f"openai:{url}#writer", "--judge-llm", f"openai:{url}#judge", "--cassette", str(cassette))
    assert code == 0, output
    assert "judge openai/judge@" in output and "1 passed" in output
    live = tmp_path / "live" / STAGE
    versions = StageManifest.model_validate_json((live / "manifest.json").read_bytes()).versions
    assert versions == {"solver": f"openai/solver@{url}", "writer": f"openai/writer@{url}",
                        "user": f"openai/solver@{url}", "judge": f"openai/judge@{url}",
                        "judge_prompt": judge_prompt_hash()}
    asked = {body["model"] for body in openai_stub.bodies}
    assert asked == {"solver", "writer", "judge"}
    writer_formats = {b["response_format"]["json_schema"]["name"] for b in openai_stub.bodies if b["model"] == "writer"}
    assert writer_formats == {"query", "refined_query"}  # the writer wrote and refined, nothing else
    funnel = TrajectoryFunnel.model_validate_json((live / "funnel.json").read_bytes())
    assert funnel.stages["verified"] == 3 and funnel.judge is not None and funnel.judge.passed == 1

    sent = len(openai_stub.bodies)
    code, output = _run(tmp_path / "several", "--llm", f"replay:{cassette}")
    assert code != 0 and "several models" in output  # one cassette, three models: each role names its own
    code, output = _run(tmp_path / "replayed", "--llm", f"replay:{cassette}#openai/solver@{url}",
                        "--writer-llm", f"replay:{cassette}#openai/writer@{url}",
                        "--judge-llm", f"replay:{cassette}#openai/judge@{url}")
    assert code == 0, output
    assert len(openai_stub.bodies) == sent  # nothing reached the endpoint
    replayed = tmp_path / "replayed" / STAGE
    names = sorted(p.name for p in (live / "items").iterdir())
    assert names == sorted(p.name for p in (replayed / "items").iterdir()) and len(names) == 3
    for name in [*(f"items/{n}" for n in names), "funnel.json", "tasks.jsonl", "trajectories.jsonl"]:
        assert (replayed / name).read_bytes() == (live / name).read_bytes(), name


def test_a_role_spec_ending_in_a_bare_hash_is_refused(tmp_path: Path) -> None:
    code, output = _run(tmp_path, "--llm", "local", "--judge-llm", "local#")
    assert code != 0 and "names no model" in output


def test_a_run_config_gives_the_roles_their_own_models(openai_stub: OpenAIStub, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`envfactory run`: the role fields of `stages.synth_trajectories` reach the stage (the writer and the
    judge answer as their own models behind the stub, the solver as the run's `llm`), the stage manifest
    names each role's model, the run manifest records the fields and the roles' tokens are counted."""
    from envfactory.cli import _run_stages
    from envfactory.cli.run import execute
    from envfactory.spec import RunConfig, RunManifest

    _serve_roles(openai_stub)
    url = openai_stub.base_url
    monkeypatch.setenv("ENVFACTORY_LLM_MODEL", "solver")
    monkeypatch.setitem(_run_stages.ADAPTERS, "synth-tasks", lambda ctx: write_task_stage(
        ctx.workspace, ctx.run_id, shop_tasks()).read_manifest())
    roles = {"writer_llm": f"openai:{url}#writer", "judge_llm": f"openai:{url}#judge"}
    config = RunConfig.model_validate({
        "name": "roles", "seed": 3, "llm": f"openai:{url}", "executor": {"kind": "serial"},
        "stages": {"library": {"source": "shipped", "envs": ["books"]}, "synth_tasks": {"tasks": 3},
                   "synth_trajectories": {"queries": 3, "min_verified": 3, **roles}, "export": {"enabled": False}}})
    summary = execute(config, Workspace(tmp_path))
    record = {r.stage: r for r in summary.stages}["synth-trajectories"]
    assert record.status == "complete" and record.counts["verified"] == 3, record
    run = tmp_path / "runs" / summary.run_id
    stage = run / "synth-trajectories"
    versions = StageManifest.model_validate_json((stage / "manifest.json").read_bytes()).versions
    assert versions == {"solver": f"openai/solver@{url}", "writer": f"openai/writer@{url}",
                        "user": f"openai/solver@{url}", "judge": f"openai/judge@{url}",
                        "judge_prompt": judge_prompt_hash()}
    assert {body["model"] for body in openai_stub.bodies} == {"solver", "writer", "judge"}
    writer_formats = {b["response_format"]["json_schema"]["name"] for b in openai_stub.bodies if b["model"] == "writer"}
    assert writer_formats == {"query", "refined_query"}
    recorded = RunManifest.model_validate_json((run / "manifest.json").read_bytes()).config
    assert {k: recorded["stages"]["synth_trajectories"].get(k) for k in roles} == roles  # type: ignore[index,union-attr]
    funnel = TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes())
    assert record.counts["model_tokens"] == funnel.prompt_tokens + funnel.completion_tokens > 0


def test_role_fields_left_out_keep_a_configs_digest_and_workers_open_each_roles_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envfactory.cli._run_stages import RunContext
    from envfactory.exec import SerialExecutor
    from envfactory.spec import RunConfig
    from envfactory.store import RunDir

    plain = RunConfig.model_validate({"name": "r", "llm": "openai:http://127.0.0.1:9/v1"})
    assert not {"writer_llm", "user_llm", "judge_llm"} & set(plain.model_dump(mode="json")["stages"]["synth_trajectories"])
    assert plain.stages.synth_trajectories.role_llms() == {}
    section = {"user_llm": "openai:http://127.0.0.1:9/v1#user-model"}
    config = RunConfig.model_validate({"name": "r", "llm": "openai:http://127.0.0.1:9/v1",
                                       "stages": {"synth_trajectories": section}})
    assert config.default_run_id() != plain.default_run_id()  # a role's model decides artifacts
    monkeypatch.setenv("ENVFACTORY_LLM_MODEL", "served-model")
    space = Workspace(tmp_path).ensure()
    ctx = RunContext(config, space, RunDir.create(space, "r"), SerialExecutor(max_attempts=1), False, lambda _: None)
    assert ctx.role_llm("writer") is None and ctx.role_worker_model("judge") is None
    assert ctx.role_llm("user").model_id == "openai/user-model@http://127.0.0.1:9/v1"  # no request is made
    worker = ctx.role_worker_model("user")
    assert worker is not None and (worker.provider, worker.model) == ("openai", "user-model")
