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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from envfactory.errors import SandboxError, SpecError, StateLoadError
from envfactory.runtime.sandbox.ahead import Ahead, split_replies
from envfactory.runtime.sandbox.process import WorkerLost, WorkerProcess
from envfactory.runtime.sandbox.protocol import CallAhead, CalledAhead, Failed, Loaded, LoadState, Reply
from envfactory.runtime.sandbox.state import SandboxState, _Root
from envfactory.spec import EnvMeta, SandboxFailureKind

if TYPE_CHECKING:
    from envfactory.runtime.sandbox.host import WorkerHost


class SandboxFailure(SandboxError):
    """A framework failure of a sandboxed call: the session reports it with this `kind`."""

    def __init__(self, kind: SandboxFailureKind, message: str) -> None:
        """`kind`: `timeout` or `sandbox_failure`, the error kind the session reports."""
        super().__init__(message, kind)


@dataclass(frozen=True, slots=True)
class PostedCalls:
    """A `CallAhead` posted when its calls were planned (`SandboxBackend.plan` with the session's context): the
    request, and the planned (tool, argument bytes) pairs, the first being the request's own call."""

    request: CallAhead
    planned: tuple[tuple[str, bytes], ...]


# A request posted without waiting whose reply is read later, in order: a load (None) or calls planned ahead.
Unread = tuple[int, SandboxState, PostedCalls | None]


class DeferredLoads:
    """The deferred-load half of `SandboxBackend` (module docstring); the backend provides the worker."""

    _lock: threading.RLock
    _meta: EnvMeta
    _pool: WorkerHost[Any]
    _ids: itertools.count[int]
    _epoch: int
    _released: collections.deque[tuple[int, int]]
    _unread: collections.deque[Unread]
    _ahead: dict[int, collections.deque[Ahead]]

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
            self._unread.append((seq, loading, None))
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

    def _settle(self, worker: WorkerProcess, until: SandboxState | None = None) -> None:
        """Read the replies of requests sent without waiting, in order (writing first any still posted): every one,
        or with `until` those up to the last calls posted on that state. A load's reply goes into its state; the replies
        of calls posted ahead are kept for the calls they answer (`PostedCalls`). With `until`: up to the last
        calls posted on that state, if any (its load alone is better read with its first request's reply)."""
        count = len(self._unread)
        if until is not None:
            count = 1 + max((i for i, entry in enumerate(self._unread) if entry[1] is until and entry[2]), default=-1)
        if not count:
            return
        if self._unread[count - 1][0] > worker.written_seq:  # still posted: write it (and what was posted before)
            worker.flush()
        limits = self._pool.limits
        for _ in range(count):
            seq, state, posted = self._unread[0]
            timeout = limits.transfer_timeout_s if posted is None else limits.call_timeout_s * len(posted.planned)
            reply, payload = worker.receive(seq, timeout)
            self._unread.popleft()
            if posted is not None:
                self._keep_posted(state, posted, reply, payload)
                continue
            state._loading = False
            if isinstance(reply, Loaded):
                state._root = _Root(state._root.body, reply.hash)
                state._hash = reply.hash
                state._blob = payload or None
            else:
                state._failure = self._load_error(worker, reply)

    def _keep_posted(self, state: SandboxState, posted: PostedCalls, reply: Reply, payload: bytes) -> None:
        """Keep the replies to calls posted ahead for the calls they answer (each still `Ahead.fits`-checked when
        used); a request refused as a whole (its state did not load or did not match) keeps nothing, and each call
        then runs on its own."""
        if not isinstance(reply, CalledAhead) or state._failure is not None or state._epoch != self._epoch:
            return
        request = posted.request
        call = request.call
        if not call.expect:  # sent right behind the state's load, whose reply (read before this one) has its hash
            call = call.model_copy(update={"expect": state._hash})
        first, body, kept = split_replies(self._epoch, call, list(posted.planned[1:]), request.ahead, reply, payload)
        kept.appendleft(Ahead(self._epoch, call.expect, call.tool, posted.planned[0][1], call, first, body))
        self._ahead[state._handle] = kept

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
