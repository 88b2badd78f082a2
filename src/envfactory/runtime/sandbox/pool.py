"""`SandboxPool`: a bounded set of sandbox worker processes, one environment per worker.

    with SandboxPool(max_workers=4, limits=SandboxLimits(call_timeout_s=2)) as pool:
        env = load_env("path/to/untrusted_env", sandbox=pool)
        with open_session(env, seed=1) as session:
            session.call("some_tool", {...})

Each environment loaded through the pool gets its own worker. When `max_workers` workers are alive
and another environment needs one, the least recently used worker that is not in the middle of a
request is stopped; its sessions are rebuilt by replay when they are next used. `close()` kills
every worker and removes every scratch directory; so does garbage collection of the pool. The pool
holds no module-level state: two pools never share anything.

Temporary directories: a pool's root is `envfactory-sandbox-<pid>-*` in the temporary directory, and
each worker's scratch directory beneath it is removed as soon as that worker is gone (exit, crash,
kill, eviction). A process that dies without closing its pool (SIGKILL, a crash) leaves its root
behind; the next pool created on the machine removes every root whose process no longer exists.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from envfactory.errors import SandboxError
from envfactory.runtime.sandbox.backend import SandboxBackend
from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.process import WorkerProcess
from envfactory.runtime.sandbox.protocol import Ready
from envfactory.runtime.sandbox.report import SandboxReport
from envfactory.runtime.toolkit import read_toolkit_source
from envfactory.spec import EnvMeta, PythonImplementation

logger = logging.getLogger(__name__)

_Slots = collections.OrderedDict[int, tuple["weakref.ref[SandboxBackend]", WorkerProcess]]
ROOT_PREFIX = "envfactory-sandbox-"
_ROOT_NAME = re.compile(rf"^{ROOT_PREFIX}(\d+)-")


def sweep_stale_roots(parent: Path) -> list[Path]:
    """Remove pool roots under `parent` left by processes that no longer exist; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            match = _ROOT_NAME.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if Path(f"/proc/{match.group(1)}").exists():
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d sandbox directories left by processes that ended without closing their pools",
                    len(removed))
    return removed


def _kill_all(slots: _Slots, root: Path) -> None:
    for _, worker in list(slots.values()):
        worker.kill()
    slots.clear()
    shutil.rmtree(root, ignore_errors=True)


