"""`SandboxBackend`: the runtime `Backend` of an untrusted python toolkit, run in a sandbox worker.

Sessions use it exactly as they use an in-process backend; the worker boundary is invisible to them
except that a dead or stuck worker becomes a typed failure (`SandboxFailure`, kind `sandbox_failure`
or `timeout`; `resource_limit` for a call that hit the disk quota), which the session turns into a
result of that kind.

Who holds what:
- The worker holds every session's current state (canonical JSON bytes, one per handle).
- The parent holds, per handle, a recovery record: the state JSON the handle was loaded from, the
  committed calls since (tool, arguments and the call context: seed, clock, step, RNG state), and the
  hash after each. Forks share records (a persistent list, so forking is O(1)).
- The parent also keeps, per handle, the canonical JSON of its current state when the worker sent it
  along with the reply that made it (states up to `protocol.STATE_ECHO_BYTES`): reading such a state
  back (`to_json`) checks those bytes against the hash and costs no round trip.
- Calls run ahead (`plan`): a session may say which calls it will probably make next; the first of them
  goes to the worker with the rest in one request (`CallAhead`), the worker runs them in order on the
  states the earlier ones leave, pending as usual, and the parent keeps their replies. A later call takes
  its reply only when it is exactly the call planned next, on exactly the state (hash), step, seed and
  clock that reply was computed for, with no RNG drawn and the same worker; anything else drops the
  replies kept for that handle, and a call on the handle drops the worker's pending writes never committed.
- The parent's record of a handle's hash is authoritative: it changes only when a call on that handle
  commits. Every state the worker returns is checked against it here (sha256 in the parent), and the
  worker checks its stored state against it before every call. A state that does not match, and every
  state of a worker that died or was killed, is rebuilt in a fresh worker by replaying the record: the
  session's clock and RNG make the replay exact, and the call that crashed (never committed) is not
  replayed. Rebuilding is lazy: a handle is replayed when it is next used.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import threading
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from envfactory.errors import SandboxError, SpecError, StateLoadError, ToolError
from envfactory.runtime.backend import PreparedCall, StateHandle
from envfactory.runtime.diff import diff_states
from envfactory.runtime.sandbox.ahead import Ahead, split_replies
from envfactory.runtime.sandbox.host import WorkerHost
from envfactory.runtime.sandbox.loads import DeferredLoads, PostedCalls, SandboxFailure, Unread
from envfactory.runtime.sandbox.process import WorkerLost, WorkerProcess
from envfactory.runtime.sandbox.protocol import (
    AheadItem,
    Call,
    CallAhead,
    Called,
    CalledAhead,
    Commit,
    Failed,
    Fetch,
    Fetched,
    Fork,
    Loaded,
    LoadState,
    Release,
    Reply,
    RngState,
)
from envfactory.runtime.sandbox.report import SandboxReport
from envfactory.runtime.sandbox.state import SandboxState, _Root, _Step
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.spec import EnvMeta, EnvSpec, PythonImplementation, SandboxFailureKind, StateDiff
from envfactory.spec.tool import agent_error_kind

logger = logging.getLogger(__name__)

_MICROSECOND = timedelta(microseconds=1)

class SandboxBackend(DeferredLoads):
    """Runs one untrusted toolkit in a sandbox worker of `pool`; shared by every session of the env."""

    def __init__(
        self,
        pool: WorkerHost[SandboxBackend],
        meta: EnvMeta,
        implementation: PythonImplementation,
        directory: Path,
        module_path: Path,
        source: bytes,
    ) -> None:
        """Start a worker of `pool` on the toolkit `implementation` names (its module `source`, read from
        `module_path`) and read the spec it derives. Raises `SpecError` when the module does not load or
        define the toolkit, `SandboxError` when the pool is closed or full of busy workers, or the worker
        sends an invalid spec."""
        self._pool = pool
        self._pool_key = pool._key()
        self._meta = meta
        self._implementation = implementation
        self._directory = directory
        self._module_path = module_path
        self._source = source
        self._lock = threading.RLock()
        self._worker: WorkerProcess | None = None
        self._epoch = 0
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._released: collections.deque[tuple[int, int]] = collections.deque()
        self._clocks: dict[ClockConfig, tuple[str, int]] = {}
        self._plans: dict[int, list[tuple[str, bytes]]] = {}  # handle -> calls planned next (tool, arguments)
        self._ahead: dict[int, collections.deque[Ahead]] = {}  # handle -> replies of calls run ahead
        # Loads sent without waiting (`load_state_later`), whose replies come next, in order: (seq, state).
        self._unread: collections.deque[Unread] = collections.deque()
        self._spec: EnvSpec | None = None
        self._report: SandboxReport | None = None
        self._replayed = 0
        with self._lock:
            self._attach()

    # -- identity -------------------------------------------------------------------------------------
    @property
    def spec(self) -> EnvSpec:
        """The spec the worker derived from the toolkit."""
        assert self._spec is not None
        return self._spec

    @property
    def name(self) -> str:
        """The environment's name."""
        return self._meta.name

    @property
    def report(self) -> SandboxReport | None:
        """The confinement report of the current (or last) worker."""
        return self._report

    @property
    def worker_pid(self) -> int | None:
        """The pid of the live worker, if any (for tests and operators)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.alive else None

    @property
    def replayed_calls(self) -> int:
        """Calls replayed so far to rebuild sessions after worker replacements."""
        return self._replayed

    def output_tail(self) -> bytes:
        """The latest stderr output of the current (or last) worker, bounded."""
        worker = self._worker
        return worker.output_tail() if worker is not None else b""

    # -- worker lifecycle -----------------------------------------------------------------------------
    def _attach(self) -> WorkerProcess:
        """Start a worker for this environment (the pool may evict another to stay in bounds)."""
        worker, ready, spec_json = self._pool._start_worker(self)
        try:
            spec = EnvSpec.model_validate_json(spec_json)
        except ValueError as exc:
            worker.kill()
            self._pool._detach(self, worker)
            raise SandboxError(f"{self._meta.name}: the sandbox worker sent an invalid spec: {exc}") from None
        if self._spec is not None and spec.content_hash != self._spec.content_hash:
            worker.kill()
            self._pool._detach(self, worker)
            raise SandboxError(
                f"{self._meta.name}: the toolkit now derives a different spec ({spec.content_hash[:12]} instead "
                f"of {self._spec.content_hash[:12]}); sessions cannot be recovered"
            )
        self._spec = spec
        self._report = ready.report
        self._worker = worker
        while self._unread:  # loads the previous worker never answered: loaded again when next used
            self._unread.popleft()[1]._loading = False
        self._epoch += 1
        self._released.clear()
        return worker

    def _live_worker(self) -> WorkerProcess:
        worker = self._worker
        if worker is not None and worker.alive:
            self._pool._touch(self)
            return worker
        if worker is not None:
            self._pool._detach(self, worker)
            self._worker = None
        try:
            return self._attach()
        except SpecError as exc:  # it loaded before: a toolkit that fails now is a sandbox failure
            raise SandboxFailure("sandbox_failure", f"{self._meta.name}: a replacement worker failed: {exc}") from None

    def _lose(self, worker: WorkerProcess, lost: WorkerLost, during: str) -> SandboxFailure:
        """Record a worker's death; sessions it held are rebuilt lazily in its successor."""
        tail = worker.output_tail()[-1500:].decode("utf-8", "replace").strip()
        logger.error(
            "sandbox worker %d of %s %s during %s; it will be replaced and its sessions replayed%s",
            worker.pid, self._meta.name, lost.message, during, f"\n  its last output:\n{tail}" if tail else "",
        )
        self._pool._detach(self, worker)
        if self._worker is worker:
            self._worker = None
        kind: SandboxFailureKind = "timeout" if lost.kind == "timeout" else "sandbox_failure"
        return SandboxFailure(kind, f"{during}: the sandbox worker {lost.message} (it was replaced)")

    def _retire(self, worker: WorkerProcess, kind: str, why: str) -> None:
        worker.retire(kind, why)
        self._pool._detach(self, worker)
        if self._worker is worker:
            self._worker = None

    def _evict(self) -> bool:
        """Stop this backend's worker to make room in the pool (sessions replay later). False when busy."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.stop()
            return True
        finally:
            self._lock.release()

    # -- handles --------------------------------------------------------------------------------------
    def _forget(self, handle: int, epoch: int) -> None:
        self._released.append((handle, epoch))

    def _flush_releases(self, worker: WorkerProcess) -> None:
        handles: list[int] = []
        while self._released:
            handle, epoch = self._released.popleft()
            self._plans.pop(handle, None)
            self._ahead.pop(handle, None)
            if epoch == self._epoch:
                handles.append(handle)
        if handles:  # posted: every caller sends a request next, which carries it (one wake-up for both)
            worker.post(Release(handles=tuple(handles)))

    def _materialise(self, worker: WorkerProcess, state: SandboxState) -> None:
        steps: list[_Step] = []
        step = state._last
        while step is not None:
            steps.append(step)
            step = step.previous
        steps.reverse()
        limits = self._pool.limits
        reply, _ = self._exchange(
            worker, LoadState(seq=worker.next_seq(), handle=state._handle), state._root.body, limits.transfer_timeout_s
        )
        if not state._root.hash:  # a deferred load whose worker was lost before answering it
            if not isinstance(reply, Loaded):
                state._failure = self._load_error(worker, reply)
                raise state._failure
            state._root = _Root(state._root.body, reply.hash)
            state._hash = reply.hash
        if not isinstance(reply, Loaded) or reply.hash != state._root.hash:
            raise SandboxFailure("sandbox_failure", f"{self._meta.name}: a session could not be rebuilt (its initial state no longer loads identically)")
        for step in steps:
            token = next(self._tokens)
            call = Call(
                seq=worker.next_seq(), handle=state._handle, token=token, expect=step.before, tool=step.tool,
                seed=step.seed, step=step.step, clock_start=step.clock_start, clock_tick_us=step.clock_tick_us,
                rng=step.rng,
            )
            reply, _ = self._exchange(worker, call, step.arguments, limits.call_timeout_s)
            if not isinstance(reply, Called) or reply.hash != step.after:
                raise SandboxFailure(
                    "sandbox_failure",
                    f"{self._meta.name}: replaying {step.tool} did not reproduce the session's state (the toolkit "
                    "is not deterministic); the session cannot be recovered",
                )
            worker.send(Commit(token=token))
            self._replayed += 1
        state._epoch = self._epoch

    # -- the Backend protocol -------------------------------------------------------------------------
    def load_state(self, state: Any) -> SandboxState:
        """Send state JSON to the worker and get a handle. Raises `SpecError` when the state is not JSON or the
        toolkit refuses it, `SandboxFailure` when the worker dies, times out or runs out of memory."""
        body = self._state_body(state)
        with self._lock:
            worker, handle = self._next_handle()
            try:
                reply, payload = self._exchange(worker, LoadState(seq=worker.next_seq(), handle=handle), body)
            except WorkerLost as lost:
                raise self._lose(worker, lost, f"loading a state of {self._meta.name}") from None
            if isinstance(reply, Loaded):
                return SandboxState(self, handle, _Root(body, reply.hash), None, self._epoch, payload or None)
            error = self._load_error(worker, reply)
            # A plain `SpecError`, as ever: only a deferred load's failure is a `StateLoadError` (which sessions
            # re-raise from a call; a hybrid backend loads inside its calls).
            raise SpecError(str(error)) if isinstance(error, StateLoadError) else error

    def plan(self, state: StateHandle, calls: list[tuple[str, Any]], ctx: CallContext | None = None) -> None:
        """A hint: `calls` ((tool, arguments) pairs) will probably be made next on `state`, in this order. They go
        to the worker in one request (`CallAhead`): with `ctx` (the session's context for the first of them, no
        RNG drawn) posted now, written with the next request to this worker (so the plans of several sessions reach
        it in one write) and its reply read when first needed; else with the next call that is the first of them.
        Each call takes its result from that reply only when it is exactly as planned (tool, arguments, state,
        step, seed and clock, no RNG drawn); otherwise the results run ahead are dropped and it runs on its own."""
        if not isinstance(state, SandboxState) or state._backend is not self:
            return
        try:
            planned = [(tool, orjson.dumps(arguments)) for tool, arguments in calls]
        except TypeError:  # not JSON: these calls will fail their argument check anyway
            return
        with self._lock:
            self._ahead.pop(state._handle, None)
            self._plans.pop(state._handle, None)
            if planned and ctx is not None and self._post_plan(state, planned, ctx):
                return
            if len(planned) > 1:
                self._plans[state._handle] = planned

    def _post_plan(self, state: SandboxState, planned: list[tuple[str, bytes]], ctx: CallContext) -> bool:
        """Post `planned` as one `CallAhead` on `state` (see `plan`); False where it cannot go now: no live worker
        holding the state, a failed load, an RNG drawn, or calls of the state posted and not answered yet."""
        worker = self._worker
        if (worker is None or not worker.alive or state._epoch != self._epoch or state._failure is not None
                or ctx.rng_state() is not None or not (state._hash or state._loading)
                or any(entry[1] is state and entry[2] is not None for entry in self._unread)):
            return False
        if self._released:
            self._flush_releases(worker)
        wire = self._clock_wire(ctx)
        # An empty `expect` only right behind the state's load (no other request on the handle since: the worker
        # refuses it anywhere else); the hash comes with the load's reply, read before this one's.
        call = Call(seq=worker.next_seq(), handle=state._handle, token=next(self._tokens),
                    expect="" if state._loading else state._hash, tool=planned[0][0], seed=ctx.seed, step=ctx.step,
                    clock_start=wire[0], clock_tick_us=wire[1])
        items = tuple(AheadItem(token=next(self._tokens), tool=tool) for tool, _ in planned[1:])
        request = CallAhead(seq=call.seq, call=call, ahead=items, sizes=tuple(len(body) for _, body in planned))
        worker.post(request, b"".join(body for _, body in planned))
        self._unread.append((call.seq, state, PostedCalls(request, tuple(planned))))
        return True

    def execute(self, state: StateHandle, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run `tool` in the worker; `ToolError` for the toolkit's anticipated failures, `ToolCrash` for other
        exceptions, `SandboxFailure` when the worker is lost (it is replaced and the session's state rebuilt for
        the next call)."""
        if not isinstance(state, SandboxState) or state._backend is not self:
            raise TypeError(f"{self._meta.name} cannot run on a {type(state).__name__}")
        body = orjson.dumps(arguments)
        with self._lock:
            posted_to = self._worker
            if self._unread and state._epoch == self._epoch and posted_to is not None:
                try:  # the replies of calls posted ahead, this state's among them
                    self._settle(posted_to, until=state)
                except WorkerLost as lost:
                    self._lose(posted_to, lost, f"{self._meta.name}.{tool}")  # the call runs on its own, rebuilt
            ahead = self._take_ahead(state, tool, body, ctx)
            if ahead is not None:
                worker = self._worker
                assert worker is not None
                prepared = self._answer(worker, state, ahead.call, body, ahead.reply, ahead.payload, ctx, retry=False)
                assert prepared is not None
                return prepared
            for attempt in (1, 2):
                worker = self._ready_or_fail(state, tool)
                token = next(self._tokens)
                call = self._call_message(worker, state, token, tool, ctx)
                rest = self._rest_of_plan(state, tool, body, ctx)
                try:
                    if rest:
                        reply, payload = self._call_ahead(worker, state, call, body, rest)
                    else:
                        reply, payload = self._exchange(worker, call, body, self._pool.limits.call_timeout_s)
                except WorkerLost as lost:
                    raise self._lose(worker, lost, f"{self._meta.name}.{tool}") from None
                if state._failure is not None:  # a deferred load that failed (the call was refused)
                    raise state._failure
                if not call.expect:  # sent right behind the state's load: it ran on the state the load made
                    call = call.model_copy(update={"expect": state._hash})
                prepared = self._answer(worker, state, call, body, reply, payload, ctx, retry=attempt == 1)
                if prepared is not None:
                    return prepared
        raise AssertionError("unreachable")

    def _answer(self, worker: WorkerProcess, state: SandboxState, call: Call, body: bytes, reply: Reply,
                payload: bytes, ctx: CallContext, *, retry: bool) -> PreparedCall | None:
        """The prepared call for the worker's reply to `call`; raises as `execute` does; None when the worker held
        a state that does not match and was retired (`retry`: the call is to be sent again)."""
        tool = call.tool
        if isinstance(reply, Called):
            return self._prepared(state, call.token, call, body, reply, payload, ctx)
        if not isinstance(reply, Failed):
            self._retire(worker, "sandbox_failure", f"broke the protocol ({reply.op!r} reply to a call)")
            raise SandboxFailure("sandbox_failure", f"{self._meta.name}.{tool}: the sandbox worker broke the protocol")
        if reply.reason == "tool":
            raise ToolError(agent_error_kind(reply.kind), reply.message, reply.path)
        if reply.reason == "crash":
            logger.error("tool %s of %s crashed in its sandbox worker: %s", tool, self._meta.name, reply.message)
            raise ToolError("execution_error", f"internal error in {tool}: {reply.message}")
        if reply.reason == "memory":
            limit = self._pool.limits.memory_bytes >> 20
            logger.error("tool %s of %s hit the sandbox memory limit (%d MiB)", tool, self._meta.name, limit)
            self._retire(worker, "sandbox_failure", "hit its memory limit")
            raise SandboxFailure(
                "sandbox_failure", f"{tool} exceeded the sandbox memory limit ({limit} MiB); the worker was replaced"
            )
        if reply.reason == "disk":
            quota = self._pool.limits.disk_bytes >> 20
            logger.error("tool %s of %s hit the sandbox disk quota (%d MiB): %s", tool, self._meta.name, quota,
                         reply.message)
            self._retire(worker, "resource_limit", "hit its disk quota")
            raise SandboxFailure(
                "resource_limit", f"{reply.message}; the call failed and the worker was replaced "
                                  "(its files are gone; sessions continue from their committed state)"
            )
        if reply.reason == "integrity" and retry:
            logger.error(
                "sandbox worker %d of %s holds a state that does not match its session's record; replacing "
                "it and rebuilding the session from its log", worker.pid, self._meta.name,
            )
            self._retire(worker, "sandbox_failure", "held a state that did not match its record")
            return None
        raise SandboxFailure("sandbox_failure", f"{self._meta.name}.{tool}: {reply.message}")

    # -- calls run ahead (`plan`) ---------------------------------------------------------------------
    def _rest_of_plan(self, state: SandboxState, tool: str, body: bytes, ctx: CallContext) -> list[tuple[str, bytes]]:
        """The planned calls after this one when it is the plan's first (the plan is used up either way);
        none while the session's RNG has been drawn from (calls ahead carry no RNG state)."""
        planned = self._plans.pop(state._handle, None)
        if not planned or planned[0] != (tool, body) or ctx.rng_state() is not None:
            return []
        return planned[1:]

    def _call_ahead(self, worker: WorkerProcess, state: SandboxState, call: Call, body: bytes,
                    rest: list[tuple[str, bytes]]) -> tuple[Reply, bytes]:
        """Send `call` with the planned calls after it; the first call's reply and body, the others kept for
        `_take_ahead`. A reply that is not `CalledAhead` (a `Failed` for the whole request) is the first call's."""
        items = tuple(AheadItem(token=next(self._tokens), tool=tool) for tool, _ in rest)
        request = CallAhead(seq=call.seq, call=call, ahead=items, sizes=(len(body), *(len(b) for _, b in rest)))
        timeout = self._pool.limits.call_timeout_s * (1 + len(items))
        reply, payload = self._exchange(worker, request, body + b"".join(b for _, b in rest), timeout)
        if not isinstance(reply, CalledAhead) or state._failure is not None:
            return reply, payload
        if not call.expect:  # sent right behind the state's load: it ran on the state the load made
            call = call.model_copy(update={"expect": state._hash})
        first, first_body, kept = split_replies(self._epoch, call, rest, items, reply, payload)
        if kept:
            self._ahead[state._handle] = kept
        return first, first_body

    def _take_ahead(self, state: SandboxState, tool: str, body: bytes, ctx: CallContext) -> Ahead | None:
        """The reply run ahead for this call when it is exactly the one planned next (else every reply run ahead
        for the handle is dropped)."""
        kept = self._ahead.get(state._handle)
        if not kept:
            return None
        ahead = kept.popleft()
        if (state._epoch != self._epoch or self._worker is None
                or not ahead.fits(self._epoch, state._hash, tool, body, ctx, self._clock_wire(ctx))):
            del self._ahead[state._handle]
            return None
        if not kept:
            del self._ahead[state._handle]
        return ahead

    def _ready_or_fail(self, state: SandboxState, what: str) -> WorkerProcess:
        """The live worker, with `state` materialised in it (rebuilt by replay when it is not); raises the error of
        a deferred load that failed."""
        if state._failure is not None:
            raise state._failure
        worker = self._live_worker()
        try:
            if self._released:
                self._flush_releases(worker)
            if state._epoch != self._epoch:
                self._materialise(worker, state)
        except WorkerLost as lost:
            raise self._lose(worker, lost, f"rebuilding a session of {self._meta.name} before {what}") from None
        return worker

    def _clock_wire(self, ctx: CallContext) -> tuple[str, int]:
        clock = ctx.clock
        wire = self._clocks.get(clock)
        if wire is None:
            wire = (clock.start.isoformat(), clock.tick // _MICROSECOND)
            self._clocks[clock] = wire
        return wire

    def _call_message(self, worker: WorkerProcess, state: SandboxState, token: int, tool: str, ctx: CallContext) -> Call:
        wire = self._clock_wire(ctx)
        rng = ctx.rng_state()
        return Call(
            seq=worker.next_seq(), handle=state._handle, token=token, expect=state._hash, tool=tool,
            seed=ctx.seed, step=ctx.step, clock_start=wire[0], clock_tick_us=wire[1],
            rng=RngState(internal=rng[1], gauss_next=rng[2]) if isinstance(rng, tuple) else None,
        )

    def _prepared(
        self, state: SandboxState, token: int, call: Call, body: bytes, reply: Called, payload: bytes, ctx: CallContext
    ) -> PreparedCall:
        blob: bytes | None = None
        if reply.output_bytes is not None:
            payload, blob = payload[: reply.output_bytes], payload[reply.output_bytes :]
        output = orjson.loads(payload)
        if reply.rng is not None:
            ctx.rng.setstate((3, reply.rng.internal, reply.rng.gauss_next))
        if not reply.writes or reply.hash is None:
            return PreparedCall(output=output)
        step = _Step(
            previous=state._last, tool=call.tool, arguments=body, seed=call.seed, step=call.step,
            clock_start=call.clock_start, clock_tick_us=call.clock_tick_us, rng=call.rng,
            before=state._hash, after=reply.hash,
        )
        return PreparedCall(output=output, commit=partial(self._commit, state, token, step, self._epoch, blob))

    def _commit(self, state: SandboxState, token: int, step: _Step, epoch: int, blob: bytes | None = None) -> None:
        with self._lock:
            state._last = step
            state._hash = step.after
            state._blob = blob
            worker = self._worker
            if epoch != self._epoch or state._epoch != epoch or worker is None or not worker.alive:
                state._epoch = -1  # the worker that ran it is gone: rebuild from the record when next used
                return
            # Posted: it reaches the worker with the next request (a worker lost before then is replaced
            # and this session rebuilt from its record, which has the step).
            worker.post(Commit(token=token))

    def _fork(self, state: SandboxState) -> SandboxState:
        with self._lock:
            if state._loading or state._failure is not None or not state._hash:
                self._resolve(state)
            child = SandboxState(self, next(self._ids), state._root, state._last, -1, state._blob)
            worker = self._worker
            if state._epoch == self._epoch and worker is not None and worker.alive:
                try:
                    worker.send(Fork(source=state._handle, handle=child._handle))
                    child._epoch = self._epoch
                except WorkerLost as lost:
                    self._lose(worker, lost, f"forking a session of {self._meta.name}")
            return child

    def _fetch(self, state: SandboxState) -> Any:
        if state._loading or state._failure is not None or not state._hash:
            self._resolve(state)
        blob = state._blob
        if blob is not None and hashlib.sha256(blob).hexdigest() == state._hash:
            return orjson.loads(blob)
        with self._lock:
            for attempt in (1, 2):
                worker = self._ready_or_fail(state, "a state transfer")
                try:
                    reply, blob = self._exchange(worker, Fetch(seq=worker.next_seq(), handle=state._handle))
                except WorkerLost as lost:
                    failure = self._lose(worker, lost, f"reading a state of {self._meta.name}")
                    if attempt == 2:
                        raise failure from None
                    continue
                if isinstance(reply, Fetched) and hashlib.sha256(blob).hexdigest() == state._hash:
                    return orjson.loads(blob)
                logger.error(
                    "sandbox worker %d of %s returned a state that does not match its session's record; "
                    "replacing it and rebuilding the session from its log", worker.pid, self._meta.name,
                )
                self._retire(worker, "sandbox_failure", "returned a state that did not match its record")
                state._epoch = -1
            raise SandboxFailure("sandbox_failure", f"{self._meta.name}: a session's state could not be read back intact")

    def diff(self, before: StateHandle, after: StateHandle) -> StateDiff:
        """The JSON diff of two states (empty without reading them back when their hashes agree)."""
        if before.state_hash() == after.state_hash():
            return StateDiff(changes=[])
        return diff_states(before.to_json(), after.to_json())

