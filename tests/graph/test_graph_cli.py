"""`envfactory graph build|stats|show|sample|eval`: outputs, files, and clean errors (exit 1, a red
line, no traceback) on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.graph import load_graph
from envfactory.resources import default_sources
from envfactory.spec import StageManifest
from envfactory.store import StageDir, Workspace

runner = CliRunner()


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_build_stats_show_sample(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    built = invoke("graph", "build", "-w", ws, "--json")
    assert built.exit_code == 0, built.output
    info = json.loads(built.output)
    stage = tmp_path / "ws" / "runs" / "graph-build" / "graph"
    assert Path(info["path"]) == stage / "graph.json"
    graph = load_graph(Path(info["path"]))
    assert info["info"]["tools"] == len(graph.tools()) == 41
    assert StageDir.open(Workspace(tmp_path / "ws"), "graph-build", "graph").is_complete()
    manifest = StageManifest.model_validate_json((stage / "manifest.json").read_bytes())
    assert manifest.counts["tools"] == 41 and manifest.config["embed"] is False
    assert not (tmp_path / "ws" / "graph").exists()

    stats = invoke("graph", "stats", "-w", ws, "-n", "300", "--json")
    assert stats.exit_code == 0, stats.output
    figures = json.loads(stats.output)
    assert figures["topology"]["valid_rate"] == 1.0 and figures["coverage"] >= 0.9
    saved = json.loads((stage / "stats.json").read_text())
    assert saved["topology"] == figures["topology"]
    text = invoke("graph", "stats", "-w", ws, "-n", "200")
    assert "coverage" in text.output and "random walk" in text.output

    for name in ("all.svg", "all.html"):
        shown = invoke("graph", "show", "-w", ws, "-o", str(tmp_path / name))
        assert shown.exit_code == 0 and (tmp_path / name).stat().st_size > 1000
    one = invoke("graph", "show", "-w", ws, "-t", "shop__pay_order", "-o", str(tmp_path / "pay.svg"))
    assert one.exit_code == 0 and "shop__create_order" in (tmp_path / "pay.svg").read_text()
    for name, extra in (("all.png", ()), ("pay.png", ("-t", "shop__pay_order"))):
        drawn = invoke("graph", "show", "-w", ws, *extra, "-o", str(tmp_path / name))
        assert drawn.exit_code == 0, drawn.output
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "x.png").exists()

    sampled = invoke("graph", "sample", "-w", ws, "-n", "3", "--seed", "4", "--json", "-o", str(tmp_path / "c.jsonl"))
    chains = json.loads(sampled.output)
    assert len(chains) == 3 and all(c["problems"] == [] for c in chains)
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 3
    walk = invoke("graph", "sample", "-w", ws, "-n", "5", "--sampler", "random-walk")
    assert walk.exit_code == 0 and "chain 4" in walk.output


def test_an_older_workspace_graph_folder_is_moved_to_the_run_layout(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    built = invoke("graph", "build", "-w", str(ws), "--json")
    assert built.exit_code == 0, built.output
    stage = ws / "runs" / "graph-build" / "graph"
    graph_bytes = (stage / "graph.json").read_bytes()
    legacy = ws / "graph"
    legacy.mkdir()
    (legacy / "graph.json").write_bytes(graph_bytes)  # what an older version left
    (legacy / "chains.jsonl").write_text("{}\n")
    (stage / "graph.json").unlink()
    both = invoke("graph", "sample", "-w", str(ws), "-n", "1")
    assert both.exit_code == 1 and "both hold graph files" in both.output
    assert (legacy / "graph.json").read_bytes() == graph_bytes  # nothing moved
    (stage / "manifest.json").unlink()
    sampled = invoke("graph", "sample", "-w", str(ws), "-n", "2")
    assert sampled.exit_code == 0, sampled.output
    assert "moved the graph files an earlier version kept" in sampled.output
    assert not legacy.exists()
    assert (stage / "graph.json").read_bytes() == graph_bytes and (stage / "chains.jsonl").read_text() == "{}\n"
    rebuilt = invoke("graph", "build", "-w", str(ws), "--json")
    assert rebuilt.exit_code == 0 and (stage / "graph.json").read_bytes() == graph_bytes
    assert (stage / "chains.jsonl").is_file() and not legacy.exists()


def test_bad_input_is_reported_cleanly(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    cases = [
        (("graph", "build", "-w", ws, "--env", "no-such-env"), "no environment"),
        (("graph", "show", "-w", ws, "-o", str(tmp_path / "x.gif")), "write .svg, .png or .html"),
        (("graph", "show", "-w", ws, "-t", "pay_ordr", "-o", str(tmp_path / "x.png")), "no tool 'pay_ordr'"),
        (("graph", "show", "-w", ws, "-t", "pay_order", "-o", str(tmp_path / "x.png")), "did you mean shop__pay_order"),
        (("graph", "show", "-w", ws, "-t", "shop__nope", "-o", str(tmp_path / "x.svg")), "no tool 'shop__nope'"),
        (("graph", "stats", "--graph", str(tmp_path / "missing.json")), "no such graph file"),
        (("graph", "sample", "-w", ws, "--sampler", "greedy"), "--sampler must be"),
        (("graph", "eval", "-w", ws, "--no-embed", "--llm", "--llm-services", "aws:nope"), "no labelled service 'aws:nope'"),
        (("graph", "eval", "-w", ws, "--no-embed", "--llm", "--provider", "replay"), "provider replay needs --cassette"),
        (("graph", "sample", "-w", ws, "--max-length", "0"), "max_length"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    not_graph = tmp_path / "not-graph.json"
    not_graph.write_text('{"nodes": []}', encoding="utf-8")
    result = invoke("graph", "stats", "--graph", str(not_graph))
    assert result.exit_code == 1 and "not an envfactory tool graph" in result.output
    labels = tmp_path / "labels.jsonl"
    labels.write_text("not json\n", encoding="utf-8")
    result = invoke("graph", "eval", "--labels", str(labels), "--no-embed")
    assert result.exit_code == 1 and "labels.jsonl:1" in result.output


@pytest.mark.slow
def test_build_from_catalog_keeps_source_ids(tmp_path: Path, catalog_cache: Path) -> None:
    default_sources(catalog_cache)
    out = tmp_path / "g.json"
    result = invoke("graph", "build", "--from", "aws:sqs,google:tasks.v1", "--from", "aws:sns:Publish",
                    "-o", str(out), "--cache-dir", str(catalog_cache), "--json")
    assert result.exit_code == 0, result.output
    graph = load_graph(out)
    tools = {t.id: t for t in graph.tools()}
    assert "aws-sqs__CreateQueue" in tools and "google-tasks__tasks_tasks_insert" in tools and "aws-sns__Publish" in tools
    insert = tools["google-tasks__tasks_tasks_insert"]
    assert insert.source is not None and insert.source.operation_id == "google:tasks:v1:tasks.tasks.insert"
    assert any(e.source == "aws-sqs__CreateQueue:out:QueueUrl" and e.target == "aws-sqs__SendMessage:in:QueueUrl"
               for e in graph.feeds())
    bad = invoke("graph", "build", "--from", "aws:no-such-service", "--cache-dir", str(catalog_cache), "-w", str(tmp_path))
    assert bad.exit_code == 1 and "no service" in bad.output


@pytest.mark.slow
def test_eval_prints_every_provenance_and_combined_last(catalog_cache: Path, tmp_path: Path) -> None:
    result = invoke("graph", "eval", "--no-embed", "--cache-dir", str(catalog_cache), "-w", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    names = [m["name"] for m in payload["metrics"]]
    assert names[-1] == "combined" and "schema" in names and "embedding" in names and "llm" in names
    assert payload["rows"] >= 300 and not payload["missing"]
    assert payload["seconds"] < 60
    text = invoke("graph", "eval", "--no-embed", "--cache-dir", str(catalog_cache), "-w", str(tmp_path))
    lines = [line for line in text.output.splitlines() if line.startswith("│")]
    assert lines[-1].startswith("│ combined ")
