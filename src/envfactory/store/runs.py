"""Run directories: `runs/<run-id>/` with `manifest.json`, `config.json`, artifacts and `logs/`.

Contract:
- Every file is written atomically in canonical JSON (sorted keys, compact, one trailing newline;
  JSONL: one canonical object per line), so identical content gives identical bytes.
- Artifact paths are relative to the run directory and may not escape it.
- The manifest is a `RunManifest` (spec); reading it back validates it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from envfactory.errors import StoreError
from envfactory.spec import RunManifest, canonical_json
from envfactory.store.atomic import write_atomic
from envfactory.store.workspace import Workspace

MANIFEST = "manifest.json"
CONFIG = "config.json"
LOGS = "logs"


def jsonl_bytes(records: Iterable[Any]) -> bytes:
    """Canonical JSONL: one canonical JSON value per line."""
    return b"".join(canonical_json(record) + b"\n" for record in records)


@dataclass(frozen=True, slots=True)
class RunDir:
    """One run's directory."""

    path: Path

    @classmethod
    def create(cls, workspace: Workspace, run_id: str) -> RunDir:
        """Create (or reopen, for `--resume`) `runs/<run-id>/` and its `logs/`."""
        path = workspace.run_path(run_id)
        try:
            (path / LOGS).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create run directory {path}: {exc}") from exc
        return cls(path)

    @property
    def run_id(self) -> str:
        """The run id: the directory's name."""
        return self.path.name

    @property
    def logs_dir(self) -> Path:
        """`<run>/logs/`: timings and other records that differ between identical runs."""
        return self.path / LOGS

    def artifact_path(self, relative: str) -> Path:
        """The path of an artifact inside the run directory; refuses absolute paths and `..`."""
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise StoreError(f"artifact path {relative!r} must be relative and stay inside {self.path}")
        return self.path.joinpath(*pure.parts)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        """Write `data` atomically to the artifact path `relative` (see `artifact_path`); returns the path."""
        path = self.artifact_path(relative)
        write_atomic(path, data)
        return path

    def write_json(self, relative: str, value: Any) -> Path:
        """Write `value` as canonical JSON (sorted keys, one trailing newline): same value, same bytes."""
        return self.write_bytes(relative, canonical_json(value) + b"\n")

    def write_jsonl(self, relative: str, records: Iterable[Any]) -> Path:
        """Write `records` as canonical JSONL, one value per line: same records, same bytes."""
        return self.write_bytes(relative, jsonl_bytes(records))

    def write_config(self, config: dict[str, Any]) -> Path:
        """The resolved config of the run (`config.json`)."""
        return self.write_json(CONFIG, config)

    def write_manifest(self, manifest: RunManifest) -> Path:
        """Write `manifest.json`; its run id must be this directory's."""
        if manifest.run_id != self.run_id:
            raise StoreError(f"manifest for run {manifest.run_id!r} written into run directory {self.path}")
        return self.write_bytes(MANIFEST, manifest.to_json_bytes() + b"\n")

    def read_manifest(self) -> RunManifest:
        """The run's `manifest.json`; raises `StoreError` when it is missing or not a valid `RunManifest`."""
        path = self.path / MANIFEST
        try:
            return RunManifest.model_validate_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise StoreError(f"{path} does not exist") from exc
        except ValidationError as exc:
            raise StoreError(f"{path} is not a valid run manifest: {exc}") from exc
