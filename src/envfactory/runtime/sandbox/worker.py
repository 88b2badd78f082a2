"""A sandbox worker process: `python -m envfactory.runtime.sandbox.worker REQUEST_FD REPLY_FD`.

Started by `SandboxPool`, one per environment. Its life:
1. read `hello` (the toolkit source, the environment's metadata, limits and directories);
2. confine itself (`confine`: namespace, limits, identity, Landlock, seccomp), remove the doors the
   audit hook cannot watch and install the guard (`guard`) — all before any toolkit code runs;
3. run the toolkit source and derive its `EnvSpec`; reply `ready` (confinement report + sealed spec)
   or `failed` (a `SpecError` naming the problem) and exit;
4. serve requests in order until `bye` or the end of the request pipe.

State: a session's committed state is its canonical JSON (immutable bytes) under the handle the parent
chose. Every call runs on a fresh model of those bytes, so no two sessions ever share one; forks share the
bytes. That model is validated from the bytes, or it is the one the bytes were dumped from when this
worker made them (the state a load validated, or the revalidated state a committed write left), kept
aside unused and handed to the next call on that handle only (one validation per call instead of two;
it is dropped when a call, a read or a failed one, used it without committing a new one). The toolkit module's globals (and its classes'
data attributes) are per handle too (`isolation.SessionGlobals`): one session's module-level caches or
counters never reach another session in the same worker. Before using a state the worker checks it hashes
to what the parent expects (`Call.expect`); a mismatch is reported (`integrity`), never used.

The functions the serving loop relies on are bound before the toolkit is imported, so rebinding module
attributes from toolkit code cannot reach into the loop.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import random
import resource
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from envfactory.errors import SpecError, ToolError
from envfactory.runtime.sandbox.guard import begin_serving, close_doors, install_guard
from envfactory.runtime.sandbox.isolation import SessionGlobals
from envfactory.runtime.sandbox.protocol import (
    REQUESTS,
    STATE_ECHO_BYTES,
    BlockingReader,
    Call,
    CallAhead,
    Called,
    CalledAhead,
    Failed,
    Fetched,
    Hello,
    Loaded,
    LoadState,
    Ready,
    RngState,
    encode,
    write_all,
)
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.runtime.toolkit import PythonBackend, derive_python_backend
from envfactory.spec import canonical_json

EXIT_PROTOCOL = 3
EXIT_SETUP = 4
_MESSAGE_LIMIT = 4000


class _Outcome(NamedTuple):
    """A call's reply and its body, and the state it left (canonical JSON and model; None for a read or a
    failed call)."""

    reply: Called | Failed
    body: bytes = b""
    blob: bytes | None = None
    model: Any = None


class _Loop(NamedTuple):
    """What the serving loop calls, bound before any toolkit code ran (a tuple: immutable)."""

    read: Callable[[], tuple[bytes, bytes] | None]
    send: Callable[[bytes], None]
    parse: Callable[[bytes], Any]
    sha256: Callable[[bytes], Any]
    load: Callable[[LoadState, bytes], tuple[bytes, bytes | None, Any]]
    call: Callable[[Call, bytes, bytes, Any], _Outcome]
    spaces: SessionGlobals


def _describe(exc: BaseException) -> str:
    """`Type: message`, bounded, and robust to exceptions whose `str` misbehaves."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:
        text = f"{type(exc).__name__} (unprintable)"
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "…"


def _state_bytes(model: Any) -> bytes:
    return canonical_json(model.model_dump(mode="json", by_alias=True))


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _disk_meter(scratch: Path, quota: int, tmpfs: bool) -> Callable[[BaseException | None], str | None]:
    """A check run after every call: a message when the call hit the disk quota or the file-size limit
    (an `OSError` with ENOSPC/EDQUOT/EFBIG anywhere in its chain, or the quota used up even though the
    toolkit swallowed the error), else None. On a quota tmpfs the file system's own count is read; in
    the fallback the scratch directory is walked."""
    statvfs, scandir, root = os.statvfs, os.scandir, str(scratch)
    limit_mib = quota / (1 << 20)

    def used() -> int:
        if tmpfs:
            st = statvfs(root)
            return (st.f_blocks - st.f_bavail) * st.f_frsize
        total, pending = 0, [root]
        while pending:
            with scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        return total

    def check(exc: BaseException | None) -> str | None:
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
                what = "a file past the file-size limit" if exc.errno == errno.EFBIG else "past the disk quota"
                return f"wrote {what} ({limit_mib:g} MiB for everything the toolkit writes)"
            exc = exc.__cause__ or exc.__context__
        try:
            size = used()
        except OSError:
            return None
        if size >= quota:
            return f"used {size / (1 << 20):.1f} MiB of disk, the sandbox quota is {limit_mib:g} MiB"
        return None

    return check


