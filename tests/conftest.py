"""Fixtures shared by every test directory.

- `openai_stub`: the one OpenAI-compatible stub endpoint of the suite (`openai_stub.OpenAIStub`: scripted
  answers or an answer function, request bodies kept), shared by the model layer's and the synthesis tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from openai_stub import OpenAIStub


@pytest.fixture()
def openai_stub() -> Iterator[OpenAIStub]:
    """A running `OpenAIStub` for one test."""
    server = OpenAIStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
