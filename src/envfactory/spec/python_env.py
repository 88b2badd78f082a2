"""The source file (`env.json`) of a python-toolkit environment; its `EnvSpec` is derived at load time
from the toolkit's typed methods and state model (one source of truth)."""

from __future__ import annotations

from typing import Literal

from envfactory.spec.base import SpecModel
from envfactory.spec.env import PythonImplementation
from envfactory.spec.meta import EnvMeta


class PythonEnvSource(SpecModel):
    """`source.json` of a python environment: its metadata and the toolkit that implements it."""
    schema_version: Literal[1] = 1
    format: Literal["envfactory.python"] = "envfactory.python"
    meta: EnvMeta
    implementation: PythonImplementation
