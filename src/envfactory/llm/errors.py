"""Failures of the model layer, all `ProviderError`s (envfactory.errors) so the CLI reports them cleanly.

- `ModelNotInstalledError`: a model's PyPI package(s) are missing; the message is the `pip install` to run.
- `ModelIntegrityError`: an assembled or packaged model file has the wrong size or sha256.
- `DependencyMissingError`: an optional library (llama-cpp-python, openai, sentence-transformers) is absent.
- `TransientProviderError`: worth retrying (connection refused, timeout, rate limit, server error).
- `EndpointUnreachableError`: an endpoint that does not answer (transient: retried, then raised).
- `ReplayMissError`: replay mode met a request its cassette does not hold.
- `StructuredOutputError`: the answer still broke its schema after the bounded repairs.
- `StaticModelBuildError`: the static embedding model could not be distilled (what failed, and its output).
"""

from __future__ import annotations

from envfactory.errors import ProviderError


class ModelNotInstalledError(ProviderError):
    """A model's packages are not installed; `str(exc)` says what to pip install."""


class ModelIntegrityError(ProviderError):
    """A model file does not have its expected size or sha256."""


class DependencyMissingError(ProviderError):
    """An optional dependency of a provider is not installed."""


class TransientProviderError(ProviderError):
    """A failure that may go away on retry."""


class ProviderTimeoutError(TransientProviderError):
    """A call took longer than its timeout."""


class EndpointUnreachableError(TransientProviderError):
    """An HTTP endpoint could not be reached (retried; the last attempt's error reaches the caller)."""


class ReplayMissError(ProviderError):
    """Replay mode: the cassette holds no response for this request."""


class StructuredOutputError(ProviderError):
    """A structured answer or tool call still violates its schema after the allowed repairs."""


class StaticModelBuildError(ProviderError):
    """Building the static embedding model failed (the distillation environment or the distillation)."""
