"""`envfactory view`: refuses a non-loopback host without a token, refuses a missing workspace, serves a
workspace on loopback (started as a real process), and migrates a workspace an older version laid out
(or refuses it, naming both places, when a folder's new place is taken)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner
from viewer_helpers import fetch

from envfactory.cli._migrate import migrate_workspace
from envfactory.cli.app import app
from envfactory.runtime import library_root
from envfactory.store import Workspace
from envfactory.viewer.workspace import WorkspaceData


def test_refuses_a_public_host_without_a_token(workspace: Workspace) -> None:
    result = CliRunner().invoke(app, ["view", "--workspace", str(workspace.root), "--host", "0.0.0.0"],
                                env={"ENVFACTORY_VIEW_TOKEN": ""})
    assert result.exit_code == 1
    assert "without a token" in result.output


def test_refuses_a_missing_workspace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["view", "--workspace", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "no such workspace directory" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serves_a_workspace(workspace: Workspace) -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "envfactory", "view", "--workspace", str(workspace.root),
                                "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = fetch(f"http://127.0.0.1:{port}/runs")
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the viewer did not start"
                time.sleep(0.2)
        assert reply.status == 200 and "synth-1" in reply.body
        assert fetch(f"http://127.0.0.1:{port}/runs", method="DELETE").status == 405
    finally:
        process.terminate()
        process.wait(timeout=30)


def _legacy_workspace(root: Path) -> Workspace:
    """A workspace as an older version left it: a library build in `builds/demo/`, `library reproduce`'s
    scratch in `builds/reproduce/` and the graph in `graph/`."""
    workspace = Workspace(root).ensure()
    build = root / "builds" / "demo"
    shutil.copytree(library_root() / "vault", build / "envs" / "vault")
    (build / "config.json").write_text("{}")  # every `library build` wrote its config; a reproduction did not
    shutil.copy(library_root() / "funnel.json", build / "funnel.json")
    shutil.copytree(library_root() / "books", root / "builds" / "reproduce" / "envs" / "books")
    (root / "graph").mkdir()
    (root / "graph" / "graph.json").write_bytes(b'{"format": "envfactory.tool-graph"}')
    return workspace


def test_the_viewer_reads_the_run_layout_only_and_view_migrates_an_older_one(tmp_path: Path) -> None:
    workspace = _legacy_workspace(tmp_path / "ws")
    data = WorkspaceData(workspace.root)
    assert [s.key for s in data.env_sources()] == ["library", "workspace"]  # builds/ and graph/ are not read
    assert data.data_files(("graph.json", "*/graph.json")) == []

    moved = migrate_workspace(workspace)

    assert len(moved) == 3
    assert not (tmp_path / "ws" / "builds").exists() and not (tmp_path / "ws" / "graph").exists()
    runs = tmp_path / "ws" / "runs"
    assert (runs / "library-demo" / "library" / "build" / "envs" / "vault" / "spec.json").is_file()
    assert (runs / "reproduce-library" / "library" / "build" / "envs" / "books" / "spec.json").is_file()
    assert (runs / "graph-build" / "graph" / "graph.json").is_file()
    data = WorkspaceData(workspace.root)
    assert {s.key for s in data.env_sources()} >= {"build-run-library-demo", "build-run-reproduce-library"}
    assert [f.key for f in data.data_files(("graph.json", "*/graph.json"))] == ["runs/graph-build/graph/graph.json"]
    assert migrate_workspace(workspace) == []  # nothing left to move


def test_view_refuses_a_legacy_build_whose_new_place_is_taken(tmp_path: Path) -> None:
    workspace = _legacy_workspace(tmp_path / "ws")
    taken = tmp_path / "ws" / "runs" / "library-demo" / "library" / "build"
    taken.mkdir(parents=True)
    (taken / "config.json").write_text("{}")
    # a public host without a token: were the migration not refused, the command would stop there, not serve
    result = CliRunner().invoke(app, ["view", "--workspace", str(workspace.root), "--host", "0.0.0.0"],
                                env={"ENVFACTORY_VIEW_TOKEN": ""})
    assert result.exit_code == 1
    assert "builds/demo" in result.output and "both hold a build" in result.output
    assert (tmp_path / "ws" / "builds" / "demo" / "config.json").is_file()  # nothing half moved
