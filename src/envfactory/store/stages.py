"""Stage directories: `runs/<run-id>/<stage>/` with the stage's artifacts and its `StageManifest`.

Contract:
- A stage writes every artifact through `StageDir` (atomic, canonical JSON/JSONL), so a killed stage
  leaves whole files or none.
- `finish()` hashes the named outputs and writes `manifest.json` last: a stage directory without a
  manifest, or with a manifest whose status is not `complete`, is unfinished and may be resumed.
- `is_complete()` re-checks the recorded hashes, so a stage whose outputs were edited or truncated after
  it finished is not taken as done.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envfactory.errors import StoreError
from envfactory.spec import ArtifactRef, JSONObject, StageManifest, StageStatus
from envfactory.store.runs import RunDir
from envfactory.store.workspace import Workspace

STAGE_MANIFEST = "manifest.json"
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonl_records(path: Path) -> int | None:
    if path.suffix != ".jsonl":
        return None
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


@dataclass(frozen=True, slots=True)
class StageDir:
    """One stage's directory inside a run directory."""

    run: RunDir
    stage: str

    @classmethod
    def open(cls, workspace: Workspace, run_id: str, stage: str) -> StageDir:
        """Create (or reopen, to resume) `runs/<run-id>/<stage>/`; the stage name is lowercase-dashed."""
        if not _STAGE_NAME.match(stage):
            raise StoreError(f"invalid stage name {stage!r}: use lowercase letters, digits and '-'")
        run = RunDir.create(workspace.ensure(), run_id)
        stage_dir = cls(run, stage)
        try:
            stage_dir.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create stage directory {stage_dir.path}: {exc}") from exc
        return stage_dir

    @property
    def path(self) -> Path:
        """`runs/<run-id>/<stage>/`."""
        return self.run.path / self.stage

    @property
    def run_id(self) -> str:
        """The id of the run the stage belongs to."""
        return self.run.run_id

    @property
    def files(self) -> RunDir:
        """The stage directory's file writer (the run directory's atomic, canonical writers, rooted here)."""
        return RunDir(self.path)

    def artifact_path(self, relative: str) -> Path:
        """The path of an artifact inside the stage directory; refuses absolute paths and `..`."""
        return self.files.artifact_path(relative)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        """Write one artifact atomically."""
        return self.files.write_bytes(relative, data)

    def write_json(self, relative: str, value: Any) -> Path:
        """Write one canonical JSON artifact (sorted keys, compact, trailing newline)."""
        return self.files.write_json(relative, value)

    def write_jsonl(self, relative: str, records: Iterable[Any]) -> Path:
        """Write one canonical JSONL artifact."""
        return self.files.write_jsonl(relative, records)

    def read_manifest(self) -> StageManifest | None:
        """The stage's manifest, or None when the stage never finished; a corrupt one is a `StoreError`."""
        path = self.path / STAGE_MANIFEST
        if not path.is_file():
            return None
        try:
            return StageManifest.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise StoreError(f"{path} is not a valid stage manifest: {exc}") from exc

    def is_complete(self) -> bool:
        """True when the manifest says complete and every recorded output still has its hash."""
        manifest = self.read_manifest()
        if manifest is None or manifest.status != "complete":
            return False
        for ref in manifest.outputs:
            path = self.artifact_path(ref.path)
            if not path.is_file() or file_sha256(path) != ref.sha256:
                return False
        return True

    def finish(
        self,
        *,
        outputs: Iterable[str],
        config: JSONObject | None = None,
        inputs: Mapping[str, str] | None = None,
        seeds: Mapping[str, int] | None = None,
        versions: Mapping[str, str] | None = None,
        counts: Mapping[str, int] | None = None,
        drops: Mapping[str, int] | None = None,
        timings: Mapping[str, float] | None = None,
        status: StageStatus = "complete",
        error: str | None = None,
    ) -> StageManifest:
        """Hash the named outputs (paths relative to the stage directory) and write the manifest last."""
        refs = []
        for relative in sorted(set(outputs)):
            path = self.artifact_path(relative)
            if not path.is_file():
                raise StoreError(f"stage {self.stage!r} names output {relative!r}, which does not exist")
            refs.append(ArtifactRef(path=relative, sha256=file_sha256(path), records=_jsonl_records(path)))
        manifest = StageManifest(
            stage=self.stage,
            run_id=self.run_id,
            status=status,
            config=dict(config or {}),
            inputs=dict(inputs or {}),
            outputs=refs,
            seeds=dict(seeds or {}),
            versions=dict(versions or {}),
            counts=dict(counts or {}),
            drops=dict(drops or {}),
            timings=dict(timings or {}),
            error=error,
        )
        self.write_bytes(STAGE_MANIFEST, manifest.to_json_bytes() + b"\n")
        return manifest
