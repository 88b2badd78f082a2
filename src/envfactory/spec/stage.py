"""Stage manifests: what one pipeline stage of a run read, wrote and how (DESIGN §9, §11).

Every stage is a function `run_<stage>(config, workspace, deps) -> StageManifest` writing its artifacts
under `runs/<run-id>/<stage>/`. The manifest names each output with its content hash so that a reader (the
next stage, `run --resume`, the viewer) can check what it is given. Timings live in `timings` only and are
excluded from `content_digest()`, so two runs of the same config and seed have the same digest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONObject, SpecModel, content_hash

StageStatus = Literal["complete", "partial", "failed"]


class ArtifactRef(SpecModel):
    """One file a stage wrote: its path relative to the stage directory and the sha256 of its bytes."""

    schema_version: Literal[1] = 1
    path: str
    sha256: str
    records: int | None = Field(default=None, description="number of JSONL records, when it is JSONL")


class StageManifest(SpecModel):
    """Written as `manifest.json` in a stage directory when the stage ends (complete, partial or failed).

    `inputs` maps a name (an upstream stage, a config file, the library) to the content hash of what was
    read; `counts` are the stage's funnel figures; `drops` counts dropped items per reason.
    """

    schema_version: Literal[1] = 1
    stage: str
    run_id: str
    status: StageStatus = "complete"
    config: JSONObject = Field(default_factory=dict, description="the stage's resolved, typed config")
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: list[ArtifactRef] = Field(default_factory=list)
    seeds: dict[str, int] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    drops: dict[str, int] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds; never hashed")
    error: str | None = None

    def content_digest(self) -> str:
        """The hash of everything but the timings: equal for equal configs, seeds and outputs."""
        return content_hash(self.model_dump(mode="json", exclude={"timings"}))
