"""`eval run --user-llm`: the τ² user simulator on its own model. Both models here replay the recorded
0.5B baseline cassette (answers are keyed by request, so the user's requests find their recorded answers
whichever client sends them); the run is named and recorded with the user's model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.spec import content_hash

FIXTURES = Path(__file__).parent / "fixtures"

pytest.importorskip("tau2")


@pytest.mark.slow
def test_user_llm_names_the_run_and_the_manifest_and_drives_the_simulator(tmp_path: Path) -> None:
    cassette = tmp_path / "baseline.jsonl"
    cassette.write_bytes(gzip.decompress((FIXTURES / "baseline-qwen0.5b-seed0.jsonl.gz").read_bytes()))
    args = ["eval", "run", "--suite", "tau2_airline", "--tasks", "3", "--llm", f"replay:{cassette}",
            "-w", str(tmp_path / "ws"), "--json"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0, plain.output
    with_user = CliRunner().invoke(app, [*args, "--user-llm", f"replay:{cassette}", "--user-model", "user-sim"])
    assert with_user.exit_code == 0, with_user.output
    runs = tmp_path / "ws" / "runs"
    plain_id = next(p.name for p in runs.iterdir() if "-user-" not in p.name)
    user_id = next(p.name for p in runs.iterdir() if "-user-" in p.name)
    manifest = json.loads((runs / user_id / "manifest.json").read_text())
    assert user_id == f"{plain_id}-user-{content_hash(manifest['config']['user_model'])[:8]}"
    assert "user_model" not in json.loads(
        (runs / plain_id / "manifest.json").read_text())["config"]
    first, second = (json.loads((runs / r / "report.json").read_text()) for r in (plain_id, user_id))
    # the same recorded answers, so the same verdicts (tau2 airline 10 and 48 pass, 35 fails)
    assert second["overall"]["pass_at_1"] == first["overall"]["pass_at_1"]
    assert round(first["overall"]["pass_at_1"], 4) == 0.6667
