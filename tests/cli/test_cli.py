"""The `envfactory` command line: schema export, envs list/show/validate, demo, error handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from typer.testing import CliRunner

import envfactory
from envfactory.cli._output import pretty_json
from envfactory.cli.app import app
from envfactory.runtime import bundled_env_names, load_env, open_session
from envfactory.runtime.loader import bundled_envs_root
from envfactory.spec import ARTIFACT_MODELS, RunManifest

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def copy_shop(tmp_path: Path) -> Path:
    target = tmp_path / "shop"
    shutil.copytree(bundled_envs_root() / "shop", target)
    return target


def edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


# -- global options ------------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"envfactory {envfactory.__version__}"


def test_no_arguments_shows_help_with_every_verb() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for verb in ("schema", "envs", "demo"):
        assert verb in result.stdout


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "envfactory", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"envfactory {envfactory.__version__}"


# -- schema ----------------------------------------------------------------------------------------------


def test_schema_lists_every_artifact_model_as_json() -> None:
    result = invoke("schema", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list(ARTIFACT_MODELS)
    assert {row["model"] for row in rows} == {model.__name__ for model in ARTIFACT_MODELS.values()}


def test_schema_without_out_lists_models_for_humans() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    for name in ARTIFACT_MODELS:
        assert name in result.stdout


def _assert_sorted_keys(value: object) -> None:
    if isinstance(value, dict):
        assert list(value) == sorted(value)
        for item in value.values():
            _assert_sorted_keys(item)
    elif isinstance(value, list):
        for item in value:
            _assert_sorted_keys(item)


def test_schema_export_writes_a_valid_canonical_schema_per_model(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = invoke("schema", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.schema.json" for name in ARTIFACT_MODELS)
    assert {Path(row["path"]).name for row in written} == {p.name for p in out.iterdir()}
    for path in out.iterdir():
        raw = path.read_bytes()
        schema = json.loads(raw)
        assert jsonschema_rs.meta.is_valid(schema), path.name
        jsonschema_rs.validator_for(schema)  # compiles
        # canonical: sorted keys at every level, two-space indent, one trailing newline, and rewriting it
        # gives the same bytes (numbers keep the writer's shortest form, e.g. 0.00005, which json.dumps
        # would print as 5e-05)
        assert raw == pretty_json(schema) and raw.endswith(b"}\n") and b"\n  \"" in raw
        _assert_sorted_keys(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_exported_schemas_accept_real_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert invoke("schema", "--out", str(out)).exit_code == 0

    def validator(name: str) -> Any:
        return jsonschema_rs.validator_for(json.loads((out / f"{name}.schema.json").read_text(encoding="utf-8")))

    shop_source = json.loads((bundled_envs_root() / "shop" / "env.json").read_text(encoding="utf-8"))
    assert validator("declarative-env").is_valid(shop_source)
    env = load_env("shop")
    assert validator("env-spec").is_valid(env.spec.model_dump(mode="json"))
    assert validator("tool-spec").is_valid(env.spec.tools[0].model_dump(mode="json"))
    with open_session(env) as session:
        result = session.call(env.spec.tools[0].name, {})
        assert validator("tool-result").is_valid(result.model_dump(mode="json"))
        assert validator("snapshot").is_valid(session.snapshot().model_dump(mode="json"))
    assert not validator("snapshot").is_valid({"state": {}})


def test_schema_export_is_reproducible(tmp_path: Path) -> None:
    assert invoke("schema", "--out", str(tmp_path / "a")).exit_code == 0
    assert invoke("schema", "--out", str(tmp_path / "b")).exit_code == 0
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


# -- envs list / show --------------------------------------------------------------------------------------


def test_envs_list_json_lists_shop() -> None:
    result = invoke("envs", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(bundled_env_names())
    shop = rows["shop"]
    spec = load_env("shop").spec
    assert shop["version"] == spec.meta.version
    assert shop["domain"] == "commerce"
    assert shop["kind"] == "declarative"
    assert shop["tools"] == len(spec.tools)
    assert shop["writes"] == sum(1 for tool in spec.tools if tool.effect == "write")
    assert shop["description"] == spec.meta.description
    assert shop["content_hash"] == spec.content_hash


def test_envs_list_for_humans_names_every_bundled_env() -> None:
    result = invoke("envs", "list")
    assert result.exit_code == 0
    for name in bundled_env_names():
        assert name in result.stdout


def test_envs_show_json_describes_tools_state_and_seeds() -> None:
    result = invoke("envs", "show", "shop", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    env = load_env("shop")
    tools = {tool["name"]: tool for tool in details["tool_specs"]}
    assert set(tools) == {tool.name for tool in env.spec.tools}
    for tool in env.spec.tools:
        assert tools[tool.name]["effect"] == tool.effect
        assert tools[tool.name]["description"] == tool.description
    collections = {c["name"]: c for c in details["collections"]}
    assert {"customers", "products", "orders"} <= set(collections)
    assert collections["products"]["key"] == "sku"
    default = env.seeds["default"]["collections"]
    assert details["seeds"]["default"] == {name: len(records) for name, records in default.items()}


def test_envs_show_accepts_a_directory_path(tmp_path: Path) -> None:
    result = invoke("envs", "show", str(copy_shop(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "create_order" in result.stdout
    assert "collections" in result.stdout


def test_envs_show_python_env_lists_state_properties() -> None:
    kinds = {name: load_env(name).spec.implementation.kind for name in bundled_env_names()}
    python_envs = [name for name, kind in kinds.items() if kind == "python"]
    if not python_envs:
        pytest.skip("no bundled python-toolkit environment")
    details = json.loads(invoke("envs", "show", python_envs[0], "--json").stdout)
    assert details["collections"] is None
    assert details["state_properties"]


def test_unknown_environment_is_a_one_line_error_without_traceback() -> None:
    result = invoke("envs", "show", "no_such_env")
    assert result.exit_code == 1
    no_traceback(result)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no environment at no_such_env")


# -- envs validate ------------------------------------------------------------------------------------------


def test_validate_bundled_shop_succeeds_with_hash_and_counts() -> None:
    path = bundled_envs_root() / "shop" / "env.json"
    result = invoke("envs", "validate", str(path))
    assert result.exit_code == 0, result.output
    spec = load_env("shop").spec
    assert result.stdout.startswith("OK ")
    assert spec.content_hash in result.stdout
    assert f"{len(spec.tools)} tools" in result.stdout
    assert "seed default" in result.stdout


def test_validate_json_reports_ok_and_counts(tmp_path: Path) -> None:
    result = invoke("envs", "validate", str(copy_shop(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    spec = load_env("shop").spec
    assert report["ok"] is True
    assert report["content_hash"] == spec.content_hash
    assert report["tools"] == len(spec.tools)
    assert report["seeds"]["default"]["products"] >= 1


def test_validate_sealed_spec_json(tmp_path: Path) -> None:
    env = load_env("shop")
    directory = tmp_path / "sealed"
    shutil.copytree(bundled_envs_root() / "shop" / "seeds", directory / "seeds")
    (directory / "spec.json").write_bytes(env.spec.to_json_bytes())
    result = invoke("envs", "validate", str(directory / "spec.json"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["content_hash"] == env.spec.content_hash


def test_validate_reports_an_operation_on_an_unknown_collection(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)

    def break_it(data: dict[str, Any]) -> None:
        data["tools"][0]["operation"]["collection"] = "warehouses"

    edit_json(shop / "env.json", break_it)
    tool = json.loads((shop / "env.json").read_text(encoding="utf-8"))["tools"][0]["name"]
    result = invoke("envs", "validate", str(shop / "env.json"))
    assert result.exit_code == 1
    no_traceback(result)
    assert "unknown collection 'warehouses'" in result.stderr
    assert tool in result.stderr
    assert result.stderr.startswith("error: ")


def test_validate_json_lists_every_problem(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)

    def break_twice(data: dict[str, Any]) -> None:
        data["tools"][0]["operation"]["collection"] = "warehouses"
        data["tools"][1]["operation"]["collection"] = "depots"

    edit_json(shop / "env.json", break_twice)
    result = invoke("envs", "validate", str(shop), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    problems = report["problems"]
    assert any("'warehouses'" in p for p in problems)
    assert any("'depots'" in p for p in problems)


def test_validate_reports_schema_violations_of_the_source(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)

    def break_it(data: dict[str, Any]) -> None:
        data["meta"]["name"] = "Not A Valid Name"
        data["tools"][0]["operation"]["kind"] = "teleport"

    edit_json(shop / "env.json", break_it)
    result = invoke("envs", "validate", str(shop), "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert any(p.startswith("meta.name") for p in problems)
    assert any("operation.kind" in p for p in problems)


def test_validate_reports_a_bad_seed_state(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)

    def break_seed(data: dict[str, Any]) -> None:
        product = next(iter(data["collections"]["products"].values()))
        product["stock"] = -5

    edit_json(shop / "seeds" / "default.json", break_seed)
    result = invoke("envs", "validate", str(shop))
    assert result.exit_code == 1
    no_traceback(result)
    assert "seeds/default.json" in result.stderr


def test_validate_malformed_json_is_a_clear_error(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)
    (shop / "env.json").write_text('{"format": "envfactory.declarative", "meta": ', encoding="utf-8")
    result = invoke("envs", "validate", str(shop / "env.json"))
    assert result.exit_code == 1
    no_traceback(result)
    assert "not valid JSON" in result.stderr
    assert "env.json" in result.stderr


@pytest.mark.parametrize("content", ["[]", '{"format": "something.else"}', '"a string"'])
def test_validate_json_that_is_not_an_environment(tmp_path: Path, content: str) -> None:
    path = tmp_path / "env.json"
    path.write_text(content, encoding="utf-8")
    result = invoke("envs", "validate", str(path))
    assert result.exit_code == 1
    no_traceback(result)
    assert str(path) in result.stderr


def test_validate_missing_path(tmp_path: Path) -> None:
    result = invoke("envs", "validate", str(tmp_path / "nowhere.json"))
    assert result.exit_code == 1
    no_traceback(result)
    assert "no such file or directory" in result.stderr


def test_validate_directory_without_environment(tmp_path: Path) -> None:
    result = invoke("envs", "validate", str(tmp_path))
    assert result.exit_code == 1
    no_traceback(result)
    assert "no such file" in result.stderr


# -- demo -------------------------------------------------------------------------------------------------


def run_demo(workspace: Path, *extra: str) -> tuple[Any, Path]:
    result = invoke("demo", "--workspace", str(workspace), *extra)
    runs = sorted((workspace / "runs").iterdir()) if (workspace / "runs").is_dir() else []
    assert len(runs) == 1, result.output
    return result, runs[0]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_completes_and_writes_the_run_directory(tmp_path: Path) -> None:
    result, run_dir = run_demo(tmp_path / "ws", "--seed", "5")
    assert result.exit_code == 0, result.output
    manifest = RunManifest.model_validate_json((run_dir / "manifest.json").read_bytes())
    assert manifest.run_id == run_dir.name
    assert manifest.seeds == {"demo": 5}
    assert manifest.created_at == "2026-01-01T00:00:05Z"
    assert manifest.config["envs"] == bundled_env_names()
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert [e["env"] for e in episodes] == bundled_env_names()
    for episode in episodes:
        assert episode["calls"] > 300
        assert episode["ok"] > 0
        assert episode["ok"] + sum(episode["errors"].values()) == episode["calls"]
        assert episode["errors"].get("unknown_tool") == 1
        assert episode["checks"] and all(episode["checks"].values()), episode["checks"]
        calls = read_jsonl(run_dir / "calls" / f"{episode['env']}.jsonl")
        assert len(calls) == episode["calls"]
        assert sum(1 for c in calls if c["result"]["error"] is None) == episode["ok"]
    assert "demo summary" in result.stdout
    for name in bundled_env_names():
        assert name in result.stdout
    stages = {record["stage"]: record for record in read_jsonl(run_dir / "stages.jsonl")}
    assert list(stages) == ["sandbox", "rewards", "serving", "catalog", "envgen", "graph", "model"]
    # CI installs every optional part, so every stage must run and pass (none skipped).
    assert {name: r["status"] for name, r in stages.items()} == dict.fromkeys(stages, "ok"), stages
    assert stages["rewards"]["totals"]["gold"] == 1.0 and stages["rewards"]["totals"]["no_op"] == 0.0
    assert stages["sandbox"]["mismatches"] == 0
    envgen = stages["envgen"]
    assert envgen["ses"]["verified"] and envgen["ses"]["differential"][0] == envgen["ses"]["differential"][1] > 0
    assert envgen["reverified"] and all(envgen["reverified"].values())


def test_demo_is_deterministic(tmp_path: Path) -> None:
    _, first = run_demo(tmp_path / "one", "--seed", "11", "--calls", "120", "--no-stages")
    _, second = run_demo(tmp_path / "two", "--seed", "11", "--calls", "120", "--no-stages")
    assert first.name == second.name
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_demo_seed_changes_the_episodes(tmp_path: Path) -> None:
    _, first = run_demo(tmp_path / "one", "--seed", "1", "--calls", "60", "--env", "shop", "--no-stages")
    _, second = run_demo(tmp_path / "two", "--seed", "2", "--calls", "60", "--env", "shop", "--no-stages")
    assert first.name != second.name
    a, b = read_jsonl(first / "episodes.jsonl")[0], read_jsonl(second / "episodes.jsonl")[0]
    assert a["log_hash"] != b["log_hash"]


def test_demo_rerun_in_the_same_workspace_reproduces_the_run(tmp_path: Path) -> None:
    _, run_dir = run_demo(tmp_path, "--calls", "40", "--env", "shop", "--no-stages")
    before = (run_dir / "episodes.jsonl").read_bytes()
    _, again = run_demo(tmp_path, "--calls", "40", "--env", "shop", "--no-stages")
    assert again == run_dir
    assert (again / "episodes.jsonl").read_bytes() == before


def test_demo_is_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    outputs = []
    for hash_seed in ("0", "4242"):
        workspace = tmp_path / f"ws{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "envfactory", "demo", "-w", str(workspace), "--seed", "3", "--calls", "80"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (run_dir,) = (workspace / "runs").iterdir()
        outputs.append({p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]


def test_demo_workspace_from_environment_variable(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--calls", "10", "--env", "shop", "--no-stages"],
                           env={"ENVFACTORY_WORKSPACE": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_demo_unknown_env_is_an_error(tmp_path: Path) -> None:
    result = invoke("demo", "--workspace", str(tmp_path), "--env", "nope")
    assert result.exit_code == 1
    no_traceback(result)
    assert "unknown bundled environment(s) nope" in result.stderr
    assert not (tmp_path / "runs").exists()
