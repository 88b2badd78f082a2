"""Fixtures of the training tests: a tiny random model with SmolLM2's real tokenizer, and demo data."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.train.models import TrainingSetupError

runner = CliRunner()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    from envfactory.export.render import smollm2_tools_template
    from envfactory.train.models import smollm2_gguf, tiny_model

    try:
        gguf = smollm2_gguf()
    except TrainingSetupError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("models")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.chat_template = smollm2_tools_template()
    tokenizer.save_pretrained(str(root / "tokenizer"))
    return tiny_model(root / "tokenizer", root / "tiny")


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    result = runner.invoke(app, ["train", "demo-data", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


