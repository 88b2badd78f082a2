"""The CLI on hostile text, part 2: the commands that need a model, a workspace or data (issue 17,
deliverable 5).

The model is a stub behind a real OpenAI-compatible endpoint (`llm.http_server` on loopback, reached
through `--llm openai:URL` / `--provider openai`): it answers every request with `HOSTILE`, so model
text, task text, environment text and paths (a workspace and a training run whose directory names carry
escape sequences) all reach the terminal. Every command must finish without a traceback and print no
control character. Data is tiny: two tasks on `shop` whose user text and expected answer are `HOSTILE`,
their gold trajectories (replies `HOSTILE`), a two-step training log.

The commands that cannot run here (trainers, long-running servers, downloads, minutes of building)
are listed in `test_hostile.EXEMPT`; `test_output_funnel.py` proves their output goes through the same
helpers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_cli import HOSTILE, assert_clean, hostile_shop_tasks, invoke, write_hostile_env

from envfactory.llm import ChatRequest, ChatResponse
from envfactory.llm.http_server import create_app
from envfactory.llm.scripted import text_response
from envfactory.runtime import load_env
from envfactory.serve.runner import BackgroundServer
from envfactory.store import StageDir, Workspace
from envfactory.train.data import gold_trajectory

ESCAPED_NAME = "ws \x1b[31m[bold]x\x9b2J"  # a directory name with CSI, markup and C1 CSI


class HostileModel:
    """Answers every chat request with `HOSTILE` (no tool calls)."""

    requests = 0

    @property
    def model_id(self) -> str:
        return "stub/hostile"

    def chat(self, request: ChatRequest) -> ChatResponse:
        HostileModel.requests += 1
        return text_response(HOSTILE, self.model_id)


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    with BackgroundServer(create_app(HostileModel(), "hostile")) as server:
        yield f"{server.url}/v1"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tasks.jsonl` and `trajectories.jsonl` of the hostile tasks, and a workspace named with escapes."""
    root = tmp_path_factory.mktemp("hostile-data")
    tasks = hostile_shop_tasks()
    shop = load_env("shop")
    (root / "tasks.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in tasks), encoding="utf-8")
    (root / "trajectories.jsonl").write_text(
        "".join(gold_trajectory(t, shop, reply=HOSTILE).model_dump_json() + "\n" for t in tasks), encoding="utf-8")
    stage = StageDir.open(Workspace(root / ESCAPED_NAME), "hostile", "synth-tasks")
    stage.write_jsonl("tasks.jsonl", [t.model_dump(mode="json") for t in tasks])
    stage.finish(outputs=["tasks.jsonl"], seeds={"main": 0})
    return root


def test_llm_commands_print_model_text_inert(model_url: str, data: Path) -> None:
    workspace = str(data / ESCAPED_NAME)
    info = assert_clean(invoke("llm", "info", "-w", workspace, "--models-dir", str(data / f"models {ESCAPED_NAME}")))
    assert "[bold]x2J" in info  # the path shows, its escapes stripped
    before = HostileModel.requests
    chat = ["llm", "chat", "hello", "--provider", "openai", "--base-url", model_url, "--model", "hostile", "--no-cache"]
    shown = assert_clean(invoke(*chat, "-w", workspace))
    assert "[/] [bold]b[/bold] [link=file:///etc/passwd]l[/link] :smile: [31mred[0m" in shown
    assert json.loads(assert_clean(invoke(*chat, "--json")))["response"]["message"]["content"] == HOSTILE
    assert HostileModel.requests == before + 2  # the answers came from the stub, not a cache


def test_eval_and_synth_trajectories_with_a_hostile_model(model_url: str, data: Path, tmp_path: Path) -> None:
    llm = ["--llm", f"openai:{model_url}", "--model", "hostile"]
    evaluated = assert_clean(invoke("eval", "run", "--task-file", str(data / "tasks.jsonl"), *llm, "--no-cache",
                                    "-w", str(tmp_path / ESCAPED_NAME)))
    assert "tasks" in evaluated and "LLM call(s)" in evaluated
    solved = assert_clean(invoke("synth", "trajectories", "--from", "hostile", *llm, "-w", str(data / ESCAPED_NAME)))
    assert "verified trajectories" in solved
    calibrated = assert_clean(invoke("synth", "calibration", "--from", "hostile", "-w", str(data / ESCAPED_NAME)))
    assert "over-specification" in calibrated


def test_synth_tasks_and_demo_over_hostile_text(tmp_path: Path) -> None:
    env = write_hostile_env(tmp_path / "shop")
    workspace = str(tmp_path / ESCAPED_NAME)
    funnel = assert_clean(invoke("synth", "tasks", "--env", str(env), "--tasks", "1", "--max-candidates", "4",
                                 "-w", workspace))
    assert "candidates" in funnel or "tasks" in funnel
    demo = assert_clean(invoke("demo", "--env", "shop", "--calls", "1", "--no-stages", "-w", workspace))
    assert "[bold]x2J" in demo


def test_dataset_commands_over_hostile_data(data: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    exported = assert_clean(invoke("dataset", "export", "--from", str(data), "--workspace", str(tmp_path / ESCAPED_NAME),
                                   "--to", str(export)))
    assert "written to" in exported
    assert_clean(invoke("dataset", "validate", str(export)))
    assert_clean(invoke("dataset", "validate", str(data / "trajectories.jsonl"), "--tasks", str(data / "tasks.jsonl")))
    invalid = tmp_path / "invalid.jsonl"
    invalid.write_text(json.dumps({"id": HOSTILE, "turns": HOSTILE}) + "\n", encoding="utf-8")
    problems = invoke("dataset", "validate", str(invalid))
    assert problems.exit_code == 1 and "invalid.jsonl:1" in assert_clean(problems, ok=False)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"turns": []}) + "\n" + HOSTILE + "\n", encoding="utf-8")
    refused = invoke("dataset", "validate", str(broken))  # a line that is not JSON: an error, not a traceback
    assert refused.exit_code == 1 and "broken.jsonl:2: not JSON" in assert_clean(refused, ok=False)


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # control characters in a PNG title
def test_train_commands_that_need_no_trainer(data: Path, tmp_path: Path) -> None:
    env = write_hostile_env(tmp_path / "shop")
    assert_clean(invoke("train", "schema-check", "--env", str(env)))
    assert_clean(invoke("train", "verl-config", "--tasks", str(data / "tasks.jsonl"), "--server",
                        f"http://127.0.0.1:1/{HOSTILE}", "--out", str(tmp_path / "verl")))
    assert_clean(invoke("train", "demo-data", "--out", str(tmp_path / ESCAPED_NAME / "demo")))
    stage = tmp_path / ESCAPED_NAME / "sft"
    (stage / "logs").mkdir(parents=True)
    steps = stage / "logs" / "steps.jsonl"
    steps.write_text(json.dumps({"step": 0, "loss": 1.5, "reward": 0.2, "components": {HOSTILE: 0.5}}) + "\n" +
                     json.dumps({"step": 1, "loss": 1.1, "step_seconds": 0.5}) + "\n", encoding="utf-8")
    plotted = assert_clean(invoke("train", "plot", "--run", str(stage), "--out", str(tmp_path / "plots")))
    assert plotted.count("wrote ") == 3 and "[bold]x2J-sft-loss.png" in plotted
    steps.write_text(json.dumps({"step": HOSTILE}) + "\n", encoding="utf-8")
    refused = invoke("train", "plot", "--run", str(stage), "--out", str(tmp_path / "plots"))
    assert refused.exit_code == 1 and "steps.jsonl:1: not a training step record" in assert_clean(refused, ok=False)


