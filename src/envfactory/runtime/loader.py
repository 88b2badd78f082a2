"""Loading environments from directories, files and the bundled library.

An environment directory holds `env.json` (the source: declarative or python format) or `spec.json`
(a sealed `EnvSpec`), optional `seeds/<name>.json` state files, and for python toolkits the module
named by the implementation. Bundled reference environments live in the package (`envfactory/envs/`)
and are read-only.

The shipped library (`envfactory/library/`) is read here too: `library_root()` is where it lives and
`load_library_config` is the one reader of a library's `config.json` (a `LibraryConfig`), used by
the CLI and by `build` alike. A missing, unreadable or invalid config raises `SpecError` naming the
file; nothing else parses that file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from envfactory.errors import SandboxRequiredError, SpecError
from envfactory.runtime.backend import Backend
from envfactory.runtime.declarative import DeclarativeBackend, compile_source
from envfactory.runtime.declarative.compile import check_sealed
from envfactory.runtime.environment import Environment
from envfactory.spec import DeclarativeEnvSource, EnvSpec, PythonEnvSource
from envfactory.spec.env import HybridImplementation, PythonImplementation
from envfactory.spec.library import LibraryConfig

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxPool

SOURCE_FILE = "env.json"
SPEC_FILE = "spec.json"
LIBRARY_CONFIG_FILE = "config.json"


def bundled_envs_root() -> Path:
    """The folder of the environments shipped in the package (`envfactory/envs`)."""
    return Path(str(resources.files("envfactory") / "envs"))


def bundled_env_names() -> list[str]:
    """Names of the bundled environments (folders with a source or a spec), sorted."""
    root = bundled_envs_root()
    return sorted(p.name for p in root.iterdir() if (p / SOURCE_FILE).is_file() or (p / SPEC_FILE).is_file())


def library_root() -> Path:
    """The library of verified environments shipped with the package (read-only package data)."""
    return Path(str(resources.files("envfactory") / "library"))


def load_library_config(path: Path) -> LibraryConfig:
    """Read the `LibraryConfig` JSON file at `path` (a committed config, a build's or a library's
    `config.json`). Raises `SpecError` naming the file when it is missing, unreadable, not JSON or
    not a library config of this version; deterministic (the same bytes give the same config)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such library config") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the library config ({exc.strerror or exc})") from exc
    try:
        return LibraryConfig.model_validate_json(data)
    except ValidationError as exc:
        raise SpecError(f"{path}: not a library config: {exc}") from exc


def library_config(library: Path | None = None) -> LibraryConfig:
    """The config the library directory `library` (default: the shipped library) was built from,
    i.e. its `config.json`, read with `load_library_config`."""
    return load_library_config((library_root() if library is None else library) / LIBRARY_CONFIG_FILE)


def library_env_names() -> list[str]:
    """Names of the shipped library's environments (folders with a spec), sorted; empty without a library."""
    root = library_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / SPEC_FILE).is_file())


def describe_validation_error(what: str, exc: ValidationError) -> str:
    """A readable list of a pydantic validation error's first 20 problems, each with its location."""
    lines = []
    for err in exc.errors()[:20]:
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"  - {loc}: {err['msg']}")
    more = f"\n  … and {exc.error_count() - 20} more" if exc.error_count() > 20 else ""
    return f"{what}: {exc.error_count()} problem(s):\n" + "\n".join(lines) + more


