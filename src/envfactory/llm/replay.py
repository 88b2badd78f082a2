"""Cassettes: record any client's calls to a JSONL file and replay them exactly.

Contract:
- A cassette is JSONL, one `CassetteEntry` (model id, request, response) per line, keyed by
  `request_key(model, request)`. Recording appends each new key once (threads and processes may share
  a file: appends are serialised by a lock and an `flock`); a line cut short by a killed writer is
  ignored on reading, any other bad line is an error naming the line.
- `ReplayClient` answers only from its cassette. Its `model_id` is the recorded one, so caches and
  artifacts keyed by the model come out identical. A request it does not hold raises `ReplayMissError`
  naming the request; it never falls back to a live model.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from envfactory.errors import ProviderError
from envfactory.llm.errors import ReplayMissError
from envfactory.llm.protocols import LLMClient
from envfactory.llm.types import ChatRequest, ChatResponse, request_key
from envfactory.spec import SpecModel

logger = logging.getLogger(__name__)


class CassetteEntry(SpecModel):
    """One recorded answer: the request key (`request_key(model, request)`), the model id, the request
    and the response; one JSON line of a cassette."""

    schema_version: Literal[1] = 1
    key: str
    model: str
    request: ChatRequest
    response: ChatResponse


def read_cassette(path: Path) -> list[CassetteEntry]:
    """Every entry of a cassette, in order (see the module docstring for damaged lines)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProviderError(f"cassette {path} does not exist; record one first") from None
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        logger.warning("%s: ignoring an unfinished last line (a recording was interrupted)", path)
    entries: list[CassetteEntry] = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            entries.append(CassetteEntry.model_validate_json(line))
        except ValidationError as exc:
            raise ProviderError(f"{path}:{number}: not a cassette entry: {exc.errors()[0]['msg']}") from exc
    return entries


class CassetteWriter:
    """Appends entries to a cassette, each key once."""

    def __init__(self, path: Path) -> None:
        """Append to the cassette at `path` (created on the first record); the keys already in it are read
        once, so nothing is recorded twice. A damaged cassette is a `ProviderError`."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys = {entry.key for entry in read_cassette(self.path)} if self.path.exists() else set()

    def record(self, model_id: str, request: ChatRequest, response: ChatResponse) -> None:
        """Append one entry unless its key is already recorded (thread- and process-safe: a file lock, then
        fsync, so concurrent recorders never interleave lines)."""
        key = request_key(model_id, request)
        with self._lock:
            if key in self._keys:
                return
            entry = CassetteEntry(key=key, model=model_id, request=request, response=response)
            line = entry.to_json_bytes() + b"\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            self._keys.add(key)


class RecordingClient:
    """Wraps a client and records every answer it gives into a cassette."""

    def __init__(self, inner: LLMClient, writer: CassetteWriter) -> None:
        """Record what `inner` answers into `writer`."""
        self.inner = inner
        self.writer = writer

    @property
    def model_id(self) -> str:
        """The wrapped client's model id."""
        return self.inner.model_id

    def chat(self, request: ChatRequest) -> ChatResponse:
        """The wrapped client's answer, recorded before it is returned."""
        response = self.inner.chat(request)
        self.writer.record(self.inner.model_id, request, response)
        return response


class ReplayClient:
    """Answers from a cassette only (see the module docstring)."""

    def __init__(self, path: Path, *, model_id: str | None = None) -> None:
        """Answer from the cassette at `path` for `model_id` (default: the cassette's only model). A
        `ProviderError` when the cassette is missing, damaged, empty, or holds several models and none is
        named."""
        self.path = Path(path)
        entries = read_cassette(self.path)
        models = sorted({entry.model for entry in entries})
        if model_id is None:
            if len(models) > 1:
                raise ProviderError(f"cassette {path} holds several models ({', '.join(models)}); name one")
            if not models:
                raise ProviderError(f"cassette {path} is empty")
            model_id = models[0]
        self._model_id = model_id
        self._responses = {entry.key: entry.response for entry in entries if entry.model == model_id}

    @property
    def model_id(self) -> str:
        """The model id whose answers are replayed (the key of every lookup)."""
        return self._model_id

    def __len__(self) -> int:
        return len(self._responses)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """The recorded answer to `request`; a `ReplayMissError` (with the request's description) when the
        cassette holds none."""
        key = request_key(self._model_id, request)
        response = self._responses.get(key)
        if response is None:
            raise ReplayMissError(
                f"replay miss: cassette {self.path} holds no response for request {key[:16]} to {self._model_id} "
                f"({request.describe()}); record it with a live provider first"
            )
        return response
