"""`envfactory build propose|compile` over the user's catalog (no LLM)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.resources import Catalog
from envfactory.runtime import load_env
from envfactory.spec import BuildRecord, ProposalBatch


def test_compile_writes_a_loadable_env_dir_with_its_build_record(full_catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "tasks"
    result = CliRunner().invoke(app, ["build", "compile", "google:tasks", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "tasks_tasks_insert" in result.output and "dropped tasks.tasks.move" in result.output
    env = load_env(out)
    record = BuildRecord.model_validate_json((out / "build.json").read_bytes())
    assert record.spec_hash == env.spec.content_hash and len(record.compiled) == len(env.spec.tools) == 12
    assert record.kept_ratio == round(12 / 14, 4)


def test_propose_json_lists_proposals_and_skips(full_catalog: Catalog) -> None:
    result = CliRunner().invoke(app, ["build", "propose", "--domain", "travel", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    batch = ProposalBatch.model_validate(json.loads(result.output))
    assert len(batch.proposals) == 3 and all(p.domain == "travel" for p in batch.proposals)
    assert batch.skipped


def test_unknown_domain_is_an_error(full_catalog: Catalog) -> None:
    result = CliRunner().invoke(app, ["build", "propose", "--domain", "space"])
    assert result.exit_code == 1 and "unknown domain space" in result.output