def read_json_file(path: Path) -> Any:
    """The JSON value of a file. Raises `SpecError` when it is missing or not JSON."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such file") from exc
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from exc


def parse_env_document(data: Any, what: str) -> DeclarativeEnvSource | PythonEnvSource | EnvSpec:
    """Recognise and validate one of the three environment file formats."""
    if not isinstance(data, dict):
        raise SpecError(f"{what}: expected a JSON object")
    fmt = data.get("format")
    try:
        if fmt == "envfactory.declarative":
            return DeclarativeEnvSource.model_validate(data)
        if fmt == "envfactory.python":
            return PythonEnvSource.model_validate(data)
        if fmt is None and "implementation" in data and "state_schema" in data:
            return EnvSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(what, exc)) from exc
    raise SpecError(
        f"{what}: unknown environment format {fmt!r}; expected 'envfactory.declarative', "
        "'envfactory.python' or a sealed EnvSpec (spec.json)"
    )


def backend_for(
    document: DeclarativeEnvSource | PythonEnvSource | EnvSpec,
    directory: Path | None,
    *,
    trusted: bool = False,
    sandbox: SandboxPool | None = None,
) -> Backend:
    """The backend of a parsed environment document.

    Python toolkits run in-process only when the *loader* trusts them (`trusted=True`, or the
    environment is bundled with the package and declares itself trusted); an environment cannot grant
    itself trust. Untrusted toolkits run in a worker of `sandbox`, and raise `SandboxRequiredError`
    without one. Hybrid environments (authored tools) need `sandbox` whatever `trusted` says. A sealed `spec.json` must match what its implementation derives.
    """
    if isinstance(document, DeclarativeEnvSource):
        return DeclarativeBackend(compile_source(document))
    if isinstance(document, PythonEnvSource):
        return _python_backend(document.meta, document.implementation, directory, trusted, sandbox)
    impl = document.implementation
    if isinstance(impl, HybridImplementation):
        from envfactory.runtime.hybrid import HybridBackend

        if directory is None:
            raise SpecError(f"{document.meta.name}: a hybrid environment must be loaded from its directory")
        return HybridBackend(document, sandbox, directory)
    if isinstance(impl, PythonImplementation):
        backend = _python_backend(document.meta, impl, directory, trusted, sandbox)
        if document.content_hash and backend.spec.content_hash != document.content_hash:
            raise SpecError(
                f"{document.meta.name}: spec.json (hash {document.content_hash[:12]}) does not match what "
                f"the toolkit derives ({backend.spec.content_hash[:12]}); the toolkit or the spec was edited"
            )
        return backend
    return DeclarativeBackend(check_sealed(document))


def _python_backend(
    meta: Any, impl: PythonImplementation, directory: Path | None, trusted: bool, sandbox: SandboxPool | None
) -> Backend:
    from envfactory.runtime.toolkit import load_python_backend

    if directory is None:
        raise SpecError(f"{meta.name}: a python toolkit environment must be loaded from its directory")
    bundled = directory.resolve().is_relative_to(bundled_envs_root().resolve())
    effective = impl.model_copy(update={"trusted": trusted or (bundled and impl.trusted)})
    if effective.trusted:
        return load_python_backend(meta, effective, directory)
    if sandbox is None:
        raise SandboxRequiredError(
            f"{meta.name}: toolkit {impl.module} is not trusted; untrusted python toolkits only run in sandbox "
            "workers, never in-process: pass a SandboxPool (load_env(..., sandbox=SandboxPool())), or "
            "trusted=True for curated code"
        )
    return sandbox.load_backend(meta, effective, directory)


def load_seeds(directory: Path) -> dict[str, Any]:
    """The seed states of an environment folder (`seeds/*.json`) by name, in name order."""
    seeds_dir = directory / "seeds"
    if not seeds_dir.is_dir():
        return {}
    return {path.stem: read_json_file(path) for path in sorted(seeds_dir.glob("*.json"))}


def load_env(ref: str | Path, *, trusted: bool = False, sandbox: SandboxPool | None = None) -> Environment:
    """Load an environment from a directory, an env/spec file, or the name of a bundled environment
    or of an environment of the shipped library (bundled names win).

    `trusted=True` lets a python toolkit that is not bundled run in this process. Otherwise such a
    toolkit runs in a worker of `sandbox` (its spec is derived there too: its code is never imported
    here); without a pool it raises `SandboxRequiredError`.
    """
    path = Path(ref)
    if not path.exists():
        bare = isinstance(ref, str) and "/" not in ref and ref not in ("", ".", "..")
        candidates = [bundled_envs_root() / str(ref), library_root() / str(ref)] if bare else []
        found = next((c for c in candidates if c.is_dir()), None)
        if found is None:
            known = ", ".join(bundled_env_names())
            raise SpecError(f"no environment at {ref!s} (not a path, nor a bundled environment ({known}), "
                            "nor one of the shipped library's: `envfactory envs list --library`)")
        path = found
    if path.is_dir():
        directory = path
        file = path / SOURCE_FILE if (path / SOURCE_FILE).is_file() else path / SPEC_FILE
    else:
        directory, file = path.parent, path
    document = parse_env_document(read_json_file(file), str(file))
    backend = backend_for(document, directory, trusted=trusted, sandbox=sandbox)
    return environment_of(backend, load_seeds(directory), directory)


def environment_of(backend: Backend, seeds: dict[str, Any], directory: Path) -> Environment:
    """The environment over `backend` with the seed states `seeds` (by name, in file-name order), each
    loaded once to check it: a `SpecError` naming `<directory>/seeds/<name>.json` when one does not fit.
    The tail of `load_env`, for a caller that holds the parsed document and seeds in memory (the library
    build, which has just written them to `directory`)."""
    env = Environment.create(backend, seeds=seeds, directory=directory)
    for name, state in seeds.items():
        try:
            backend.load_state(state)
        except SpecError as exc:
            raise SpecError(f"{directory}/seeds/{name}.json: {exc}") from exc
    return env
