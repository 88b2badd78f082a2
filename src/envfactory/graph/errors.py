"""Failures of the graph layer, named by the boundary they cross (subclasses of `envfactory.errors`)."""

from __future__ import annotations

from envfactory.errors import EnvFactoryError, SpecError


class GraphInputError(SpecError):
    """What the graph was asked to build from (or read) is unusable: no tools at all, a malformed
    graph or label file. The message says what and where."""


class GraphLLMError(EnvFactoryError):
    """An LLM step of the graph build failed in a way the caller asked to be fatal."""
