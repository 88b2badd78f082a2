"""Failures of the evaluation layer."""

from __future__ import annotations

from envfactory.errors import EnvFactoryError


class BenchmarkMissingError(EnvFactoryError):
    """A benchmark package is not installed; the message says how to install it."""
