"""What the parent holds of a sandboxed session's state (`SandboxBackend`): the handle sessions use
(`SandboxState`) and its recovery record (the state JSON it was loaded from, `_Root`, and the committed calls
since, `_Step`). The worker holds the state itself; see `runtime.sandbox.backend` for who holds what.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from envfactory.runtime.sandbox.protocol import RngState


class StateOwner(Protocol):
    """What a `SandboxState` needs of its backend (`SandboxBackend`; a seam, so this module imports no backend)."""

    def _fork(self, state: SandboxState) -> SandboxState: ...

    def _fetch(self, state: SandboxState) -> Any: ...

    def _forget(self, handle: int, epoch: int) -> None: ...

    def _resolve(self, state: SandboxState) -> None: ...


@dataclass(frozen=True, slots=True)
class _Root:
    """The state JSON a handle was loaded from, and its hash."""

    body: bytes
    hash: str


@dataclass(frozen=True, slots=True)
class _Step:
    """One committed call, enough to replay it exactly; `previous` links to the one before."""

    previous: _Step | None
    tool: str
    arguments: bytes
    seed: int
    step: int
    clock_start: str
    clock_tick_us: int
    rng: RngState | None
    before: str
    after: str


class SandboxState:
    """A session's state handle: a reference to state held by the worker, plus its recovery record."""

    __slots__ = ("__weakref__", "_backend", "_blob", "_epoch", "_failure", "_handle", "_hash", "_last", "_loading",
                 "_root")

    def __init__(self, backend: StateOwner, handle: int, root: _Root, last: _Step | None, epoch: int,
                 blob: bytes | None = None) -> None:
        """A handle on state `handle` in the backend's worker; `root` and `last` let a new worker rebuild it,
        `epoch` names the worker it lives in, `blob` is the state's canonical JSON when the worker sent it."""
        self._backend = backend
        self._handle = handle
        self._root = root
        self._last = last
        self._hash = last.after if last is not None else root.hash
        self._epoch = epoch  # the worker generation holding this handle (-1: none yet)
        self._blob = blob
        # A load sent without waiting (`SandboxBackend.load_state_later`): True until its reply is read; then
        # `_failure` holds the error the load gave, if any (raised wherever the state is used).
        self._loading = False
        self._failure: Exception | None = None

    @property
    def handle(self) -> int:
        """The worker-side id of this state."""
        return self._handle

    def fork(self) -> SandboxState:
        """A copy made by the worker (see `StateHandle.fork`); may raise `SandboxFailure`."""
        return self._backend._fork(self)

    def to_json(self) -> Any:
        """The state read back from the worker and checked against its hash; may raise `SandboxFailure`, and
        `StateLoadError` for a deferred load that failed."""
        return self._backend._fetch(self)

    def state_hash(self) -> str:
        """The hash the worker reported for this state (no round trip, except to read the reply of a deferred
        load: may raise as `to_json` does)."""
        if self._loading or self._failure is not None or not self._hash:
            self._backend._resolve(self)
        return self._hash

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing left to tell
            self._backend._forget(self._handle, self._epoch)


