"""`llm`: the model layer (DESIGN §8). Imports `spec` and `store` only; heavy libraries (llama-cpp-python,
openai, sentence-transformers, torch) are imported lazily, on first use.

- Protocols: `LLMClient` (chat with tools and JSON-schema structured output), `Embedder`.
- Wire models: `ChatRequest`, `ChatMessage`, `FunctionTool`, `ResponseFormat`, `ChatResponse`, `Usage`.
- Providers: `LocalProvider` (embedded GGUF model from PyPI packages, grammar-constrained decoding),
  `OpenAICompatibleProvider` (any OpenAI-compatible endpoint), `ReplayClient` (cassettes; recorded by
  `CassetteWriter`/`RecordingClient`), `ScriptedClient` (tests).
- `ManagedClient`: response cache, retries, concurrency limit, schema validation and repair, usage per
  stage. `make_client(LLMSettings)` builds the configured one.
- Embeddings: `SentenceTransformerEmbedder` (packaged all-MiniLM-L6-v2), `StaticEmbedder` (model2vec,
  distilled from it by `build_static_model`), `CachedEmbedder`; `make_embedder(kind)` picks one.
- Models: `LOCAL_MODELS`, `model_path` (assembly into `~/.cache/envfactory/models` with sha256 checks).
"""

from envfactory.llm.client import ClientPolicy, ManagedClient, RetryPolicy
from envfactory.llm.embeddings import CachedEmbedder, SentenceEmbedderConfig, SentenceTransformerEmbedder
from envfactory.llm.errors import (
    DependencyMissingError,
    EndpointUnreachableError,
    ModelIntegrityError,
    ModelNotInstalledError,
    ProviderTimeoutError,
    ReplayMissError,
    StaticModelBuildError,
    StructuredOutputError,
    TransientProviderError,
)
from envfactory.llm.factory import (
    EMBEDDER_KINDS,
    PROVIDER_KINDS,
    EmbedderKind,
    LLMSettings,
    ProviderKind,
    make_client,
    make_embedder,
    make_provider,
)
from envfactory.llm.local import LocalConfig, LocalProvider
from envfactory.llm.models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, LocalModel, model_path, model_status
from envfactory.llm.openai_compat import OpenAICompatibleProvider, OpenAIConfig
from envfactory.llm.protocols import Embedder, LLMClient
from envfactory.llm.replay import CassetteEntry, CassetteWriter, RecordingClient, ReplayClient, read_cassette
from envfactory.llm.scripted import ScriptedClient, text_response
from envfactory.llm.static import StaticBuild, StaticEmbedder, StaticEmbedderConfig, build_static_model
from envfactory.llm.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    FunctionTool,
    NamedToolChoice,
    ResponseFormat,
    Usage,
    request_key,
)
from envfactory.llm.usage import ModelPrice, PriceTable, StageUsage, UsageLedger, UsageReport

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "EMBEDDER_KINDS",
    "LOCAL_MODELS",
    "PROVIDER_KINDS",
    "CachedEmbedder",
    "CassetteEntry",
    "CassetteWriter",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ClientPolicy",
    "DependencyMissingError",
    "Embedder",
    "EmbedderKind",
    "EndpointUnreachableError",
    "FunctionTool",
    "LLMClient",
    "LLMSettings",
    "LocalConfig",
    "LocalModel",
    "LocalProvider",
    "ManagedClient",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "ModelPrice",
    "NamedToolChoice",
    "OpenAICompatibleProvider",
    "OpenAIConfig",
    "PriceTable",
    "ProviderKind",
    "ProviderTimeoutError",
    "RecordingClient",
    "ReplayClient",
    "ReplayMissError",
    "ResponseFormat",
    "RetryPolicy",
    "ScriptedClient",
    "SentenceEmbedderConfig",
    "SentenceTransformerEmbedder",
    "StageUsage",
    "StaticBuild",
    "StaticEmbedder",
    "StaticEmbedderConfig",
    "StaticModelBuildError",
    "StructuredOutputError",
    "TransientProviderError",
    "Usage",
    "UsageLedger",
    "UsageReport",
    "build_static_model",
    "make_client",
    "make_embedder",
    "make_provider",
    "model_path",
    "model_status",
    "read_cassette",
    "request_key",
    "text_response",
]
