"""Run manifests: what produced a run's artifacts (resolved config, versions, commit, seeds, prompts)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONObject, SpecModel


class RunManifest(SpecModel):
    """Written next to every run's outputs. Timings never enter hashed artifacts; `created_at` is
    supplied by the caller's injected clock."""

    schema_version: Literal[1] = 1
    run_id: str
    command: str
    created_at: str
    envfactory_version: str
    config: JSONObject = Field(default_factory=dict, description="the resolved config, as JSON")
    package_versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    seeds: dict[str, int] = Field(default_factory=dict)
    prompt_hashes: dict[str, str] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict,
                                      description="every artifact of the run: path relative to the run directory -> sha256")
