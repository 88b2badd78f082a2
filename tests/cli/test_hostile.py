"""The CLI on hostile text (issue 17, deliverable 5).

An environment whose description, policy, tool and parameter descriptions and seed records carry Rich
markup (`[/]`, `[bold]`, `[link=...]`), emoji codes and terminal control sequences (CSI, OSC with BEL,
C1 CSI, backspace, NUL), and an OpenAPI document carrying the same, are run through every CLI command
that renders environment or catalog text. Each must finish without a traceback, print no control
character (Rich adds no colour when the output is not a terminal, so any escape byte would be the
data's) and show the markup as text. `serve --state` must refuse directories, devices, FIFOs and
oversized files, saying so.

`test_every_command_is_covered_or_exempt` walks the command tree: each command is either run here or
named in `EXEMPT` with the reason it is not (a model, a trainer or a long build), so a new command must
be classified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.runtime.loader import bundled_envs_root

HOSTILE = ("[/] [bold]b[/bold] [link=file:///etc/passwd]l[/link] :smile: \x1b[31mred\x1b[0m "
           "\x1b]0;pwned\x07 \x9b2J back\x08space nul\x00 [/]")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

EXEMPT = {
    "demo": "runs the bundled environments only; no outside text",
    "run": "a whole pipeline from a run config (minutes); its stages' text goes through the same consoles",
    "view": "a long-running web server; the viewer escapes its own HTML",
    "llm info": "prints installed libraries and model files, no environment text",
    "llm chat": "needs the bundled model",
    "llm serve": "a long-running model server",
    "llm setup-static": "distils an embedding model (minutes)",
    "graph eval": "scores the committed label set with the embedding model",
    "eval run": "needs the bundled model",
    "library build": "a library build (minutes, the model for authoring)",
    "library export": "copies a finished build directory",
    "library reproduce": "rebuilds the shipped library (minutes)",
    "build propose": "proposals from the resource catalog cache (downloads)",
    "build compile": "compiles a catalog service (downloads)",
    "synth trajectories": "needs the bundled model",
    "synth tasks": "runs the synthesis stage (minutes); its text goes through the same consoles",
    "dataset export": "needs a finished synthesis run",
    "dataset validate": "needs an exported dataset",
    "train convert": "needs an exported dataset",
    "train tiny-model": "builds a model",
    "train demo-data": "writes a training set from bundled data",
    "train sft": "trains a model",
    "train grpo": "trains a model",
    "train verl-config": "writes a trainer config, no environment text",
    "train plot": "needs training logs",
    "train schema-check": "checks trainer schemas, no environment text",
    "resources setup": "downloads catalog sources",
}

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def assert_clean(result: Any, *, ok: bool = True) -> str:
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if ok:
        assert result.exit_code == 0, output
    bad = sorted({f"{ord(c):#04x}" for c in CONTROL.findall(output)})
    assert not bad, f"control characters {bad} reached the terminal:\n{output!r}"[:3000]
    return str(output)


def _poison(value: Any) -> Any:
    """Every string of `value` (descriptions, names in seed records) with the hostile text appended."""
    if isinstance(value, dict):
        return {k: (_poison(v) if k in ("description", "policy", "name", "title", "summary") or
                    isinstance(v, dict | list) else v) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(item) for item in value]
    if isinstance(value, str):
        return value + " " + HOSTILE
    return value


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("envs") / "shop"
    shutil.copytree(bundled_envs_root() / "shop", target)
    spec = json.loads((target / "env.json").read_text(encoding="utf-8"))
    spec["meta"]["description"] += HOSTILE
    spec["meta"]["policy"] = HOSTILE
    for tool in spec["tools"]:
        tool["description"] += " " + HOSTILE
        for prop in tool["input_schema"].get("properties", {}).values():
            prop["description"] = prop.get("description", "") + " " + HOSTILE
    (target / "env.json").write_text(json.dumps(spec), encoding="utf-8")
    seed = target / "seeds" / "default.json"
    data = json.loads(seed.read_text(encoding="utf-8"))
    for record in data.get("customers", {}).values():
        record["name"] = record["name"] + " " + HOSTILE
    seed.write_text(json.dumps(data), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def hostile_openapi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": f"Hostile {HOSTILE}", "version": "1.0", "description": HOSTILE},
        "paths": {"/widgets/{id}": {"get": {
            "operationId": "getWidget", "summary": f"Get a widget {HOSTILE}", "description": HOSTILE,
            "parameters": [{"name": "id", "in": "path", "required": True, "description": HOSTILE,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": HOSTILE, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"id": {"type": "string", "description": HOSTILE}}}}}}},
        }}},
    }
    path = tmp_path_factory.mktemp("openapi") / "hostile.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_envs_commands_escape_and_strip(hostile_env: Path) -> None:
    shown = assert_clean(invoke("envs", "show", str(hostile_env)))
    assert "[/] [bold]b[/bold]" in shown and "[link=file:///etc/passwd]" in shown and ":smile:" in shown
    assert "[31mred" in shown  # the sequence's text survives, inert, without its ESC
    assert json.loads(assert_clean(invoke("envs", "show", str(hostile_env), "--json")))["policy"] == HOSTILE
    assert_clean(invoke("envs", "validate", str(hostile_env)))
    assert_clean(invoke("envs", "verify", str(hostile_env)), ok=False)  # a verdict either way, never a crash
    assert_clean(invoke("envs", "list"))
    assert_clean(invoke("schema"))


def test_resources_commands_escape_and_strip(hostile_openapi: Path, tmp_path: Path) -> None:
    common = ["--openapi", str(hostile_openapi), "--no-defaults", "--cache-dir", str(tmp_path / "cache")]
    listed = assert_clean(invoke("resources", "list", *common))
    assert "Hostile [/]" in listed
    found = assert_clean(invoke("resources", "search", "widget", *common))
    assert "[/]" in found
    services = json.loads(assert_clean(invoke("resources", "list", "--json", *common)))
    service = services[0]["id"] if isinstance(services, list) else services["services"][0]["id"]
    assert "[/]" in assert_clean(invoke("resources", "show", service, *common))


def test_graph_and_contamination_commands_escape_and_strip(hostile_env: Path, tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    assert_clean(invoke("graph", "build", "--env", str(hostile_env), "--out", str(graph)))
    assert_clean(invoke("graph", "stats", "--graph", str(graph), "--samples", "50"))
    assert_clean(invoke("graph", "sample", "--graph", str(graph), "--count", "3"))
    assert_clean(invoke("graph", "show", "--graph", str(graph), "--out", str(tmp_path / "graph.svg")))
    assert_clean(invoke("eval", "contamination", "--env", str(hostile_env), "--embedder", "none"), ok=False)


def test_serve_state_accepts_only_small_regular_files(tmp_path: Path, hostile_env: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(65 * 1024 * 1024)  # sparse: 65 MiB of size, no disk
    for path, words in [(tmp_path, "is a directory"), (Path("/dev/zero"), "not a regular file"),
                        (fifo, "not a regular file"), (big, "may have at most"), (tmp_path / "missing.json", "no such file")]:
        result = invoke("serve", "--mcp", "stdio", "--env", str(hostile_env), "--state", str(path))
        output = assert_clean(result, ok=False)
        assert result.exit_code == 1 and words in output, output


def _leaves(command: Any, prefix: list[str], ctx: Any) -> list[str]:
    if hasattr(command, "list_commands"):
        return [leaf for name in command.list_commands(ctx)
                for leaf in _leaves(command.get_command(ctx, name), [*prefix, name], ctx)]
    return [" ".join(prefix)]


RUN_HERE = {"envs show", "envs validate", "envs verify", "envs list", "schema", "resources list", "resources search",
            "resources show", "graph build", "graph stats", "graph sample", "graph show", "eval contamination",
            "serve"}


def test_every_command_is_covered_or_exempt() -> None:
    root = typer.main.get_command(app)
    commands = set(_leaves(root, [], root.make_context("envfactory", [], resilient_parsing=True)))
    unclassified = commands - RUN_HERE - set(EXEMPT)
    assert not unclassified, f"classify these commands in tests/cli/test_hostile.py: {sorted(unclassified)}"
    assert not (RUN_HERE | set(EXEMPT)) - commands, "commands that no longer exist"
