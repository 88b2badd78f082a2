"""The workspace directory (DESIGN §11) and the per-user cache directory.

Layout of a workspace (default `./workspace`, chosen by the CLI's `--workspace`):

    catalog.sqlite      runs, stage records and usage
    llm-cache.sqlite    cached LLM responses and embeddings (`KVStore`)
    runs/<run-id>/      one run: manifest.json, config.json, artifacts, logs/
    envs/               built environments

Model files do not live in a workspace: they are assembled once per user into
`~/.cache/envfactory/models` (`user_cache_dir() / "models"`). Nothing is ever written inside the
installed package. Creating a `Workspace` touches nothing; `ensure()` creates the directories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envfactory.errors import StoreError
from envfactory.store.kv import KVStore

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def user_cache_dir() -> Path:
    """`~/.cache/envfactory`: caches shared by every workspace of this user (assembled model files)."""
    return Path.home() / ".cache" / "envfactory"


def default_models_dir() -> Path:
    """Where local model files are assembled: `~/.cache/envfactory/models`."""
    return user_cache_dir() / "models"


def check_run_id(run_id: str) -> str:
    """`run_id` if it is a safe single path component, else a `StoreError`."""
    if not RUN_ID_PATTERN.match(run_id) or run_id in {".", ".."}:
        raise StoreError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 128)")
    return run_id


@dataclass(frozen=True, slots=True)
class Workspace:
    """Paths of one workspace directory."""

    root: Path

    @property
    def catalog_path(self) -> Path:
        """The resource catalog's SQLite cache."""
        return self.root / "catalog.sqlite"

    @property
    def llm_cache_path(self) -> Path:
        """The LLM response cache (a `KVStore`), shared by every run of the workspace."""
        return self.root / "llm-cache.sqlite"

    @property
    def runs_dir(self) -> Path:
        """`runs/`: one directory per run (`runs/<run-id>/<stage>/`)."""
        return self.root / "runs"

    @property
    def envs_dir(self) -> Path:
        """`envs/`: environment folders kept in the workspace; eval and the viewer look a name up here first."""
        return self.root / "envs"

    @property
    def inputs_dir(self) -> Path:
        """Inputs stages hand to executor workers, named by their content hash (`inputs/<name>-<hash>`)."""
        return self.root / "inputs"

    def run_path(self, run_id: str) -> Path:
        """`runs/<run-id>/` (the id is checked to be one safe path component)."""
        return self.runs_dir / check_run_id(run_id)

    def ensure(self) -> Workspace:
        """Create the workspace directories if needed; a `StoreError` says why when that fails."""
        try:
            for directory in (self.root, self.runs_dir, self.envs_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create workspace {self.root}: {exc}") from exc
        return self

    def open_llm_cache(self) -> KVStore:
        """The workspace's LLM and embedding cache (created on first use)."""
        self.ensure()
        return KVStore(self.llm_cache_path)

    def run_ids(self) -> list[str]:
        """Ids of the runs present (directories with a manifest), sorted."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if (p / "manifest.json").is_file())
