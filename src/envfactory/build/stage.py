"""The `library` stage of `envfactory run`: the environments a run works with (`runs/<id>/library/`).

Contract: `run_library(config, workspace, deps) -> StageManifest`.
- `shipped`: the package's read-only library (`deps.shipped_root`), optionally limited to some domains
  or environments; nothing is built. Names or domains the library does not hold are an error before
  anything is written.
- `build`: a `LibraryBuilder` run of the `LibraryConfig` at `config.library.config`, checkpointed in
  `library/build/` (a killed build resumes there, proposal by proposal: `LibraryBuilder.run(resume=True)`).
  The build itself (catalog, differential, contamination, model wired by the CLI) is `deps.build`.
- Writes `library.json` (`LibrarySelection`: names, domains, spec hashes, paths relative to the run
  directory for built environments) and the stage manifest (counts: environments, per domain).
- Deterministic: the selection's bytes depend only on the library's content and the config.
- `envfactory library build` is this stage alone, in run `library_run_id(config name)`; a build an older
  version wrote to `<workspace>/builds/<name>/` is moved there first (`migrate_legacy_build`).
- `envfactory library reproduce` rebuilds a library in the scratch build `reproduce_root(workspace)`
  (`runs/reproduce-library/library/build/`, emptied by each reproduction); an older version's scratch in
  `<workspace>/builds/reproduce/` is moved there (`migrate_legacy_reproduce`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envfactory.build.errors import BuildError
from envfactory.build.funnel import library_index
from envfactory.build.library import BuildPaths
from envfactory.runtime.loader import load_library_config
from envfactory.spec import BuiltLibrary, ShippedLibrary, StageManifest, sha256_hex
from envfactory.spec.library import LibraryConfig, LibraryIndex, ProposalOutcome
from envfactory.spec.pipeline import LibrarySelection, LibraryStageConfig, SelectedEnv
from envfactory.store import StageDir, Workspace

STAGE = "library"
SELECTION = "library.json"

LibraryBuild = Callable[[LibraryConfig, Path], None]
"""Builds (or resumes) the library of a config into a build root; the CLI wires catalog, moto and the
model around `LibraryBuilder.run(resume=True)`."""


@dataclass(frozen=True, slots=True)
class LibraryDeps:
    """What the stage needs besides its config: the shipped library's root, and for `build`, a factory."""

    shipped_root: Path
    build: LibraryBuild | None = None


def shipped_selection(root: Path, library: ShippedLibrary) -> LibrarySelection:
    """The shipped library's environments that `library` selects; a `BuildError` names unknown ones."""
    index_bytes = (root / "index.json").read_bytes()
    index = LibraryIndex.model_validate_json(index_bytes)
    known_domains = {e.domain for e in index.entries}
    known_names = {e.name for e in index.entries}
    problems = [f"stages.library.domains: {d!r} is not a domain of the shipped library" for d in library.domains
                if d not in known_domains]
    problems += [f"stages.library.envs: {n!r} is not an environment of the shipped library" for n in library.envs
                 if n not in known_names]
    if problems:
        raise BuildError("; ".join(problems))
    chosen = [e for e in index.entries
              if (not library.domains or e.domain in library.domains) and (not library.envs or e.name in library.envs)]
    return LibrarySelection(
        source="shipped", library_digest=sha256_hex(index_bytes),
        envs=[SelectedEnv(name=e.name, domain=e.domain, spec_hash=e.spec_hash) for e in chosen],
    )


def _built_selection(stage: StageDir, config: LibraryConfig, build: LibraryBuild,
                     library: BuiltLibrary) -> LibrarySelection:
    paths = BuildPaths(stage.path / "build")
    build(config, paths.root)
    outcomes = [ProposalOutcome.model_validate_json(p.read_bytes()) for p in sorted(paths.outcomes.glob("*.json"))]
    index = library_index(config, paths.envs, outcomes)
    relative = paths.envs.relative_to(stage.run.path)
    return LibrarySelection(
        source="build", library_digest=index.canonical_hash(),
        envs=[SelectedEnv(name=e.name, domain=e.domain, spec_hash=e.spec_hash, path=f"{relative.as_posix()}/{e.name}")
              for e in index.entries if not library.domains or e.domain in library.domains],
    )


