"""`WorkerHost`: what a `SandboxBackend` needs from the pool that owns its worker.

The backend reaches its pool only through this protocol, so `backend.py` does not import `pool.py`
(which constructs backends); the import graph of the sandbox package has no circle, not even a
type-only one. `SandboxPool` satisfies `WorkerHost[SandboxBackend]` structurally. No behaviour lives
here.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.process import WorkerProcess
from envfactory.runtime.sandbox.protocol import Ready

_Client = TypeVar("_Client", contravariant=True)


class WorkerHost(Protocol[_Client]):
    """A pool of sandbox workers as seen by one of its clients (a backend of type `_Client`)."""

    @property
    def limits(self) -> SandboxLimits:
        """The limits every worker of the pool runs under."""
        ...

    def _key(self) -> int:
        """A new key, unique in the pool, naming the client's worker slot."""
        ...

    def _start_worker(self, backend: _Client) -> tuple[WorkerProcess, Ready, bytes]:
        """Start a worker for `backend` (evicting an idle one when the pool is full): the process,
        its ready message and the spec JSON derived inside it. Raises `SandboxError`."""
        ...

    def _touch(self, backend: _Client) -> None:
        """Mark `backend`'s worker as the most recently used."""
        ...

    def _detach(self, backend: _Client, worker: WorkerProcess) -> None:
        """Kill `worker` and free `backend`'s slot (if `worker` still holds it)."""
        ...
