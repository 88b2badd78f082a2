"""`envfactory envs verify`: writes a canonical report.json, reports unchanged evidence on a re-run,
runs DIR/scenarios.json, exits 1 on a rejected verdict or (with --check) on changed evidence. Hand-made
scenarios on the library fixture; no LLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.spec import ScenarioStep, ScenarioTest, VerificationReport, dump_scenarios

LIBRARY = Path(__file__).parents[1] / "fixtures" / "envs" / "library"
runner = CliRunner()


def test_verify_writes_the_report_and_a_rerun_is_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "library"
    shutil.copytree(LIBRARY, target)
    first = runner.invoke(app, ["envs", "verify", str(target), "--fuzz-calls", "40"])
    assert first.exit_code == 0, first.output
    assert "VERIFIED" in first.output
    written = (target / "report.json").read_bytes()
    report = VerificationReport.model_validate_json(written)
    assert report.verdict == "verified" and report.evidence_digest == report.compute_digest()
    again = runner.invoke(app, ["envs", "verify", str(target), "--fuzz-calls", "40", "--json"])
    assert again.exit_code == 0
    payload = json.loads(again.output)
    assert payload["changed"] is False and payload["previous_digest"] == report.evidence_digest
    assert (target / "report.json").read_bytes() == written  # byte-identical: no timings, same evidence
    changed = runner.invoke(app, ["envs", "verify", str(target), "--fuzz-calls", "41", "--check"])
    assert changed.exit_code == 1 and "changed" in changed.output
    assert (target / "report.json").read_bytes() == written  # --check never writes


def test_scenarios_json_is_run_and_a_rejection_exits_1_naming_the_tool(tmp_path: Path) -> None:
    target = tmp_path / "library"
    shutil.copytree(LIBRARY, target)
    wrong = ScenarioTest(
        id="copies", title="an oracle the env disagrees with", oracle="spec_example", source="hand-written test",
        initial_state=None,
        steps=[ScenarioStep(tool="add_book", arguments={"isbn": "9780000000031", "title": "Kim", "copies": 1},
                            expect_output={"copies": 2})],
    )
    (target / "scenarios.json").write_bytes(dump_scenarios([wrong]))
    result = runner.invoke(app, ["envs", "verify", str(target), "--fuzz-calls", "20", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["verdict"] == "rejected" and payload["failing_tools"] == ["add_book"]
    assert payload["scenarios_by_oracle"] == {"spec_example": {"passed": 0, "total": 1}}


def test_bundled_names_verify_without_writing() -> None:
    result = runner.invoke(app, ["envs", "verify", "tracker", "--fuzz-calls", "40"])
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output