class SandboxPool:
    """Sandbox workers for untrusted python toolkits (see docs/sandbox.md). Thread-safe."""

    def __init__(
        self,
        max_workers: int = 4,
        limits: SandboxLimits | None = None,
        *,
        scratch_dir: str | Path | None = None,
    ) -> None:
        """A pool of at most `max_workers` workers under `limits`, with its scratch root in `scratch_dir`
        (default: the temp dir; stale roots of dead pools are swept). No worker starts until a backend is loaded.
        `ValueError` when `max_workers` < 1."""
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._limits = limits or SandboxLimits()
        parent = Path(scratch_dir) if scratch_dir is not None else Path(tempfile.gettempdir())
        sweep_stale_roots(parent)
        self._root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=parent))
        self._root.chmod(0o711)  # workers running as nobody must reach their scratch directories
        self._lock = threading.Condition(threading.RLock())
        self._slots: _Slots = collections.OrderedDict()
        self._keys = itertools.count(1)
        self._scratch_names = itertools.count(1)
        self._starting = 0
        self._closed = False
        self._report: SandboxReport | None = None
        self._announced: set[tuple[str, ...]] = set()
        self._finalizer = weakref.finalize(self, _kill_all, self._slots, self._root)

    # -- public ---------------------------------------------------------------------------------------
    @property
    def limits(self) -> SandboxLimits:
        """The limits every worker runs under."""
        return self._limits

    @property
    def max_workers(self) -> int:
        """The most workers alive at once."""
        return self._max

    @property
    def closed(self) -> bool:
        """True once `close()` ran; a closed pool loads no backend."""
        return self._closed

    @property
    def report(self) -> SandboxReport | None:
        """The confinement report of the most recently started worker (None before the first)."""
        return self._report

    def worker_pids(self) -> list[int]:
        """Pids of the workers alive now."""
        with self._lock:
            return [worker.pid for _, worker in self._slots.values() if worker.alive]

    def load_backend(self, meta: EnvMeta, implementation: PythonImplementation, directory: Path) -> SandboxBackend:
        """Start a worker for a python toolkit environment and derive its spec inside it.

        The parent only reads the module's bytes; importing it happens in the worker, confined.
        Raises `SpecError` when the toolkit is unusable, `SandboxError` when no worker can be started.
        """
        module_path, source = read_toolkit_source(meta, implementation, directory)
        return SandboxBackend(self, meta, implementation, directory.resolve(), module_path, source)

    def load_source_backend(
        self, meta: EnvMeta, implementation: PythonImplementation, source: bytes, directory: Path
    ) -> SandboxBackend:
        """Start a worker for toolkit source carried as data (a hybrid environment's authored tools);
        `directory` is the environment's directory, `implementation.module` only names the source."""
        root = directory.resolve()
        return SandboxBackend(self, meta, implementation, root, root / implementation.module, source)

    def close(self) -> None:
        """Kill every worker and remove every scratch directory (idempotent)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._finalizer()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- used by SandboxBackend -----------------------------------------------------------------------
    def _key(self) -> int:
        return next(self._keys)

    def _start_worker(self, backend: SandboxBackend) -> tuple[WorkerProcess, Ready, bytes]:
        deadline = time.monotonic() + self._limits.start_timeout_s
        with self._lock:
            while True:
                if self._closed:
                    raise SandboxError("the sandbox pool is closed")
                if len(self._slots) + self._starting < self._max or self._evict_one(backend):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxError(f"all {self._max} sandbox workers stayed busy; none could be stopped for {backend.name}")
                self._lock.wait(min(remaining, 0.05))
            self._starting += 1
            scratch = self._root / f"{backend.name}-{next(self._scratch_names)}"
        try:
            scratch.mkdir(mode=0o700)
            worker, ready, spec = WorkerProcess.start(
                backend._meta, backend._implementation, backend._module_path, backend._source,
                backend._directory, scratch, self._limits,
            )
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            with self._lock:
                self._starting -= 1
                self._lock.notify_all()
            raise
        with self._lock:
            self._starting -= 1
            if self._closed:
                worker.kill()
                shutil.rmtree(scratch, ignore_errors=True)
                raise SandboxError("the sandbox pool is closed")
            self._slots[backend._pool_key] = (weakref.ref(backend), worker)
            self._announce(ready.report)
        return worker, ready, spec

    def _evict_one(self, requester: SandboxBackend) -> bool:
        """Stop the least recently used worker that is free (its sessions replay later)."""
        for key, (ref, worker) in list(self._slots.items()):
            owner = ref()
            if owner is requester:
                continue
            if owner is None or owner._evict():
                del self._slots[key]
                worker.kill()
                shutil.rmtree(worker.scratch, ignore_errors=True)
                if owner is not None:
                    logger.info("sandbox pool full (%d workers): stopped the worker of %s", self._max, owner.name)
                return True
        return False

    def _touch(self, backend: SandboxBackend) -> None:
        with contextlib.suppress(KeyError):  # lock-free on the hot path; a racing removal is fine
            self._slots.move_to_end(backend._pool_key)

    def _detach(self, backend: SandboxBackend, worker: WorkerProcess) -> None:
        worker.kill()
        with self._lock:
            slot = self._slots.get(backend._pool_key)
            if slot is not None and slot[1] is worker:
                del self._slots[backend._pool_key]
            self._lock.notify_all()
        shutil.rmtree(worker.scratch, ignore_errors=True)

    def _announce(self, report: SandboxReport) -> None:
        self._report = report
        if report.fallbacks in self._announced:
            return
        self._announced.add(report.fallbacks)
        if report.fallbacks:
            logger.warning(
                "sandbox workers run with fallbacks (%s): %s", report.summary(), "; ".join(report.fallbacks)
            )
        else:
            logger.info("sandbox workers fully confined: %s", report.summary())
