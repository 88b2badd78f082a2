"""`envfactory library build | export | reproduce` end to end over the user's catalog, on one small
domain, with seed realism answered by a replay of recorded model answers: the answers the bundled Qwen
0.5B gave when the generation-1 library (shipped until 2026-12-07) was built, kept in
`tests/fixtures/library-gen1-llm-cassette.jsonl` since the generation-2 library ships without seed
realism (no model runs here)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from envfactory.build.library import LLM_CASSETTE
from envfactory.cli.app import app
from envfactory.resources import Catalog
from envfactory.spec import BuildRecord, StageManifest
from envfactory.spec.pipeline import LibrarySelection

GEN1_CASSETTE = Path(__file__).resolve().parents[1] / "fixtures" / "library-gen1-llm-cassette.jsonl"
CONFIG = {"name": "tiny", "domains": ["lifestyle"], "proposals_per_domain": 6, "accept_per_domain": 2,
          "fuzz_calls": 20, "differential": False, "contamination_check": False, "seed_realism": True,
          "prefer_new_providers": True}


def test_build_export_and_reproduce_with_recorded_model_answers(full_catalog: Catalog, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(CONFIG))
    workspace = tmp_path / "ws"
    replay = f"replay:{GEN1_CASSETTE}"
    runner = CliRunner()
    built = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--llm", replay])
    assert built.exit_code == 0, built.output
    assert "accepted per domain: lifestyle 2" in built.output
    assert "per verified environment:" in built.output and "LLM tokens" in built.output
    root = workspace / "runs" / "library-tiny" / "library" / "build"
    selection = LibrarySelection.model_validate_json((root.parent / "library.json").read_bytes())
    assert [e.name for e in selection.envs] == sorted(p.name for p in (root / "envs").iterdir())
    assert StageManifest.model_validate_json((root.parent / "manifest.json").read_bytes()).status == "complete"
    envs = sorted((root / "envs").iterdir())
    assert len(envs) == 2
    for env_dir in envs:
        realism = BuildRecord.model_validate_json((env_dir / "build.json").read_bytes()).seed_realism
        assert realism is not None and realism.requests >= 1 and realism.accepted >= 1 and not realism.failures
    recorded = (root / LLM_CASSETTE).read_text().splitlines()
    assert recorded and all(json.loads(line)["model"].startswith("local/qwen2.5-coder-0.5b") for line in recorded)

    again = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--llm", replay])
    assert again.exit_code != 0 and "--resume" in again.output  # a finished build is never overwritten
    resumed = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--llm", replay,
                                  "--resume"])
    assert resumed.exit_code == 0, resumed.output

    library = tmp_path / "library"
    exported = runner.invoke(app, ["library", "publish", "--from", str(root), "--to", str(library)])
    assert exported.exit_code == 0, exported.output
    assert (library / LLM_CASSETTE).is_file()
    reproduced = runner.invoke(app, ["library", "reproduce", "--library", str(library), "-w", str(workspace)])
    assert reproduced.exit_code == 0, reproduced.output
    assert "all 2 environment(s) reproduced" in reproduced.output
    scratch = workspace / "runs" / "reproduce-library" / "library" / "build"
    assert sorted(p.name for p in (scratch / "envs").iterdir()) == sorted(p.name for p in (root / "envs").iterdir())
    assert not (workspace / "builds").exists()

    unknown = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--domain", "space"])
    assert unknown.exit_code != 0 and "not in the config's domains" in unknown.output


def test_a_build_in_the_old_builds_layout_is_moved_to_the_stage_layout_and_resumed(
        full_catalog: Catalog, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**CONFIG, "seed_realism": False, "accept_per_domain": 1}))
    workspace = tmp_path / "ws"
    runner = CliRunner()
    built = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace)])
    assert built.exit_code == 0, built.output
    new = workspace / "runs" / "library-tiny" / "library" / "build"
    before = {str(p.relative_to(new)): p.read_bytes() for p in sorted(new.rglob("*"))
              if p.is_file() and p.name != "timings.json"}
    (workspace / "builds").mkdir()
    new.rename(workspace / "builds" / "tiny")  # what an older version left
    resumed = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "moved the build an earlier version kept in builds/tiny/" in resumed.output
    assert not (workspace / "builds").exists()
    assert {str(p.relative_to(new)): p.read_bytes() for p in sorted(new.rglob("*"))
            if p.is_file() and p.name != "timings.json"} == before
    (workspace / "builds" / "tiny").mkdir(parents=True)
    (workspace / "builds" / "tiny" / "config.json").write_text("{}")
    both = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(workspace), "--resume"])
    assert both.exit_code != 0 and "both hold a build" in both.output
