"""Publishing a library build and reproducing a published library.

Contract:
- `publish_library(build_root, target)` copies a build's accepted environments to `target` (the package's
  read-only library), with `index.json`, the config, the funnel and the recorded LLM answers; the target
  is replaced as a whole, through a staging directory. A directory that is not a readable build is a
  `BuildError`. Each `spec.json` is written in the current file form (`EnvSpec.to_json_bytes`: version 2,
  repeated schemas shared under `$defs`), whatever form the build wrote.
- `repack_library(library)` rewrites a library's `spec.json` files in place in the current file form (each
  atomically); every content hash stays what it was, or `BuildError` names the environment and nothing
  more is written. It is how a library published in an older form reaches the current one.
- `reproduce_library(catalog, library, root)` rebuilds every shipped environment from its recorded
  proposal with the shipped config (and, when the config used a model, a replay of its cassette) and
  says, per environment, whether the spec hash, the report digest and the bytes of `spec.json` came out
  the same.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envfactory.build.errors import BuildError
from envfactory.build.funnel import funnel_of, library_index
from envfactory.build.library import LLM_CASSETTE, BuildPaths, DifferentialHook, LibraryBuilder
from envfactory.llm.protocols import LLMClient
from envfactory.resources.catalog import Catalog
from envfactory.runtime import library_config, load_library_config
from envfactory.runtime.loader import LIBRARY_CONFIG_FILE, SPEC_FILE
from envfactory.spec import EnvSpec, Proposal, ProposalBatch, canonical_json
from envfactory.spec.library import LibraryIndex, ProposalOutcome
from envfactory.store.atomic import write_atomic


def publish_library(build_root: Path, target: Path) -> LibraryIndex:
    """Copy the accepted environments of a build to `target` (the package's read-only library) and
    write `target/index.json`. The target is replaced as a whole."""
    paths = BuildPaths(build_root)
    try:
        config = load_library_config(paths.config)
        outcomes = [ProposalOutcome.model_validate_json(p.read_bytes()) for p in sorted(paths.outcomes.glob("*.json"))]
    except (OSError, ValueError) as exc:
        raise BuildError(f"{build_root} is not a readable library build: {exc}") from exc
    index = library_index(config, paths.envs, outcomes)
    staging = target.with_name(target.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for entry in index.entries:
        shutil.copytree(paths.envs / entry.name, staging / entry.name)
        write_spec_file(staging / entry.name)
    cassette = build_root / LLM_CASSETTE
    if cassette.is_file():  # the recorded answers a reproduction replays
        shutil.copyfile(cassette, staging / LLM_CASSETTE)
    write_atomic(staging / "index.json", index.to_json_bytes())
    write_atomic(staging / LIBRARY_CONFIG_FILE, canonical_json(config.model_dump(mode="json")))
    write_atomic(staging / "funnel.json", funnel_of(config, ProposalBatch.model_validate_json(paths.proposals.read_bytes()),
                                                    outcomes).to_json_bytes())
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return index


def write_spec_file(directory: Path) -> bool:
    """Rewrite `directory/spec.json` in the current file form; True when its bytes changed.

    Raises:
        BuildError: the file is not a valid sealed spec, or its content hash would change.
    """
    path = directory / SPEC_FILE
    try:
        data = path.read_bytes()
        spec = EnvSpec.model_validate_json(data)
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path}: not a readable environment spec: {exc}") from exc
    written = spec.to_json_bytes()
    if written == data:
        return False
    if EnvSpec.model_validate_json(written).content_hash != spec.content_hash:
        raise BuildError(f"{path}: the current file form would change the content hash")
    write_atomic(path, written)
    return True


def repack_library(library: Path) -> list[str]:
    """Rewrite every `spec.json` of the library at `library` in the current file form; the names of
    the environments whose file changed, in index order."""
    index = LibraryIndex.model_validate_json((library / "index.json").read_bytes())
    return [entry.name for entry in index.entries if write_spec_file(library / entry.name)]


@dataclass(frozen=True, slots=True)
class Reproduction:
    """Whether one shipped environment was rebuilt with the same spec hash and report digest (and the
    same `spec.json` bytes), and what differed."""
    name: str
    spec_same: bool
    report_same: bool
    detail: str = ""
    file_same: bool = True


def reproduce_library(catalog: Catalog, library: Path, root: Path, *, only: Sequence[str] | None = None,
                      differential: DifferentialHook | None = None, llm: LLMClient | None = None) -> list[Reproduction]:
    """Rebuild each shipped environment from its recorded proposal (`proposal.json`) with the shipped
    config, and compare the spec hash and report digest with the library's index. A config with
    `seed_realism` needs `llm`: a replay of the library's `llm-cassette.jsonl` reproduces the build."""
    config = library_config(library)
    index = LibraryIndex.model_validate_json((library / "index.json").read_bytes())
    if root.exists():
        shutil.rmtree(root)
    builder = LibraryBuilder(catalog, config, root, differential=differential, llm=llm)
    try:
        return _reproduce_entries(builder, index, library, only)
    finally:
        builder.close()


def _reproduce_entries(builder: LibraryBuilder, index: LibraryIndex, library: Path,
                       only: Sequence[str] | None) -> list[Reproduction]:
    results = []
    for entry in index.entries:
        if only and entry.name not in only:
            continue
        proposal = Proposal.model_validate_json((library / entry.name / "proposal.json").read_bytes())
        outcome = builder.build_proposal(proposal)
        rebuilt = builder.paths.envs / (outcome.env_name or entry.name) / SPEC_FILE
        results.append(Reproduction(
            name=entry.name, spec_same=outcome.spec_hash == entry.spec_hash,
            report_same=outcome.report_digest == entry.report_digest,
            detail=outcome.reason,
            file_same=rebuilt.is_file() and rebuilt.read_bytes() == (library / entry.name / SPEC_FILE).read_bytes(),
        ))
    return results