def test_library_publish_over_escape_named_directories(tmp_path: Path) -> None:
    build = tmp_path / f"build {ESCAPED_NAME}"  # a finished build that accepted nothing
    (build / "outcomes").mkdir(parents=True)
    (build / "envs").mkdir()
    (build / "config.json").write_text(json.dumps({"name": "tiny", "domains": ["lifestyle"]}), encoding="utf-8")
    (build / "proposals.json").write_text("{}", encoding="utf-8")
    exported = assert_clean(invoke("library", "publish", "--from", str(build), "--to", str(tmp_path / ESCAPED_NAME)))
    assert "published 0 environment(s)" in exported and "[bold]x2J" in exported
    refused = invoke("library", "publish", "--from", str(tmp_path), "--to", str(tmp_path / "lib"))
    assert refused.exit_code == 1 and "not a readable library build" in assert_clean(refused, ok=False)


def test_run_pipeline_over_hostile_config_and_paths(tmp_path: Path) -> None:
    small = {"name": "tiny", "seed": 3, "executor": {"kind": "serial"},
             "stages": {"library": {"source": "shipped", "envs": ["books"]}, "synth_tasks": {"enabled": False},
                        "synth_trajectories": {"enabled": False}, "export": {"enabled": False}}}
    config = tmp_path / "run.json"
    config.write_text(json.dumps(small), encoding="utf-8")
    ran = assert_clean(invoke("run", "--config", str(config), "-w", str(tmp_path / ESCAPED_NAME)))
    assert "run directory:" in ran and "[bold]x2J" in ran
    bad = {"name": HOSTILE, "seed": 3, HOSTILE: 1, "llm": f"replay:{HOSTILE}.jsonl",
           "stages": {"library": {"source": "shipped", "envs": [HOSTILE]}}}
    config.write_text(json.dumps(bad), encoding="utf-8")
    refused = invoke("run", "--config", str(config), "-w", str(tmp_path / "ws"))
    assert refused.exit_code == 1 and "problem(s):" in assert_clean(refused, ok=False)


RUN_HERE = {"llm info", "llm chat", "eval run", "synth trajectories", "synth calibration", "synth tasks", "demo", "dataset export",
            "dataset validate", "train schema-check", "train verl-config", "train demo-data", "train plot", "library publish", "run"}
