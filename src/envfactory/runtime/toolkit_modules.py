"""Reading and importing a python toolkit's module (`toolkit.py`): the source is read once (never
imported by reading), and exactly those bytes run as a module named after the environment and the
content's hash, so what runs is what was read and hashed.

Errors: a module outside the environment directory, unreadable, or failing at import time raises
`SpecError` naming the file. Importing runs the module's code: trusted toolkits only, or inside a
sandbox worker.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path

from envfactory.errors import SpecError
from envfactory.spec import EnvMeta, PythonImplementation


def read_toolkit_source(meta: EnvMeta, impl: PythonImplementation, directory: Path) -> tuple[Path, bytes]:
    """The resolved path and bytes of a toolkit module (reading, never importing it).

    Raises:
        SpecError: the module lies outside the environment directory or cannot be read.
    """
    root = directory.resolve()
    path = (root / impl.module).resolve()
    if not path.is_relative_to(root):
        raise SpecError(
            f"{meta.name}: toolkit module {impl.module} lies outside the environment directory {root}"
        )
    try:
        return path, path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the toolkit module: {exc.strerror or exc}") from exc


class SourceBytesLoader(importlib.abc.SourceLoader):
    """Runs exactly the bytes that were read (and hashed) as the module at `path`: no second read of
    the file, so what runs is what was named, and the import system compiles it like any module."""

    def __init__(self, path: Path, source: bytes) -> None:
        """Load the module from `source` (the bytes already read from `path`); `path` only names it."""
        self._path = path
        self._source = source

    def get_filename(self, fullname: str) -> str:
        """The path the module is reported under (tracebacks, `__file__`)."""
        return str(self._path)

    def get_data(self, path: str) -> bytes:
        """The source bytes given at construction, whatever `path` is asked for."""
        return self._source

    def exec_module(self, module: types.ModuleType) -> None:
        """Run the module, then drop the loader's reference to the source bytes."""
        try:
            super().exec_module(module)
        finally:
            # The module keeps its loader (`__loader__`); it need not keep the source bytes alive too.
            self._source = b""


def import_toolkit_module(env: str, path: Path, source: bytes) -> types.ModuleType:
    """Import `source` as the toolkit module at `path` of environment `env` (once per content);
    a failure at import time is a `SpecError` naming the file."""
    # The name is unique per (environment, module content): two copies of one environment share the
    # module, different contents never collide, and nothing generic (`toolkit`) enters sys.modules. The
    # module stays registered so pydantic and dataclasses can resolve its annotations later.
    name = f"envfactory_toolkit_{env}_{hashlib.sha256(source).hexdigest()[:16]}"
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    loader = SourceBytesLoader(path, source)
    spec = importlib.util.spec_from_loader(name, loader, origin=str(path))
    if spec is None:
        raise SpecError(f"{path}: cannot be imported as a python module")
    module = importlib.util.module_from_spec(spec)
    return run_toolkit_module(module, name, path, lambda: loader.exec_module(module))


def run_toolkit_module(module: types.ModuleType, name: str, path: Path, run: Callable[[], None]) -> types.ModuleType:
    """Register `module` as `name` and `run` its body; unregister it and raise `SpecError` if that fails."""
    sys.modules[name] = module
    try:
        run()
    except SpecError as exc:
        del sys.modules[name]
        raise SpecError(f"{path}: {exc}") from exc
    except Exception as exc:  # the module's own failure (syntax, import, bug at import time)
        del sys.modules[name]
        raise SpecError(f"{path}: importing the toolkit module failed: {type(exc).__name__}: {exc}") from exc
    return module
