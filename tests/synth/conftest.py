"""Shared fixtures of the synthesis tests."""

from __future__ import annotations

import pytest

from envfactory.resources.benchmarks import benchmark_tasks
from envfactory.spec.benchmark import BenchmarkTask


@pytest.fixture(scope="session")
def bench_tasks() -> list[BenchmarkTask]:
    """The BFCL and τ² task texts from the installed packages (requirements/bench.txt)."""
    return benchmark_tasks()
