"""Shared fixtures of the graph tests: the bundled environments as tool sets and their graph, tiny
hand-written operations, and (for the slower tests) a catalog of the labelled services built once per
session in a temporary cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.graph import GraphIndex, ToolGraph, ToolSet, build_graph, from_env_spec
from envfactory.resources import AwsSource, Catalog, GoogleSource
from envfactory.runtime import bundled_env_names, load_env

LABEL_AWS = ["sqs", "sns", "secretsmanager", "kms", "dynamodb", "lambda", "logs", "ecr", "events", "iam", "s3"]
LABEL_GOOGLE = ["tasks", "calendar", "gmail", "drive", "sheets"]


@pytest.fixture(scope="session")
def bundled_sets() -> list[ToolSet]:
    return [from_env_spec(load_env(name).spec) for name in bundled_env_names()]


@pytest.fixture(scope="session")
def bundled_graph(bundled_sets: list[ToolSet]) -> ToolGraph:
    return build_graph(bundled_sets).graph


@pytest.fixture(scope="session")
def bundled_index(bundled_graph: ToolGraph) -> GraphIndex:
    return GraphIndex.from_graph(bundled_graph)


@pytest.fixture(scope="session")
def label_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """The AWS and Google services of the committed label set (shared by the xdist workers of a run)."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "graph-label-catalog"
    cache.mkdir(exist_ok=True)
    with Catalog([AwsSource(LABEL_AWS), GoogleSource(LABEL_GOOGLE)], cache) as catalog:
        yield catalog


@pytest.fixture(scope="session")
def catalog_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resource cache for the CLI's default catalog (indexed on first use, shared by the CLI tests)."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "graph-cli-catalog"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