def _arm_cpu(per_call: int) -> None:
    """Move the soft RLIMIT_CPU to `per_call` seconds past what the worker has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + per_call
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _loader(
    backend: PythonBackend[Any], sha256: Callable[[bytes], Any]
) -> Callable[[LoadState, bytes], tuple[bytes, bytes | None, Any]]:
    """The load handler: (reply frame, the state's canonical JSON or None, the validated model or None)."""

    def load(request: LoadState, body: bytes) -> tuple[bytes, bytes | None, Any]:
        try:
            handle = backend.load_state(orjson.loads(body))
            blob = _state_bytes(handle.model)
        except SpecError as exc:
            return encode(Failed(seq=request.seq, reason="spec", message=str(exc))), None, None
        except orjson.JSONDecodeError as exc:
            return encode(Failed(seq=request.seq, reason="spec", message=f"the state is not JSON: {exc}")), None, None
        except MemoryError:
            return encode(Failed(seq=request.seq, reason="memory", message="loading the state")), None, None
        except BaseException as exc:  # the toolkit's own validators misbehaving
            return encode(Failed(seq=request.seq, reason="crash", message=_describe(exc))), None, None
        echo = blob if len(blob) <= STATE_ECHO_BYTES else b""
        return encode(Loaded(seq=request.seq, hash=sha256(blob).hexdigest()), echo), blob, handle.model

    return load


def _caller(
    backend: PythonBackend[Any], per_call_cpu: int, sha256: Callable[[bytes], Any],
    disk: Callable[[BaseException | None], str | None],
) -> Callable[[Call, bytes, bytes, Any], _Outcome]:
    """The call handler: run a call on `spare` (a model of the state's bytes nothing else holds) or, when that
    is None, on a model validated from the bytes; (reply, its body, the new state's canonical JSON and its
    model, both None for a read or a failed call)."""
    validate_state = backend.state_model.model_validate_json
    run_tool = backend.run_tool
    loads, dumps = orjson.loads, orjson.dumps
    clocks: dict[tuple[str, int], ClockConfig] = {}

    def call(request: Call, blob: bytes, arguments: bytes, spare: Any) -> _Outcome:
        seq = request.seq
        key = (request.clock_start, request.clock_tick_us)
        clock = clocks.get(key)
        if clock is None:
            clock = ClockConfig(
                start=datetime.fromisoformat(request.clock_start),
                tick=timedelta(microseconds=request.clock_tick_us),
            )
            clocks[key] = clock
        rng: random.Random | None = None
        if request.rng is not None:
            rng = random.Random()
            rng.setstate((3, request.rng.internal, request.rng.gauss_next))
        ctx = CallContext(request.seed, clock, request.step, rng)
        new_blob: bytes | None = None
        new_model: Any = None
        try:
            _arm_cpu(per_call_cpu)
            model = spare if spare is not None else validate_state(blob)
            output, new_model = run_tool(model, request.tool, loads(arguments), ctx)
            body = dumps(output)
            if new_model is not None:
                new_blob = _state_bytes(new_model)
        except ToolError as exc:
            over = disk(exc)
            if over is not None:
                return _Outcome(Failed(seq=seq, reason="disk", message=f"{request.tool} {over}"))
            return _Outcome(Failed(seq=seq, reason="tool", kind=exc.kind, message=exc.message, path=exc.path))
        except MemoryError:
            return _Outcome(Failed(seq=seq, reason="memory", message=f"{request.tool} ran out of memory"))
        except BaseException as exc:  # a bug (or hostility) in toolkit code: reported, never fatal here
            over = disk(exc)
            if over is not None:
                return _Outcome(Failed(seq=seq, reason="disk", message=f"{request.tool} {over}"))
            return _Outcome(Failed(seq=seq, reason="crash", message=_describe(exc)))
        over = disk(None)
        if over is not None:
            return _Outcome(Failed(seq=seq, reason="disk", message=f"{request.tool} {over}"))
        after = ctx.rng_state()
        moved: RngState | None = None
        if isinstance(after, tuple) and (
            request.rng is None or after[1] != request.rng.internal or after[2] != request.rng.gauss_next
        ):
            moved = RngState(internal=after[1], gauss_next=after[2])
        digest = sha256(new_blob).hexdigest() if new_blob is not None else None
        if new_blob is not None and len(new_blob) <= STATE_ECHO_BYTES:
            reply = Called(seq=seq, writes=True, hash=digest, rng=moved, output_bytes=len(body))
            return _Outcome(reply, body + new_blob, new_blob, new_model)
        reply = Called(seq=seq, writes=new_blob is not None, hash=digest, rng=moved)
        return _Outcome(reply, body, new_blob, new_model)

    return call


def _bootstrap(request_fd: int, reply_fd: int) -> _Loop:
    # Bound before any toolkit code exists.
    sha256 = hashlib.sha256
    parse = REQUESTS.validator.validate_json
    read_fd, write_fd = request_fd, reply_fd

    def send(frame: bytes) -> None:
        write_all(write_fd, frame)

    reader = BlockingReader(read_fd, 64 << 20)
    first = reader.read()
    if first is None:
        raise SystemExit(0)
    hello = parse(first[0])
    if not isinstance(hello, Hello):
        raise SystemExit(EXIT_PROTOCOL)
    source = first[1]
    reader.limit = hello.limits.max_message_bytes
    env_dir, scratch = Path(hello.env_dir), Path(hello.scratch)

    from envfactory.runtime.sandbox import confine as confinement_module

    try:
        confinement = confinement_module.confine(env_dir, scratch, hello.limits)
    except OSError as exc:
        send(encode(Failed(seq=hello.seq, reason="setup", message=f"confinement failed: {exc}")))
        raise SystemExit(EXIT_SETUP) from None
    del confinement_module
    report = confinement.report
    close_doors()
    install_guard(
        files=confinement.guard_files,
        network=confinement.guard_network,
        processes=confinement.guard_processes,
        read_roots=report.read_roots,
        write_root=report.write_root,
    )
    disk = _disk_meter(scratch, hello.limits.disk_bytes, report.disk_quota)  # bound before toolkit code
    # Toolkits may log; the caller lookup of `logging` walks frames, which the guard refuses.
    logging._srcfile = None
    try:
        backend = derive_python_backend(hello.meta, hello.implementation, Path(hello.module_path), source)
    except SpecError as exc:
        send(encode(Failed(seq=hello.seq, reason="spec", message=str(exc))))
        raise SystemExit(0) from None
    except BaseException as exc:  # e.g. MemoryError or SystemExit from module-level toolkit code
        message = f"{hello.module_path}: importing the toolkit module failed: {_describe(exc)}"
        send(encode(Failed(seq=hello.seq, reason="spec", message=message)))
        raise SystemExit(0) from None
    spaces = SessionGlobals(sys.modules[backend.toolkit.__module__])
    begin_serving()
    spec = backend.spec.model_dump_json().encode()
    send(encode(Ready(seq=hello.seq, report=report), spec))
    return _Loop(
        read=reader.read,
        send=send,
        parse=parse,
        sha256=sha256,
        load=_loader(backend, sha256),
        call=_caller(backend, hello.limits.cpu_seconds_per_call, sha256, disk),
        spaces=spaces,
    )


# long: the request loop, one branch per protocol op; kept in one function so each request costs only
# local lookups (the BFCL replay speed of issue 18 is bound by this loop)
def _serve(loop: _Loop) -> int:
    read, send, parse, sha256, load, call, spaces = loop
    enter, fork, drop = spaces.enter, spaces.fork, spaces.drop
    states: dict[int, bytes] = {}
    # A model of a handle's committed bytes, made by this worker and not used since (module docstring).
    spares: dict[int, tuple[bytes, Any]] = {}
    pending: dict[int, tuple[int, bytes, Any]] = {}
    # Handles whose last request was their load: a call may follow it before the parent read the load's reply
    # (`Call.expect` empty; protocol `LoadState`).
    fresh: set[int] = set()
    while True:
        frame = read()
        if frame is None:
            return 0
        request = parse(frame[0])
        op = request.op
        if op == "call":
            blob = _stored(states, fresh, request.handle, request.expect)
            if blob is None:
                return EXIT_PROTOCOL
            if blob is _UNLOADED or (request.expect != "" and sha256(blob).hexdigest() != request.expect):
                send(_refusal(request.seq, blob))
                continue
            for token in [t for t, (h, _, _) in pending.items() if h == request.handle]:
                del pending[token]  # a write the session never committed
            enter(request.handle)
            spare = spares.pop(request.handle, None)
            outcome = call(request, blob, frame[1], spare[1] if spare and spare[0] is blob else None)
            if outcome.blob is not None:
                pending[request.token] = (request.handle, outcome.blob, outcome.model)
            send(encode(outcome.reply, outcome.body))
        elif op == "call_ahead":
            first = request.call
            blob = _stored(states, fresh, first.handle, first.expect)
            if blob is None or len(request.sizes) != len(request.ahead) + 1 or sum(request.sizes) != len(frame[1]):
                return EXIT_PROTOCOL
            if blob is _UNLOADED or (first.expect != "" and sha256(blob).hexdigest() != first.expect):
                send(_refusal(request.seq, blob))
                continue
            for token in [t for t, (h, _, _) in pending.items() if h == first.handle]:
                del pending[token]
            enter(first.handle)
            spare = spares.pop(first.handle, None)
            send(_run_ahead(request, call, blob, spare[1] if spare and spare[0] is blob else None, frame[1], pending))
        elif op == "commit":
            entry = pending.pop(request.token, None)
            if entry is None:
                return EXIT_PROTOCOL
            fresh.discard(entry[0])
            states[entry[0]] = entry[1]
            spares[entry[0]] = (entry[1], entry[2])
        elif op == "fork":
            blob = states.get(request.source)
            if blob is None:
                return EXIT_PROTOCOL
            states[request.handle] = blob
            fresh.discard(request.source)
            fork(request.source, request.handle)
        elif op == "release":
            for handle in request.handles:
                states.pop(handle, None)
                fresh.discard(handle)
                spares.pop(handle, None)
                drop(handle)
        elif op == "fetch":
            blob = states.get(request.handle)
            if blob is None:
                return EXIT_PROTOCOL
            fresh.discard(request.handle)
            send(encode(Fetched(seq=request.seq), blob))
        elif op == "load":
            reply, blob, model = load(request, frame[1])
            spares.pop(request.handle, None)
            fresh.add(request.handle)
            if blob is not None:
                states[request.handle] = blob
                spares[request.handle] = (blob, model)
                drop(request.handle)
            send(reply)
        elif op == "bye":
            return 0
        else:
            return EXIT_PROTOCOL


_UNLOADED = b""  # `_stored`: the handle's load failed (a state's canonical JSON is never empty)


def _stored(states: dict[int, bytes], fresh: set[int], handle: int, expect: str) -> bytes | None:
    """The state a call runs on: the handle's bytes; `_UNLOADED` for a call right after a load that failed; None
    (a protocol violation) for a handle that holds none, or an empty `expect` on a handle not just loaded."""
    if expect == "":
        if handle not in fresh:
            return None
        fresh.discard(handle)
        return states.get(handle, _UNLOADED)
    fresh.discard(handle)
    return states.get(handle)


def _refusal(seq: int, blob: bytes) -> bytes:
    """The `Failed` frame for a call that cannot run: its state did not load, or does not match its hash."""
    if blob is _UNLOADED:
        return encode(Failed(seq=seq, reason="spec", message="the state of this session did not load"))
    return encode(Failed(seq=seq, reason="integrity", message="stored state does not match"))


def _run_ahead(request: CallAhead, call: Callable[[Call, bytes, bytes, Any], _Outcome], blob: bytes, model: Any,
               body: bytes, pending: dict[int, tuple[int, bytes, Any]]) -> bytes:
    """Run a `CallAhead`'s calls in order, each on the state the previous write left, with the context the
    session would give it; leave each write pending under its token; the `CalledAhead` frame."""
    first = request.call
    replies: list[Called | Failed] = []
    bodies: list[bytes] = []
    offset = 0
    previous: tuple[int, bytes, Any] | None = None  # the latest write's (token, blob, model)
    step, rng = first.step, first.rng
    for index, size in enumerate(request.sizes):
        arguments = body[offset : offset + size]
        offset += size
        if index == 0:
            current = first
        else:
            item = request.ahead[index - 1]
            current = Call(seq=first.seq, handle=first.handle, token=item.token, expect="", tool=item.tool,
                           seed=first.seed, step=step, clock_start=first.clock_start,
                           clock_tick_us=first.clock_tick_us, rng=rng)
        if previous is not None and model is previous[2]:  # its model goes to this call: its commit must not hand it on
            pending[previous[0]] = (first.handle, previous[1], None)
        outcome = call(current, blob, arguments, model)
        replies.append(outcome.reply)
        bodies.append(outcome.body)
        if outcome.blob is not None:
            previous = (current.token, outcome.blob, outcome.model)
            pending[current.token] = (first.handle, outcome.blob, outcome.model)
            blob, model, step = outcome.blob, outcome.model, step + 1
        else:
            model = None  # a read or a failed call may have used the model
        reply = outcome.reply
        if (isinstance(reply, Failed) and reply.reason not in ("tool", "crash")) or (
                isinstance(reply, Called) and reply.rng is not None):
            break
    return encode(CalledAhead(seq=request.seq, replies=tuple(replies), sizes=tuple(map(len, bodies))), b"".join(bodies))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m envfactory.runtime.sandbox.worker REQUEST_FD REPLY_FD\n")
        return 2
    # One expression: this frame never holds the loop's objects (toolkit code may see this frame).
    return _serve(_bootstrap(int(args[0]), int(args[1])))


if __name__ == "__main__":
    sys.exit(main())
