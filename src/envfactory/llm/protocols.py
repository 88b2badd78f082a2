"""The two integration points of the model layer.

- `LLMClient`: `chat(ChatRequest) -> ChatResponse` plus a `model_id` that names the model exactly
  enough to key a cache (provider, model, and its file hash or endpoint). Providers (local, OpenAI-
  compatible, replay, scripted) implement it, and so does `ManagedClient`, which adds caching,
  retries, concurrency limits, usage accounting and schema repair on top of any of them.
- `Embedder`: `embed(texts) -> float32 array (n, dimension)`, L2-normalised rows, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from envfactory.llm.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@runtime_checkable
class LLMClient(Protocol):
    """Chat completion with tools and JSON-schema structured output."""

    @property
    def model_id(self) -> str:
        """Identifies the model (and whatever else decides its answers) in cache keys."""
        ...

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request. Raises `ProviderError` subclasses on failure."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings in batches."""

    @property
    def model_id(self) -> str:
        """Names the model in cache keys."""

    @property
    def dimension(self) -> int:
        """The length of each embedding row."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised float32 row per text, in order."""
        ...
