"""`envfactory run` with a library it builds itself (`stages.library.source = build`): the build runs in
the run's `library/build/` with the CLI's wiring, its accepted environments become the run's
environments, and the graph stage reads them from the run directory. The catalog is a small one over
real packages (AWS SQS and SES from botocore, Google Tasks) instead of the user's full catalog, which takes minutes to
propose over; model-free (no seed realism), so no model runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envfactory.cli.run import execute, load_run_config
from envfactory.spec.pipeline import GraphSummary, LibrarySelection
from envfactory.store import Workspace

# the config of tests/build/test_library.py over the same small catalog (it accepts at least 3)
LIBRARY = {"name": "small", "domains": ["utilities", "office"], "proposals_per_domain": 8, "accept_per_domain": 3,
           "fuzz_calls": 40, "differential": False, "contamination_check": False}


@pytest.mark.slow
def test_a_run_builds_its_library_and_graphs_its_environments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envfactory.resources import AwsSource, Catalog, GoogleSource

    def small_catalog(*_args: object) -> Catalog:
        catalog = Catalog([AwsSource(["sqs", "ses"]), GoogleSource(["tasks"])], tmp_path / "catalog")
        catalog.refresh()
        return catalog

    monkeypatch.setattr("envfactory.cli.library.open_catalog", small_catalog)
    (tmp_path / "library.json").write_text(json.dumps(LIBRARY))
    (tmp_path / "run.json").write_text(json.dumps({
        "name": "built", "executor": {"kind": "serial"},
        "stages": {"library": {"source": "build", "config": "library.json"}, "synth_tasks": {"enabled": False},
                   "synth_trajectories": {"enabled": False}, "export": {"enabled": False}},
    }))
    summary = execute(load_run_config(tmp_path / "run.json"), Workspace(tmp_path / "ws"))
    assert [r.status for r in summary.stages[:2]] == ["complete", "complete"], summary.stages
    run_dir = tmp_path / "ws" / "runs" / summary.run_id
    selection = LibrarySelection.model_validate_json((run_dir / "library" / "library.json").read_bytes())
    assert selection.source == "build" and len(selection.envs) >= 3
    for env in selection.envs:
        assert env.path.startswith("library/build/envs/") and (run_dir / env.path / "spec.json").is_file()
    graphs = GraphSummary.model_validate_json((run_dir / "graph" / "summary.json").read_bytes())
    assert sorted(graphs.graphs) == sorted(e.name for e in selection.envs)
