"""Publishing a library build and reproducing a published library.

Contract:
- `publish_library(build_root, target)` copies a build's accepted environments to `target` (the package's
  read-only library), with `index.json`, the config, the funnel and the recorded LLM answers; the target
  is replaced as a whole, through a staging directory. A directory that is not a readable build is a
  `BuildError`.
- `reproduce_library(catalog, library, root)` rebuilds every shipped environment from its recorded
  proposal with the shipped config (and, when the config used a model, a replay of its cassette) and
  says, per environment, whether the spec hash and the report digest came out the same.
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
from envfactory.runtime.loader import LIBRARY_CONFIG_FILE
from envfactory.spec import Proposal, ProposalBatch, canonical_json
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


@dataclass(frozen=True, slots=True)
class Reproduction:
    """Whether one shipped environment was rebuilt with the same spec hash and report digest, and what
    differed."""
    name: str
    spec_same: bool
    report_same: bool
    detail: str = ""


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
        results.append(Reproduction(
            name=entry.name, spec_same=outcome.spec_hash == entry.spec_hash,
            report_same=outcome.report_digest == entry.report_digest,
            detail=outcome.reason,
        ))
    return results
