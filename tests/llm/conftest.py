"""Shared fixtures of the model-layer tests: a models directory shared by the test workers, and the
real SmolLM2-135M provider (loaded once per worker; tests compare its `calls` counter by difference).

These tests run the real models installed from PyPI (`requirements/models.txt`); when they are missing,
the tests fail with the pip command to run instead of being skipped, so a broken set-up cannot pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.llm import LocalConfig, LocalProvider

SMOL = "smollm2-135m"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every xdist worker of this run, so the 0.5B model is assembled once."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "envfactory-models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smol(models_dir: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(LocalConfig(model=SMOL, models_dir=models_dir, n_ctx=2048))
    provider.load()
    yield provider
    provider.close()
