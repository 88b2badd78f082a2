"""What the viewer finds in a workspace, read-only: environments, runs, stages, graphs, chains,
tasks, trajectories and evaluation runs.

Layout: the run layout only (DESIGN §11): the workspace's `envs/`, and `runs/<id>/` with its stages
(`runs/<id>/<stage>/`; library builds in `runs/<id>/library/build/`, the graph of `envfactory graph build`
in `runs/graph-build/graph/`). Folders an older version wrote (`graph/`, `builds/<name>/`) are not read:
`envfactory view` migrates them first (`cli._migrate.migrate_workspace`).

Contract:
- Nothing here writes. Every path the viewer opens comes from listing a directory under the workspace
  root (or the shipped library), never from joining text of a request onto a path: a request names an
  item by a key (`library`, `build-<name>`, a run id, a file's relative path) that is looked up among
  the listed items, and every resolved path is checked to lie inside its root (`confined`).
- A missing or unreadable artifact raises `ArtifactProblem` with a sentence saying which file and what
  is wrong; an unknown key raises `NotFound`. Pages turn them into a clear message, never a traceback.
- Parsed files are cached per (path, size, mtime) in the instance (bounded), so a page reads only what
  changed since it was last shown.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from envfactory.spec import RunManifest, StageManifest
from envfactory.store import Workspace
from envfactory.viewer.jsonl import IndexCache

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

TRAJECTORY_FILES = ("trajectories*.jsonl", "*/trajectories*.jsonl")
TASK_FILES = ("tasks*.jsonl", "*/tasks*.jsonl")
CHAIN_FILES = ("chains*.jsonl", "*/chains*.jsonl")
DROP_FILES = ("drops*.jsonl", "*/drops*.jsonl")
GRAPH_FILES = ("graph.json", "*/graph.json")
ATTEMPT_FILE = "attempts.jsonl"
EVAL_REPORT = "report.json"


class NotFound(Exception):
    """No item with that key (shown as a 404 page)."""


class ArtifactProblem(Exception):
    """An artifact exists but cannot be shown: missing file, bad JSON, wrong model or version."""


def confined(root: Path, path: Path) -> Path:
    """`path` resolved, if it lies inside `root` (symbolic links followed); else `NotFound`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise NotFound(f"{path.name} lies outside {root}")
    return resolved


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    """The first problems of a pydantic error, one line each, without the input values."""
    lines = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class EnvSource:
    """A directory of environment directories: the shipped library, the workspace's `envs/`, a build."""

    key: str
    label: str
    path: Path


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One directory under `runs/`: its manifest (or the problem reading it) and its stage names."""

    run_id: str
    path: Path
    manifest: RunManifest | None
    problem: str
    stages: tuple[str, ...]
    is_eval: bool


@dataclass(frozen=True, slots=True)
class DataFile:
    """A JSONL or JSON artifact found in the workspace, keyed by its path relative to the root."""

    key: str
    path: Path
    run_id: str


def library_root() -> Path:
    """The environment library shipped in the package (`envfactory/library`)."""
    return Path(str(importlib.resources.files("envfactory") / "library"))


class WorkspaceData:
    """Read-only access to one workspace and the shipped library (see the module contract)."""

    def __init__(self, root: Path, library: Path | None = None, cache_limit: int = 512) -> None:
        """Read `root` (a workspace; nothing is written) and `library` (default: the shipped library).
        `cache_limit`: how many parsed files are kept."""
        self.workspace = Workspace(root)
        self.root = root.resolve()
        self.library = (library or library_root()).resolve()
        self.indexes = IndexCache()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Path, str], tuple[tuple[int, int], Any]] = OrderedDict()
        self._cache_limit = cache_limit

    # ---------------------------------------------------------------------------------------------
    # Parsed, cached files

    def cached(self, path: Path, kind: str, parse: Callable[[bytes], T]) -> T:
        """`parse(bytes of path)`, cached while the file's size and mtime are unchanged.

        A missing file or one `parse` rejects is an `ArtifactProblem` naming the file.
        """
        try:
            stat = path.stat()
        except OSError as exc:
            raise ArtifactProblem(f"{self.display(path)}: missing ({exc.strerror})") from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        key = (path, kind)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[1]  # type: ignore[no-any-return]
        try:
            value = parse(path.read_bytes())
        except OSError as exc:
            raise ArtifactProblem(f"{self.display(path)}: cannot be read ({exc.strerror})") from None
        except orjson.JSONDecodeError as exc:
            raise ArtifactProblem(f"{self.display(path)}: not valid JSON ({exc})") from None
        except ValidationError as exc:
            raise ArtifactProblem(f"{self.display(path)}: not a valid {kind}: {validation_summary(exc)}") from None
        except ValueError as exc:
            raise ArtifactProblem(f"{self.display(path)}: {exc}") from None
        with self._lock:
            self._cache[key] = (stamp, value)
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
        return value

    def json(self, path: Path) -> Any:
        """The parsed JSON of `path` (cached)."""
        return self.cached(path, "json", orjson.loads)

    def model(self, path: Path, model: type[M], kind: str | None = None) -> M:
        """`path` validated as `model` (cached); problems name the file and the model."""
        return self.cached(path, kind or model.__name__, model.model_validate_json)

    def display(self, path: Path) -> str:
        """A path as the pages show it: relative to the workspace or the library."""
        for base, prefix in ((self.root, ""), (self.library, "library/")):
            try:
                return prefix + path.resolve().relative_to(base).as_posix()
            except ValueError:
                continue
        return path.name

    # ---------------------------------------------------------------------------------------------
    # Environments

    def env_sources(self) -> list[EnvSource]:
        """The shipped library, the workspace's `envs/`, and each library build's accepted and rejected envs."""
        sources = [EnvSource("library", "shipped library", self.library)]
        if self.workspace.envs_dir.is_dir():
            sources.append(EnvSource("workspace", "workspace envs/", self.workspace.envs_dir))
        for name, label, build in self.build_roots():
            for part, verdict in (("envs", "accepted"), ("rejected", "rejected")):
                if (build / part).is_dir():
                    key = f"build-{name}" if part == "envs" else f"rejected-{name}"
                    sources.append(EnvSource(key, f"{label}: {verdict}", build / part))
        return sources

    def build_roots(self) -> list[tuple[str, str, Path]]:
        """Library builds, as (key, label, root): `runs/<id>/library/build/`, the library stage of a run
        (`envfactory library build` of config NAME writes run `library-NAME`, `envfactory run` its own)."""
        runs = self.workspace.runs_dir
        if not runs.is_dir():
            return []
        return [(f"run-{p.name}", f"run {p.name} library build", p / "library" / "build")
                for p in sorted(runs.iterdir()) if (p / "library" / "build").is_dir()]

    def env_source(self, key: str) -> EnvSource:
        """The environment source with this key; `NotFound` for an unknown key."""
        for source in self.env_sources():
            if source.key == key:
                return source
        raise NotFound(f"no environment source {key!r}")

    def env_names(self, source: EnvSource) -> list[str]:
        """Directories of `source` that hold a `spec.json`, sorted."""
        try:
            return sorted(p.name for p in source.path.iterdir() if p.is_dir() and (p / "spec.json").is_file())
        except OSError:
            return []

    def env_dir(self, source_key: str, name: str) -> Path:
        """The directory of environment `name` in source `source_key` (`NotFound` if it is not listed)."""
        source = self.env_source(source_key)
        if name not in self.env_names(source):
            raise NotFound(f"no environment {name!r} in {source.label}")
        return confined(source.path, source.path / name)

    # ---------------------------------------------------------------------------------------------
    # Runs and stages

    def runs(self) -> list[RunInfo]:
        """Every directory under `runs/`, newest name last; a bad manifest is reported, not fatal."""
        runs_dir = self.workspace.runs_dir
        if not runs_dir.is_dir():
            return []
        return [self.run(p.name) for p in sorted(runs_dir.iterdir()) if p.is_dir()]

    def run(self, run_id: str) -> RunInfo:
        """The run `run_id` of the workspace: its manifest (or the problem reading it), its finished stages and
        whether it is an evaluation. `NotFound` when no such run directory exists."""
        runs_dir = self.workspace.runs_dir
        if not runs_dir.is_dir() or run_id not in {p.name for p in runs_dir.iterdir() if p.is_dir()}:
            raise NotFound(f"no run {run_id!r}")
        path = confined(runs_dir, runs_dir / run_id)
        manifest: RunManifest | None = None
        problem = ""
        if (path / "manifest.json").is_file():
            try:
                manifest = self.model(path / "manifest.json", RunManifest, "run manifest")
            except ArtifactProblem as exc:
                problem = str(exc)
        else:
            problem = f"{self.display(path)}: no manifest.json (the run never started properly or is not a run)"
        stages = tuple(sorted(p.name for p in path.iterdir() if p.is_dir() and (p / "manifest.json").is_file()))
        is_eval = ((path / ATTEMPT_FILE).is_file() or (path / EVAL_REPORT).is_file()
                   or (manifest is not None and manifest.command.startswith("envfactory eval")))
        return RunInfo(run_id, path, manifest, problem, stages, is_eval)

    def stage_manifest(self, run: RunInfo, stage: str) -> StageManifest:
        """The manifest of `stage` in `run`; `NotFound` for a stage the run lacks, `ArtifactProblem` for an
        invalid manifest."""
        if stage not in run.stages:
            raise NotFound(f"no stage {stage!r} in run {run.run_id!r}")
        return self.model(confined(run.path, run.path / stage / "manifest.json"), StageManifest, "stage manifest")

    # ---------------------------------------------------------------------------------------------
    # Data files found by pattern (graphs, chains, tasks, trajectories)

    def data_files(self, patterns: tuple[str, ...]) -> list[DataFile]:
        """Files matching `patterns` in every run (and its stages)."""
        found: dict[str, DataFile] = {}
        for base, run_id in ((run.path, run.run_id) for run in self.runs()):
            for pattern in patterns:
                for path in sorted(base.glob(pattern)):
                    if path.is_file() and path.resolve().is_relative_to(self.root):
                        key = path.resolve().relative_to(self.root).as_posix()
                        found.setdefault(key, DataFile(key, path.resolve(), run_id))
        return [found[key] for key in sorted(found)]

    def data_file(self, patterns: tuple[str, ...], key: str) -> DataFile:
        """The data file with this key among those matching `patterns`; `NotFound` otherwise."""
        for item in self.data_files(patterns):
            if item.key == key:
                return item
        raise NotFound(f"no file {key!r}")

    def eval_runs(self) -> list[RunInfo]:
        """Runs holding an evaluation's `attempts.jsonl` or `report.json`."""
        return [run for run in self.runs() if run.is_eval]
