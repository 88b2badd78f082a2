"""Measuring a library's seeds, and regenerating them with the current generator into a scratch copy.

Contract:
- `library_seed_stats(library)` loads every environment of a library directory (the names in its
  `index.json`) and measures its `default` seed (`build.seed_report.env_seed_stats`).
- `regenerate_seeds(library, out, operations_of)` writes, for every environment, `out/<name>/spec.json`
  (the library's bytes) and `out/<name>/seeds/default.json` (canonical JSON) from
  `build.seeds_faker.seed_state` over the environment's declarative source and the operations
  `operations_of(proposal)` resolves (their examples name keys the seed must hold), then loads the
  written directory with the runtime, which validates every seed record against the environment's
  state schema and reference rules. Returns the stats of the new seeds and, per environment that does
  not load, the reason (the environment is still written, so it can be inspected). The library itself is
  never written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from envfactory.build.seed_report import EnvSeedStats, env_seed_stats
from envfactory.build.seeds_faker import seed_state
from envfactory.errors import EnvFactoryError
from envfactory.runtime import load_env
from envfactory.runtime.declarative.compile import source_of
from envfactory.runtime.loader import SPEC_FILE
from envfactory.spec import JSONObject, Operation, canonical_json
from envfactory.spec.build import Proposal
from envfactory.spec.library import LibraryIndex
from envfactory.store.atomic import write_atomic

OperationsOf = Callable[[Proposal], Sequence[Operation]]


def _names(library: Path) -> list[str]:
    index = LibraryIndex.model_validate_json((library / "index.json").read_bytes())
    return [entry.name for entry in index.entries]


def library_seed_stats(library: Path) -> list[EnvSeedStats]:
    """The seed stats of every environment of `library` (see the module doc)."""
    out = []
    for name in _names(library):
        env = load_env(library / name)
        state = env.seeds.get("default")
        out.append(env_seed_stats(source_of(env.spec), state if isinstance(state, dict) else {}))
    return out


def regenerate_seeds(library: Path, out: Path, operations_of: OperationsOf) -> tuple[list[EnvSeedStats], dict[str, str]]:
    """Regenerate every environment's default seed into `out` and check it loads (see the module doc)."""
    stats: list[EnvSeedStats] = []
    failures: dict[str, str] = {}
    for name in _names(library):
        env = load_env(library / name)
        source = source_of(env.spec)
        proposal = Proposal.model_validate_json((library / name / "proposal.json").read_bytes())
        state: JSONObject = seed_state(source, operations_of(proposal))
        target = out / name
        (target / "seeds").mkdir(parents=True, exist_ok=True)
        write_atomic(target / SPEC_FILE, (library / name / SPEC_FILE).read_bytes())
        write_atomic(target / "seeds" / "default.json", canonical_json(state))
        try:
            load_env(target)
        except EnvFactoryError as exc:
            failures[name] = str(exc).splitlines()[0][:300]
        stats.append(env_seed_stats(source, state))
    return stats, failures
