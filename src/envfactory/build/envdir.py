"""Writing a compiled environment's directory, and keeping the environment in memory while a build works
on it.

Contract:
- `write_env_dir(compiled, directory) -> EnvSpec` writes `spec.json` (the sealed spec) and
  `seeds/<name>.json` (canonical JSON) and loads the directory with the runtime, so a written directory
  always loads; the sealed spec is returned (`envfactory build` uses it).
- `write_compiled(compiled, directory) -> (EnvSpec, Environment)` writes the same bytes and returns the
  sealed spec and the environment over them without reading the files back: its spec and seeds are parsed
  from the bytes just written, so they are the values `load_env` would read, in its order (mapping order
  matters: verification's argument generation walks schemas in it), without `load_env`'s file reads and
  its recompile of the spec (`check_sealed`: `compile_source` sealed it a moment before). Each seed is
  loaded once to check it; one that does not fit raises `SpecError` naming its file, as `load_env` does.
  The library builder keeps this environment for a round (seed check, differential tests, verification,
  whose `load` check records for it the same evidence as for the directory).
- Both are deterministic and write every file atomically. Errors: `SpecError` (the source does not compile
  or a seed does not fit), `OSError` from the file system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from envfactory.build.compile import CompiledEnv
from envfactory.errors import SpecError
from envfactory.runtime import Environment, load_env
from envfactory.runtime.declarative import DeclarativeBackend, compile_source
from envfactory.runtime.loader import SPEC_FILE, environment_of, parse_env_document
from envfactory.spec import EnvSpec, canonical_json
from envfactory.store.atomic import write_atomic


def _write(compiled: CompiledEnv, out: Path) -> tuple[EnvSpec, bytes, dict[str, Any]]:
    """Seal and write the spec and the seeds; return the spec, the spec's bytes and the seeds as written
    (file-name order)."""
    spec = compile_source(compiled.source)
    (out / "seeds").mkdir(parents=True, exist_ok=True)
    data = spec.to_json_bytes()
    write_atomic(out / SPEC_FILE, data)
    seeds: dict[str, Any] = {}
    for name, state in sorted(compiled.seeds.items(), key=lambda item: f"{item[0]}.json"):
        seed = canonical_json(state)
        write_atomic(out / "seeds" / f"{name}.json", seed)
        seeds[name] = orjson.loads(seed)
    return spec, data, seeds


def write_env_dir(compiled: CompiledEnv, directory: Path | str) -> EnvSpec:
    """Write `spec.json` (sealed) and `seeds/*.json` into `directory`; return the sealed spec.

    Seeds are checked by loading the directory with the runtime, so a written directory always loads.
    """
    out = Path(directory)
    spec, _, _ = _write(compiled, out)
    load_env(out)
    return spec


def write_compiled(compiled: CompiledEnv, directory: Path | str) -> tuple[EnvSpec, Environment]:
    """Write the directory as `write_env_dir` does and return the sealed spec and the environment over
    the written spec and seeds, opened in memory (see the module contract)."""
    out = Path(directory)
    spec, data, seeds = _write(compiled, out)
    written = parse_env_document(orjson.loads(data), str(out / SPEC_FILE))
    if not isinstance(written, EnvSpec):  # cannot happen: spec.json of a compiled source is a sealed EnvSpec
        raise SpecError(f"{out / SPEC_FILE}: not a sealed EnvSpec")
    return spec, environment_of(DeclarativeBackend(written), seeds, out)
