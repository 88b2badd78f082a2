"""Embedding search from the CLI (`resources search --mode semantic|hybrid --embedder minilm|static`) and
through `Catalog.search` with the CLI's adapter, with the real embedders: a paraphrase that shares no
word with the right operation is missed by keyword search and found semantically.

The static model is built once into the user's cache by the session fixture (see
tests/llm/test_llm_static.py); it is never skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.cli.resources import embed_function
from envfactory.llm import StaticEmbedderConfig, build_static_model, make_embedder
from envfactory.resources import Catalog, ServiceFilter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"
SHOP = ["--no-defaults", "--openapi", str(FIXTURES / "bookshop.openapi.json"),
        "--openapi", str(FIXTURES / "petstore.swagger2.json")]
CANCEL = "cornerbookshop.example:bookshop.openapi:2.1.0:cancelOrder"
PARAPHRASE = "stop a purchase before it is delivered"
runner = CliRunner()


@pytest.fixture(scope="session")
def static_model() -> Path:
    return build_static_model(StaticEmbedderConfig()).path


def search(tmp_path: Path, query: str, *args: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["resources", "search", query, "--json", "-n", "3", *args, *SHOP,
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("embedder", ["minilm", "static"])
def test_a_paraphrase_is_found_semantically_where_keyword_search_misses(
    embedder: str, static_model: Path, tmp_path: Path
) -> None:
    keyword = search(tmp_path, PARAPHRASE)
    assert CANCEL not in [h["id"] for h in keyword]
    semantic = search(tmp_path, PARAPHRASE, "--mode", "semantic", "--embedder", embedder)
    assert semantic[0]["id"] == CANCEL and semantic[0]["rank"] == 1 and 0 < semantic[0]["score"] <= 1
    assert semantic[0]["score"] > semantic[1]["score"]
    again = search(tmp_path, PARAPHRASE, "--mode", "semantic", "--embedder", embedder)  # vectors from the index
    assert again == semantic
    # hybrid re-ranks keyword candidates: with a query that shares words, the right one comes first
    hybrid = search(tmp_path, "cancel my order", "--mode", "hybrid", "--embedder", embedder)
    assert hybrid[0]["id"] == CANCEL


@pytest.mark.slow
@pytest.mark.parametrize("embedder", ["minilm", "static"])
def test_semantic_search_over_aws_services_through_the_catalog(embedder: str, static_model: Path,
                                                               small_catalog: Catalog) -> None:
    chosen = make_embedder(embedder)
    where = ServiceFilter(provider="aws", service="sqs")
    query = "put a job in a waiting line for a worker to pick up later"
    keyword = [h.operation.name for h in small_catalog.search(query, 3, where)]
    assert not any(name.startswith("SendMessage") for name in keyword)
    hits = small_catalog.search(query, 3, where, mode="semantic", embed=embed_function(chosen),
                                embedder_id=chosen.model_id)
    assert any(h.operation.name.startswith("SendMessage") for h in hits)  # SendMessage or SendMessageBatch
    assert all(h.service.service == "sqs" for h in hits)


def test_bad_modes_and_embedders_are_clean_errors(tmp_path: Path) -> None:
    for args, message in ((["--mode", "fuzzy"], "unknown search mode 'fuzzy'; one of keyword, semantic, hybrid"),
                          (["--mode", "semantic", "--embedder", "glove"], "unknown embedder 'glove'; use minilm or static")):
        result = runner.invoke(app, ["resources", "search", "x", *args, *SHOP, "--cache-dir", str(tmp_path)])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_a_missing_static_model_says_how_to_build_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["resources", "search", PARAPHRASE, "--mode", "semantic", "--embedder", "static",
                                 "--models-dir", str(tmp_path / "models"), *SHOP, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"envfactory llm setup-static --models-dir {tmp_path / 'models'}" in result.output.replace("\n", "")
