"""veRL: the generated tool / agent-loop setup, one rollout played through the same HTTP path with a
scripted policy, and (when veRL's venv exists) validation with veRL's own config and schema classes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.runtime import load_env, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.client import EnvClient
from envfactory.serve.config import ServeConfig
from envfactory.serve.runner import BackgroundServer, build_http
from envfactory.spec import Task
from envfactory.train.data import gold_tasks
from envfactory.train.trl_runner import task_tool_specs
from envfactory.train.verl import TOOL_CLASS, VerlSettings, validate_in_verl, verl_setup
from envfactory.train.verl_tool import SESSION_KEY, compute_score, run_tool_call

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task() -> Task:
    return next(t for t in gold_tasks(load_env("tracker")) if t.origin.source_id == "train-demo:assign_task")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    served = build_http(EnvCatalog.load(["tracker"]), ServeConfig())
    with BackgroundServer(served) as running:
        yield running.url


def _row(task: Task) -> dict[str, object]:
    """The veRL row the export writes for a one-turn task (`export.formats.verl_record` layout)."""
    env = load_env("tracker")
    with open_group([env], task.initial_state, task.seed) as group:
        for call in task.gold_calls():
            group.call(call.tool, call.arguments)
        hashes = group.hashes()
    episode = json.dumps({"task_id": task.id, "turn": 0, "envs": [r.model_dump(mode="json") for r in task.envs],
                          "tool_naming": task.tool_naming, "seed": task.seed, "state": task.initial_state})
    truth = json.dumps({"task_id": task.id, "turn": 0, "final_turn": True,
                        "gold_calls": [c.model_dump(mode="json", exclude_defaults=True) for c in task.gold_calls()],
                        "expected_state_hashes": hashes, "reward": task.reward.model_dump(mode="json")})
    tools = task.turns[0].available_tools or []
    return {"reward_model": {"ground_truth": truth},
            "extra_info": {"tools_kwargs": {name: {"create_kwargs": {"episode": episode}} for name in tools}}}


def test_setup_points_veRL_at_the_env_server_with_flat_schemas(tmp_path: Path, task: Task) -> None:
    specs = task_tool_specs([task], lambda _: load_env("tracker"))
    losses = verl_setup(specs, "http://127.0.0.1:8765", tmp_path, VerlSettings(model="Qwen/Qwen3-1.7B"))
    config = json.loads((tmp_path / "tool_config.yaml").read_text())
    names = [t["tool_schema"]["function"]["name"] for t in config["tools"]]
    assert names == [s.name for s in specs]
    for entry in config["tools"]:
        assert entry["class_name"] == TOOL_CLASS and entry["config"]["server_url"] == "http://127.0.0.1:8765"
        for prop in entry["tool_schema"]["function"]["parameters"]["properties"].values():
            assert set(prop) <= {"type", "description", "enum", "items"}  # what veRL's models keep
    assert any("minLength" in line for line in losses)  # add_comment's body bounds are reported
    overrides = (tmp_path / "overrides.txt").read_text().splitlines()
    for expected in ("algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=8",
                     "actor_rollout_ref.rollout.temperature=0.7", "actor_rollout_ref.actor.optim.lr=1e-06",
                     "actor_rollout_ref.actor.use_kl_loss=False", "actor_rollout_ref.rollout.multi_turn.enable=True",
                     "actor_rollout_ref.model.path=Qwen/Qwen3-1.7B", "reward.custom_reward_function.name=compute_score"):
        assert expected in overrides
    assert os.access(tmp_path / "run.sh", os.X_OK)


def test_a_scripted_rollout_through_the_http_path_is_scored_by_the_reward_endpoint(server: str, task: Task,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVFACTORY_ENV_SERVER", server)
    row = _row(task)
    extra = row["extra_info"]
    assert isinstance(extra, dict)
    create = next(iter(extra["tools_kwargs"].values()))["create_kwargs"]
    gold = task.gold_calls()[0]
    # one trajectory, two calls, each through a tool object made and released for that call (as veRL does):
    # the session lives in the trajectory's extra fields, not in the tool
    fields: dict[str, object] = {}
    text, failed = run_tool_call(server, "tracker__get_task", [["id", "id"]], {"id": gold.arguments["id"]}, fields, create)
    assert not failed and json.loads(text)["id"] == gold.arguments["id"]
    session = fields[SESSION_KEY]
    text, failed = run_tool_call(server, gold.tool, [["id", "id"], ["assignee_id", "assignee_id"]],
                                 dict(gold.arguments), fields, create)
    assert not failed and fields[SESSION_KEY] == session
    scored = compute_score("envfactory", "Done.", row["reward_model"]["ground_truth"],  # type: ignore[index]
                           {**extra, **fields})
    assert scored["score"] == pytest.approx(1.0) and scored["envfactory/gold_calls"] == 1.0
    idle = compute_score("envfactory", "I did nothing.", row["reward_model"]["ground_truth"], dict(extra))  # type: ignore[index]
    assert idle["score"] == 0.0 and idle["envfactory/changed_state"] == 0.0
    with EnvClient(server) as client:
        assert client.sessions().sessions == []  # every scored session was closed


def _verl_python() -> Path | None:
    root = Path(os.environ.get("ENVFACTORY_CONSUMERS", ROOT / ".consumers"))
    python = root / "verl" / "bin" / "python"
    return python if (root / "verl" / ".complete").is_file() and python.is_file() else None


def test_veRL_accepts_the_setup_with_its_own_classes(tmp_path: Path, task: Task) -> None:
    python = _verl_python()
    if python is None:
        pytest.skip("veRL's venv is not built (scripts/consumers verl)")
    specs = task_tool_specs([task], lambda _: load_env("tracker"))
    verl_setup(specs, "http://127.0.0.1:8765", tmp_path)
    report = validate_in_verl(tmp_path, python, ROOT / "src")
    assert report["multi_turn"] is True and report["n"] == 8 and report["temperature"] == 0.7
    assert report["adv_estimator"].endswith("grpo") and report["lr"] == 1e-6 and report["use_kl_loss"] is False
    assert report["agent_loop"] == "tool_agent" and report["tool_classes"] == ["EnvServerTool"]
    assert report["tools"]["tracker__assign_task"] == ["assignee_id", "id"]
