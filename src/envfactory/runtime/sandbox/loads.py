"""Loads sent without waiting (`SandboxBackend.load_state_later`, used by sessions opened with `defer_load`).

The load is posted: written to the worker in the same write as the backend's next request (usually the first
call on that state), so the worker is woken once and the parent waits once for both, and its reply is read
when the state is first used (the worker answers in order: the load's reply, then the call's; `Call.expect` is empty because the state's hash is not known yet, which the worker
accepts only for the first request on a handle after its load). Every request of the backend reads the
replies of such loads before its own (`_exchange`). A load that fails leaves its error on the state, raised
wherever the state is used (`StateLoadError` for a state that does not fit); a load whose worker is lost
before answering is sent again by the next worker when the state is used (`SandboxBackend._materialise`).
"""

from __future__ import annotations

import collections
import itertools
import threading
from typing import TYPE_CHECKING, Any

import orjson

from envfactory.errors import SandboxError, SpecError, StateLoadError
from envfactory.runtime.sandbox.process import WorkerLost, WorkerProcess
from envfactory.runtime.sandbox.protocol import Failed, Loaded, LoadState, Reply
from envfactory.runtime.sandbox.state import SandboxState, _Root
from envfactory.spec import EnvMeta, SandboxFailureKind

if TYPE_CHECKING:
    from envfactory.runtime.sandbox.host import WorkerHost


class SandboxFailure(SandboxError):
    """A framework failure of a sandboxed call: the session reports it with this `kind`."""

    def __init__(self, kind: SandboxFailureKind, message: str) -> None:
        """`kind`: `timeout` or `sandbox_failure`, the error kind the session reports."""
        super().__init__(message, kind)


class DeferredLoads:
    """The deferred-load half of `SandboxBackend` (module docstring); the backend provides the worker."""

    _lock: threading.RLock
    _meta: EnvMeta
    _pool: WorkerHost[Any]
    _ids: itertools.count[int]
    _epoch: int
    _released: collections.deque[tuple[int, int]]
    _unread: collections.deque[tuple[int, SandboxState]]

    def _live_worker(self) -> WorkerProcess:
        raise NotImplementedError

    def _flush_releases(self, worker: WorkerProcess) -> None:
        raise NotImplementedError

    def _lose(self, worker: WorkerProcess, lost: WorkerLost, during: str) -> SandboxFailure:
        raise NotImplementedError

    def _retire(self, worker: WorkerProcess, kind: str, why: str) -> None:
        raise NotImplementedError

    def _ready_or_fail(self, state: SandboxState, what: str) -> WorkerProcess:
        raise NotImplementedError

    def _fork(self, state: SandboxState) -> SandboxState:
        raise NotImplementedError

    def _fetch(self, state: SandboxState) -> Any:
        raise NotImplementedError

    def _forget(self, handle: int, epoch: int) -> None:
        raise NotImplementedError

    def load_state_later(self, state: Any) -> SandboxState:
        """`load_state` without waiting for the worker: the load is posted (written with the next request to this
        worker, so a call on the state goes out in the same write and the two cost one round trip) and its reply
        read when the state is first used. A state that does not fit raises `StateLoadError` there (from
        `execute`, `to_json`, `state_hash`, `fork`), not here; a state that is not JSON raises `SpecError` here."""
        body = self._state_body(state)
        with self._lock:
            worker, handle = self._next_handle()
            seq = worker.next_seq()
            worker.post(LoadState(seq=seq, handle=handle), body)  # written with the next request (or `_settle`)
            loading = SandboxState(self, handle, _Root(body, ""), None, self._epoch)
            loading._loading = True
            self._unread.append((seq, loading))
            return loading

    def _state_body(self, state: Any) -> bytes:
        """State JSON as bytes to load; `SpecError` when it is not JSON data."""
        try:
            return orjson.dumps(state)
        except TypeError as exc:
            raise SpecError(f"the state given to {self._meta.name} is not JSON data: {exc}") from exc

    def _next_handle(self) -> tuple[WorkerProcess, int]:
        """The live worker (releases posted to it) and a new handle id; call with the lock held."""
        worker = self._live_worker()
        if self._released:
            self._flush_releases(worker)
        return worker, next(self._ids)

    def _load_error(self, worker: WorkerProcess, reply: Reply) -> Exception:
        """The error of a load the worker did not answer with `Loaded` (a `StateLoadError` when the state does not
        fit; retires the worker when the load hit its memory limit)."""
        if isinstance(reply, Failed) and reply.reason == "memory":
            self._retire(worker, "sandbox_failure", "hit its memory limit")
            return SandboxFailure("sandbox_failure", f"loading a state of {self._meta.name} exceeded the sandbox memory limit")
        if isinstance(reply, Failed):
            if reply.reason == "spec":
                return StateLoadError(reply.message)
            return StateLoadError(f"the state does not fit {self._meta.name}: the toolkit raised {reply.message}")
        return SandboxFailure("sandbox_failure", f"unexpected {reply.op!r} reply to a state load")

    def _exchange(self, worker: WorkerProcess, message: Any, body: bytes = b"",
                  timeout: float | None = None) -> tuple[Reply, bytes]:
        """Send a request and wait for its reply, reading first the replies of loads sent earlier without waiting
        (`load_state_later`); raises `WorkerLost` as `WorkerProcess.request` does."""
        if not self._unread:
            return worker.request(message, body, timeout)
        worker.send(message, body, timeout)
        self._settle(worker)
        return worker.receive(message.seq, timeout)

    def _settle(self, worker: WorkerProcess) -> None:
        """Read the replies of every load sent without waiting, in order, into their states (writing first any
        still posted)."""
        if self._unread:
            worker.flush()
        while self._unread:
            seq, state = self._unread[0]
            reply, payload = worker.receive(seq, self._pool.limits.transfer_timeout_s)
            self._unread.popleft()
            state._loading = False
            if isinstance(reply, Loaded):
                state._root = _Root(state._root.body, reply.hash)
                state._hash = reply.hash
                state._blob = payload or None
            else:
                state._failure = self._load_error(worker, reply)

    def _resolve(self, state: SandboxState) -> None:
        """Make a deferred load's outcome known: its hash, or raise its error (`SandboxState.state_hash`)."""
        with self._lock:
            if state._loading:
                worker = self._live_worker()
                try:
                    self._settle(worker)
                except WorkerLost as lost:
                    raise self._lose(worker, lost, f"loading a state of {self._meta.name}") from None
            if state._failure is None and not state._hash:  # its worker was lost before answering: load it again
                self._ready_or_fail(state, "reading its state")
            if state._failure is not None:
                raise state._failure
