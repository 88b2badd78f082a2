"""Models in executor workers: a `WorkerModel` says which model to open, a worker opens it once.

Contract:
- `worker_model(settings, cache_path)` turns the parent's `LLMSettings` into the `WorkerModel` a work item
  carries (local, OpenAI-compatible and replay providers; a transformers checkpoint is refused with a
  `ProviderError`: it is opened in the parent only). The parent's cassette recorder does not travel:
  answers are shared through the workspace cache instead.
- `worker_client(model)` is the `ManagedClient` for it, made once per process and reused by every item
  the process runs (loading a local model takes seconds; items must not pay it each). Answers go to the
  workspace cache named by the model, so a rerun, another worker or the parent reuses them.
- Same `WorkerModel` and request ⇒ the same answer as the parent's client would give (the cache and
  replay make it byte-identical; a live local model repeats only with the same thread count).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from envfactory.errors import ProviderError
from envfactory.llm.client import ManagedClient
from envfactory.llm.factory import LLMSettings, make_client
from envfactory.llm.local import LocalConfig
from envfactory.llm.openai_compat import OpenAIConfig
from envfactory.spec.work_items import WorkerModel
from envfactory.store import KVStore

API_KEY_VARIABLE = "ENVFACTORY_LLM_API_KEY"
"""Where a worker finds the key of an OpenAI-compatible endpoint (keys do not travel in items)."""


def worker_model(settings: LLMSettings, cache_path: Path | None = None, *, threads: int = 0) -> WorkerModel:
    """The `WorkerModel` for `settings`, answering through the cache at `cache_path` (none: no cache); a
    local model runs `threads` threads per worker (0: the provider's default)."""
    cache = str(cache_path) if cache_path is not None and settings.provider != "replay" else ""
    if settings.provider == "local":
        local = settings.local
        return WorkerModel(provider="local", model=local.model, models_dir=str(local.models_dir),
                           n_ctx=local.n_ctx or 0, n_threads=threads, cache_path=cache)
    if settings.provider == "openai" and settings.openai is not None:
        return WorkerModel(provider="openai", model=settings.openai.model, base_url=settings.openai.base_url,
                           cache_path=cache)
    if settings.provider == "replay" and settings.cassette is not None:
        return WorkerModel(provider="replay", cassette=str(settings.cassette))
    raise ProviderError(f"provider {settings.provider!r} runs in this process only; use the serial executor")


def worker_settings(model: WorkerModel) -> LLMSettings:
    """The `LLMSettings` a worker opens for `model`."""
    if model.provider == "local":
        local = LocalConfig(model=model.model, n_ctx=model.n_ctx or None, n_threads=model.n_threads or None)
        if model.models_dir:
            local = dataclasses.replace(local, models_dir=Path(model.models_dir))
        return LLMSettings(provider="local", local=local)
    if model.provider == "openai":
        # The key is the worker's own (its environment), never written into an item.
        key = os.environ.get(API_KEY_VARIABLE, "not-needed")
        return LLMSettings(provider="openai", openai=OpenAIConfig(base_url=model.base_url, model=model.model,
                                                                   api_key=key))
    return LLMSettings(provider="replay", cassette=Path(model.cassette))


def worker_client(model: WorkerModel) -> ManagedClient:
    """The client for `model` in this process, opened on first use (see the module contract)."""
    return _opened(model.to_json_bytes())


# A per-process memo of opened models: the worker's context, not shared state. Results never depend on
# it (the same model answers the same), only the cost of the first item a process runs does.
@functools.lru_cache(maxsize=4)
def _opened(encoded: bytes) -> ManagedClient:
    model = WorkerModel.model_validate_json(encoded)
    cache = KVStore(Path(model.cache_path)) if model.cache_path else None
    return make_client(worker_settings(model), cache=cache)
