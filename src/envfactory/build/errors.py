"""Failures of the build pipeline (all `EnvFactoryError`s)."""

from __future__ import annotations

from envfactory.errors import EnvFactoryError


class BuildError(EnvFactoryError):
    """A build stage cannot do what it was asked (bad arguments, a feature not available)."""


class CompileError(BuildError):
    """A proposal cannot be compiled to an environment at all; the message says why."""
