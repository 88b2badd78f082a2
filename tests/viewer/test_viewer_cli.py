"""`envfactory view`: refuses a non-loopback host without a token, refuses a missing workspace, and
serves a workspace on loopback (started as a real process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from typer.testing import CliRunner
from viewer_helpers import fetch

from envfactory.cli.app import app
from envfactory.store import Workspace


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
