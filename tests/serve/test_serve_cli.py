"""`envfactory serve`: what it refuses before serving (each with a message naming the problem), and
the HTTP server it starts (bound where asked, closing its sessions when interrupted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serve_helpers import TOKEN, ServerProcess
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.cli.serve import _initial_states
from envfactory.errors import SpecError
from envfactory.runtime import load_env, open_session
from envfactory.serve.client import EnvClient
from envfactory.serve.errors import RemoteError

runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    ([], "choose what to serve: --mcp stdio, --mcp http, or --http"),
    (["--mcp", "stdio", "--http", "--env", "shop"], "--mcp stdio talks over stdin/stdout"),
    (["--mcp", "stdio"], "--mcp needs at least one --env"),
    (["--http", "--state", "x.json"], "--state sets the initial state of MCP sessions"),
    (["--http", "--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without a bearer token"),
    (["--http", "--token", "short"], "at least 16 characters"),
    (["--http", "--env", "zoo"], "no environment at zoo"),
    (["--http", "--max-sessions", "0"], "max_sessions must be at least 1"),
])
def test_refusals(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["serve", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert message in " ".join(result.output.split()), result.output


def test_bad_state_fails_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"collections": {"customers": 3}}), encoding="utf-8")
    for transport in ("stdio", "http"):
        result = runner.invoke(app, ["serve", "--env", "shop", "--state", str(state), "--mcp", transport])
        assert result.exit_code == 1, result.output
        assert "customers" in result.output and "Traceback" not in result.output


def test_token_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--http", "--host", "0.0.0.0", "--token-file", str(empty)])
    assert result.exit_code == 1 and "the token file is empty" in result.output


def test_state_file_forms(tmp_path: Path) -> None:
    shop = load_env("shop")
    state = shop.default_state()
    plain = tmp_path / "state.json"
    plain.write_text(json.dumps(state), encoding="utf-8")
    assert _initial_states(plain, ["shop"]) == ({"shop": state}, {})
    snapshot = open_session(shop, state).snapshot()
    saved = tmp_path / "snapshot.json"
    saved.write_text(snapshot.model_dump_json(), encoding="utf-8")
    assert _initial_states(saved, ["shop"]) == ({}, {"shop": snapshot})
    mapping = tmp_path / "both.json"
    mapping.write_text(json.dumps({"shop": state}), encoding="utf-8")
    assert _initial_states(mapping, ["shop", "tracker"]) == ({"shop": state}, {})
    with pytest.raises(SpecError, match="must map environment names"):
        _initial_states(plain, ["shop", "tracker"])


@pytest.mark.slow
def test_http_server_with_a_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    with ServerProcess("--http", "--env", "shop", "--env", "tracker", "--token-file", str(token_file),
                       log_dir=tmp_path) as server:
        with EnvClient(server.url) as anonymous, pytest.raises(RemoteError) as excinfo:
            anonymous.sessions()
        assert excinfo.value.status == 401
        with EnvClient(server.url, token=TOKEN) as client:
            assert [env.name for env in client.envs().envs] == ["shop", "tracker"]
            session = client.create_session(envs=["shop", "tracker"])
            assert session.call("tracker__list_users", {}).ok
            assert client.health().sessions == 1
        assert server.stop() != -9  # interrupted: shuts down by itself, closing the open session
    log = server.log.read_text(encoding="utf-8")
    assert "listening on http://127.0.0.1:" in log and "Traceback" not in log