def run_library(config: LibraryStageConfig, workspace: Workspace, deps: LibraryDeps) -> StageManifest:
    """Select (shipped) or build the run's environments; write `library.json` and the manifest."""
    library = config.library
    if isinstance(library, ShippedLibrary):
        selection = shipped_selection(deps.shipped_root, library)
        stage = StageDir.open(workspace, config.run_id, STAGE)
    else:
        if deps.build is None:
            raise BuildError("the library stage builds a library but was given no build function")
        library_config = load_library_config(Path(library.config))
        if library.domains:
            library_config = library_config.model_copy(
                update={"domains": [d for d in library_config.domains if d in library.domains]})
        stage = StageDir.open(workspace, config.run_id, STAGE)
        selection = _built_selection(stage, library_config, deps.build, library)
    stage.write_bytes(SELECTION, selection.to_json_bytes() + b"\n")
    per_domain = Counter(e.domain for e in selection.envs)
    return stage.finish(
        outputs=[SELECTION], config=config.model_dump(mode="json"),
        inputs={"library": selection.library_digest}, seeds={"library": config.seed},
        counts={"environments": len(selection.envs), **{f"domain:{d}": n for d, n in sorted(per_domain.items())}},
    )


def library_run_id(config_name: str) -> str:
    """The run that `envfactory library build` of a config named `config_name` writes (`runs/<id>/library/`)."""
    return f"library-{config_name}"


REPRODUCE_RUN = "reproduce-library"
"""The run whose library stage holds the scratch build of `envfactory library reproduce` (not a
`library_run_id`, so that it never meets the build of a config)."""


def reproduce_root(workspace: Workspace) -> Path:
    """`runs/reproduce-library/library/build/`: where `envfactory library reproduce` rebuilds a library
    (`reproduce_library` empties it first). The stage directory is created, the build folder is not; a
    `StoreError` when the workspace cannot be written. A scratch rebuild an older version left in
    `builds/reproduce/` is moved there first, or dropped when a newer one is there already
    (`migrate_legacy_reproduce(discard=True)`: the reproduction empties it anyway)."""
    migrate_legacy_reproduce(workspace, discard=True)
    return StageDir.open(workspace, REPRODUCE_RUN, STAGE).path / "build"


LEGACY_BUILDS = "builds"
"""`<workspace>/builds/`: where an older version kept library builds (`builds/<config name>/`) and the
scratch rebuild of `library reproduce` (`builds/reproduce/`, which holds no `config.json`)."""


def legacy_scratch(workspace: Workspace) -> Path | None:
    """`builds/reproduce/` when it is an older `library reproduce`'s scratch rebuild (a build of a config holds
    the `config.json` every `LibraryBuilder.run` writes; a reproduction never wrote one), else None."""
    scratch = workspace.root / LEGACY_BUILDS / "reproduce"
    return scratch if scratch.is_dir() and not (scratch / "config.json").exists() else None


def migrate_legacy_reproduce(workspace: Workspace, *, discard: bool = False) -> Path | None:
    """Move an older `library reproduce`'s scratch rebuild (`legacy_scratch`) to the scratch build of run
    `reproduce-library`; returns the new place when something was moved, None otherwise. When that place
    already holds a rebuild: with `discard`, the older scratch is removed (both are scratch); without, a
    `BuildError` names both. The move is one rename."""
    legacy = legacy_scratch(workspace)
    if legacy is None:
        return None
    target = StageDir.open(workspace, REPRODUCE_RUN, STAGE).path / "build"
    if target.exists() and any(target.iterdir()):
        if not discard:
            raise BuildError(f"{legacy} (an earlier version's scratch rebuild) and {target} both hold a "
                             "reproduction; remove one of them")
        shutil.rmtree(legacy)
        moved = None
    else:
        if target.exists():
            target.rmdir()
        legacy.rename(target)
        moved = target
    with contextlib.suppress(OSError):  # `builds/` itself, once empty
        legacy.parent.rmdir()
    return moved


def migrate_legacy_build(workspace: Workspace, config_name: str) -> Path | None:
    """Move a build an older version kept in `<workspace>/builds/<name>/` to the stage layout
    (`runs/library-<name>/library/build/`), unless the new place already holds one; returns the new
    place when something was moved. The move is one rename: a build is never half in each place."""
    legacy = workspace.root / LEGACY_BUILDS / config_name
    if not legacy.is_dir():
        return None
    target = StageDir.open(workspace, library_run_id(config_name), STAGE).path / "build"
    if target.exists() and any(target.iterdir()):
        raise BuildError(f"{legacy} (an earlier version's layout) and {target} both hold a build of "
                         f"{config_name!r}; keep one of them")
    if target.exists():
        target.rmdir()
    legacy.rename(target)
    with contextlib.suppress(OSError):  # `builds/` itself, once empty; other builds may remain
        legacy.parent.rmdir()
    return target
