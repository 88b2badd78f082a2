"""Fixtures of the viewer tests: one workspace holding every kind of artifact (see `viewer_helpers`),
served by a `ViewerServer` on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from viewer_helpers import make_workspace

from envfactory.store import Workspace
from envfactory.viewer.server import ViewerConfig, ViewerServer


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("viewer") / "ws")


@pytest.fixture(scope="session")
def server(workspace: Workspace) -> Iterator[ViewerServer]:
    viewer = ViewerServer(ViewerConfig(workspace.root, port=0))
    viewer.start_background()
    yield viewer
    viewer.shutdown()
    viewer.server_close()


@pytest.fixture(scope="session")
def base_url(server: ViewerServer) -> str:
    return server.url
