"""Fixtures of the serving tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serve_helpers import Running, running

from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.service import SessionTemplate


@pytest.fixture(scope="session")
def catalog() -> EnvCatalog:
    return EnvCatalog.load(["shop", "tracker", "calendar"])


@pytest.fixture(scope="module")
def server(catalog: EnvCatalog) -> Iterator[Running]:
    with running(catalog, mcp=SessionTemplate(envs=("shop",))) as srv:
        yield srv
