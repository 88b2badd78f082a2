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
