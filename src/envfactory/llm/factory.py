"""Build the configured client from explicit settings (the CLI fills `LLMSettings` from flags and
environment variables; nothing here reads them).

- `provider="local"`: the embedded model (`LocalConfig`), the default.
- `provider="openai"`: an OpenAI-compatible endpoint (`OpenAIConfig`).
- `provider="hf"`: a transformers checkpoint directory (`HFConfig`), e.g. one `envfactory train` wrote.
- `provider="replay"`: answers from the cassette `cassette` only; the response cache is not used, so a
  request the cassette lacks always fails loudly. `replay_model` names the recorded model to answer as
  when the cassette holds several (one cassette recorded by several roles' models).
- With another provider, `cassette` (if given) records every answer.
- `make_embedder(kind)`: `minilm` (the packaged all-MiniLM-L6-v2, the default) or `static` (the
  model2vec model distilled from it by `envfactory llm setup-static`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from envfactory.errors import ProviderError
from envfactory.llm.client import ClientPolicy, ManagedClient
from envfactory.llm.embeddings import SentenceTransformerEmbedder
from envfactory.llm.hf import HFConfig, HFProvider
from envfactory.llm.local import LocalConfig, LocalProvider
from envfactory.llm.openai_compat import OpenAICompatibleProvider, OpenAIConfig
from envfactory.llm.protocols import Embedder, LLMClient
from envfactory.llm.replay import CassetteWriter, ReplayClient
from envfactory.llm.static import StaticEmbedder, StaticEmbedderConfig
from envfactory.llm.usage import UsageLedger
from envfactory.store import KVStore

ProviderKind = Literal["local", "openai", "replay", "hf"]
PROVIDER_KINDS: tuple[ProviderKind, ...] = ("local", "openai", "replay", "hf")
EmbedderKind = Literal["minilm", "static"]
EMBEDDER_KINDS: tuple[EmbedderKind, ...] = ("minilm", "static")


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Which provider to use (`local`, `openai`, `replay`, `hf`) with its configuration, the cassette (to
    replay from, or to record into when not replaying), the recorded model a replay answers as (None: the
    cassette's only model) and the client policy."""

    provider: ProviderKind = "local"
    local: LocalConfig = field(default_factory=LocalConfig)
    openai: OpenAIConfig | None = None
    hf: HFConfig | None = None
    cassette: Path | None = None
    policy: ClientPolicy = field(default_factory=ClientPolicy)
    replay_model: str | None = None


def make_provider(settings: LLMSettings) -> LLMClient:
    """The bare provider `settings` name; a `ProviderError` when its configuration is missing (no
    OpenAI endpoint, no checkpoint, no cassette). Nothing is loaded yet."""
    if settings.provider == "local":
        return LocalProvider(settings.local)
    if settings.provider == "openai":
        if settings.openai is None:
            raise ProviderError("provider 'openai' needs a base URL and a model name")
        return OpenAICompatibleProvider(settings.openai)
    if settings.provider == "hf":
        if settings.hf is None:
            raise ProviderError("provider 'hf' needs a checkpoint directory (hf:DIR)")
        return HFProvider(settings.hf)
    if settings.cassette is None:
        raise ProviderError("provider 'replay' needs a cassette file")
    return ReplayClient(settings.cassette, model_id=settings.replay_model)


def make_client(
    settings: LLMSettings, *, cache: KVStore | None = None, ledger: UsageLedger | None = None
) -> ManagedClient:
    """The managed client for `settings`, caching in `cache` (ignored in replay mode)."""
    provider = make_provider(settings)
    replaying = settings.provider == "replay"
    recorder = CassetteWriter(settings.cassette) if settings.cassette is not None and not replaying else None
    return ManagedClient(
        provider,
        cache=None if replaying else cache,
        recorder=recorder,
        ledger=ledger,
        policy=settings.policy,
    )


def make_embedder(kind: str = "minilm", *, models_dir: Path | None = None) -> Embedder:
    """The embedder named `kind` (`EMBEDDER_KINDS`); `models_dir` holds the static model."""
    if kind == "minilm":
        return SentenceTransformerEmbedder()
    if kind == "static":
        return StaticEmbedder(StaticEmbedderConfig(models_dir=models_dir))
    raise ProviderError(f"unknown embedder {kind!r}; use {' or '.join(EMBEDDER_KINDS)}")
