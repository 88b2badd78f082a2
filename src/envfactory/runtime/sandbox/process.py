"""The parent's side of one sandbox worker process: start it, exchange frames under deadlines, kill
it, and say in words why it died.

The worker's stdout goes to /dev/null and its stderr to a pipe the parent drains while it waits for a
reply, keeping only the latest `output_tail_bytes`: a toolkit that floods either stream can neither
block the worker nor reach the protocol, which has pipes of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import envfactory
from envfactory.errors import SandboxError, SpecError
from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.protocol import (
    REPLIES,
    Bye,
    Failed,
    Hello,
    ProtocolError,
    Ready,
    Reply,
    _Message,
    encode,
    split_frame,
)
from envfactory.spec import EnvMeta, PythonImplementation

WORKER_MODULE = "envfactory.runtime.sandbox.worker"
_READ_CHUNK = 1 << 20


class WorkerLost(Exception):
    """The worker died or was killed during an exchange. `kind`: `timeout` or `sandbox_failure`."""

    def __init__(self, kind: str, message: str) -> None:
        """`kind`: `timeout` or `sandbox_failure`; `message`: what happened to the worker."""
        super().__init__(message)
        self.kind = kind
        self.message = message


def worker_environment(scratch: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing of the parent's (API keys stay home) but what makes
    the interpreter behave the same in every worker (hash seed, time zone, encoding), and the directory
    this `envfactory` was imported from, so the worker runs the parent's code even from a checkout."""
    return {
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONIOENCODING": "utf-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": str(scratch),
        "HOME": str(scratch),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(envfactory.__file__).resolve().parent.parent),
    }


# Pipe capacity asked for the request and reply pipes (Linux caps it at /proc/sys/fs/pipe-max-size, 1 MiB by
# default): a window of posted requests, or the replies to them, then fits without the writer waiting for the
# reader (each wait is a wake-up of both processes).
_PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    """Ask for a `_PIPE_BYTES` pipe (best effort: elsewhere, or past the system's cap, the pipe keeps its size)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setpipe, _PIPE_BYTES)


class WorkerProcess:
    """One running worker and the three pipes to it. Not thread-safe: its owner serialises use."""

    def __init__(
        self, proc: subprocess.Popen[bytes], requests: int, replies: int, log: int, limits: SandboxLimits, scratch: Path
    ) -> None:
        """Own `proc` and its request, reply and log pipe descriptors (closed with the worker); `scratch`: its
        scratch directory, removed when it is retired."""
        self._proc = proc
        self._requests = requests
        self._replies = replies
        self._log: int | None = log
        self._limits = limits
        self.scratch = scratch
        self._buffer = bytearray()
        self._tail = bytearray()
        self._seq = 0
        self._killed_for: tuple[str, str] | None = None
        self._poll = select.poll()
        self._poll.register(replies, select.POLLIN)
        self._poll.register(log, select.POLLIN)
        # Writing waits for room in the request pipe and takes in replies meanwhile: a worker sent many posted
        # requests at once answers the first while the rest are still being written, and would otherwise block
        # on a full reply pipe while this side blocks on a full request pipe.
        self._out = select.poll()
        self._out.register(requests, select.POLLOUT)
        self._out.register(replies, select.POLLIN)
        self._posted: list[bytes] = []
        self._posted_seq = 0
        self.written_seq = 0  # the highest sequence number of a request written to the worker so far

    # -- start ----------------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        meta: EnvMeta,
        implementation: PythonImplementation,
        module_path: Path,
        source: bytes,
        env_dir: Path,
        scratch: Path,
        limits: SandboxLimits,
    ) -> tuple[WorkerProcess, Ready, bytes]:
        """Start a worker, have it confine itself and derive the toolkit's spec.

        Returns the worker, its `ready` message (with the confinement report) and the spec JSON.
        Raises `SpecError` when the toolkit is unusable (the worker is gone by then) and
        `SandboxError` when the worker could not be started or confined.
        """
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        log_r, log_w = os.pipe()
        for fd in (request_w, reply_w):
            _widen(fd)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-s", "-P", "-X", "faulthandler", "-m", WORKER_MODULE, str(request_r), str(reply_w)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_w,
                pass_fds=(request_r, reply_w),
                cwd=scratch,
                env=worker_environment(scratch),
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (request_r, request_w, reply_r, reply_w, log_r, log_w):
                os.close(fd)
            raise SandboxError(f"cannot start a sandbox worker ({sys.executable}): {exc}") from exc
        for fd in (request_r, reply_w, log_w):
            os.close(fd)
        for fd in (request_w, reply_r, log_r):
            os.set_blocking(fd, False)
        worker = cls(proc, request_w, reply_r, log_r, limits, scratch)
        hello = Hello(
            seq=worker.next_seq(),
            meta=meta,
            implementation=implementation,
            module_path=str(module_path),
            env_dir=str(env_dir),
            scratch=str(scratch),
            limits=limits,
        )
        try:
            reply, body = worker.request(hello, source, limits.start_timeout_s)
        except WorkerLost as lost:
            tail = worker.output_tail()[-2000:].decode("utf-8", "replace").strip()
            detail = f"; its last output:\n{tail}" if tail else ""
            raise SandboxError(f"the sandbox worker for {meta.name} failed to start: {lost.message}{detail}") from None
        if isinstance(reply, Ready):
            return worker, reply, body
        worker.kill()
        if isinstance(reply, Failed) and reply.reason == "spec":
            raise SpecError(reply.message)
        message = reply.message if isinstance(reply, Failed) else f"unexpected {reply.op!r} reply"
        raise SandboxError(f"the sandbox worker for {meta.name} could not start: {message}")

    # -- exchanges ------------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """True until the process exits or is killed."""
        return self._proc.returncode is None and self._killed_for is None

    def next_seq(self) -> int:
        """The next request sequence number (replies must echo it)."""
        self._seq += 1
        return self._seq

    def post(self, message: _Message, body: bytes = b"") -> None:
        """Queue a message; it is written just ahead of the next frame `send` writes (or by `flush`), in
        order, so the worker applies it before that request and is woken once for both. A message with a
        reply (a deferred load) is read with `receive` once sent. Raises `SandboxError` for a frame over the
        message limit."""
        self._posted.append(self._frame(message, body))
        self._posted_seq = getattr(message, "seq", None) or self._posted_seq

    def _frame(self, message: _Message, body: bytes) -> bytes:
        frame = encode(message, body)
        if len(frame) > self._limits.max_message_bytes:
            raise SandboxError(f"a {len(frame)}-byte message exceeds the sandbox limit of {self._limits.max_message_bytes}")
        return frame

    def flush(self, timeout: float | None = None) -> None:
        """Write the posted frames now (raises as `send` does)."""
        if self._posted:
            frame = b"".join(self._posted)
            self._posted.clear()
            self._write(frame, timeout)
            self.written_seq = max(self.written_seq, self._posted_seq)

    def send(self, message: _Message, body: bytes = b"", timeout: float | None = None) -> None:
        """Write the posted frames and one frame (raises `WorkerLost` when the worker is gone or does not read
        in time)."""
        frame = self._frame(message, body)
        if self._posted:
            frame = b"".join((*self._posted, frame))
            self._posted.clear()
        self._write(frame, timeout)
        self.written_seq = max(self.written_seq, self._posted_seq, getattr(message, "seq", 0))

    def _write(self, frame: bytes, timeout: float | None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self._limits.transfer_timeout_s)
        view = memoryview(frame)
        while view:
            try:
                view = view[os.write(self._requests, view) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:  # EPIPE: the worker is gone
                raise self._lost("sandbox_failure", f"stopped reading requests ({exc.strerror})", ours=False) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._lost("timeout", "did not read a request in time")
            for fd, _events in self._out.poll(remaining * 1000):
                if fd == self._replies:
                    self._take_replies()

    def _take_replies(self) -> None:
        """Read what the reply pipe holds into the buffer `_receive` takes frames from."""
        try:
            chunk = os.read(self._replies, _READ_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            raise self._lost("sandbox_failure", "closed its reply pipe", ours=False)
        self._buffer += chunk

    def request(self, message: _Message, body: bytes = b"", timeout: float | None = None) -> tuple[Reply, bytes]:
        """Send a request and wait for its reply until `timeout` seconds have passed."""
        seq = getattr(message, "seq", None)
        deadline = time.monotonic() + (timeout if timeout is not None else self._limits.transfer_timeout_s)
        self.send(message, body, timeout)
        return self._reply(seq, deadline, timeout)

    def receive(self, seq: int, timeout: float | None = None) -> tuple[Reply, bytes]:
        """The next reply, which must answer request `seq` (sent earlier with `send`), waiting until `timeout`
        seconds have passed (raises `WorkerLost` as `request` does)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._limits.transfer_timeout_s)
        return self._reply(seq, deadline, timeout)

    def _reply(self, seq: int | None, deadline: float, timeout: float | None) -> tuple[Reply, bytes]:
        header, payload = self._receive(deadline, timeout)
        try:
            reply = REPLIES.validate_json(header)
        except ValueError:
            raise self._lost("sandbox_failure", "broke the protocol (malformed reply)") from None
        if reply.seq != seq:
            raise self._lost("sandbox_failure", f"broke the protocol (reply {reply.seq} to request {seq})")
        return reply, payload

    def _receive(self, deadline: float, timeout: float | None) -> tuple[bytes, bytes]:
        buffer, replies = self._buffer, self._replies
        while True:
            try:
                frame = split_frame(buffer, self._limits.max_message_bytes)
            except ProtocolError as exc:
                raise self._lost("sandbox_failure", f"broke the protocol ({exc})") from None
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                limit = timeout if timeout is not None else self._limits.transfer_timeout_s
                raise self._lost("timeout", f"did not answer within {limit:g} s")
            for fd, _events in self._poll.poll(remaining * 1000):
                if fd == replies:
                    self._take_replies()
                else:
                    self._drain_log()

    def _drain_log(self) -> None:
        log = self._log
        if log is None:
            return
        keep = self._limits.output_tail_bytes
        while True:
            try:
                chunk = os.read(log, _READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._poll.unregister(log)
                os.close(log)
                self._log = None
                return
            self._tail += chunk
            if len(self._tail) > 2 * keep:
                del self._tail[: len(self._tail) - keep]

    def output_tail(self) -> bytes:
        """The latest bytes the worker wrote to stderr (at most `output_tail_bytes`)."""
        self._drain_log()
        keep = self._limits.output_tail_bytes
        return bytes(self._tail[-keep:]) if keep else b""

    # -- endings --------------------------------------------------------------------------------------
    def _lost(self, kind: str, what: str, *, ours: bool = True) -> WorkerLost:
        """End the worker and describe why it is gone. `ours`: the parent decided (timeout, protocol
        violation); otherwise the worker went away by itself and its exit status tells why."""
        if not ours and self._proc.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)
        if self._proc.returncode is None and self._killed_for is None:
            self._killed_for = (kind, what)
        self.kill()
        return WorkerLost(*self.describe_end())

    def retire(self, kind: str, what: str) -> None:
        """Kill a worker the parent no longer trusts (memory limit hit, state tampered with)."""
        if self._proc.returncode is None and self._killed_for is None:
            self._killed_for = (kind, what)
        self.kill()

    def describe_end(self) -> tuple[str, str]:
        """(kind, words) for a worker that has ended."""
        if self._killed_for is not None:
            return self._killed_for
        code = self._proc.returncode
        if code is None:
            return "sandbox_failure", "is still running"
        if code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return "timeout", "exceeded its CPU-time limit (SIGXCPU)"
            if sig == signal.SIGKILL:
                return "sandbox_failure", "was killed (SIGKILL: out of memory, or killed from outside)"
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            return "sandbox_failure", f"crashed ({name})"
        return "sandbox_failure", f"exited with status {code}"

    def kill(self) -> None:
        """SIGKILL the worker, reap it and close the pipes (idempotent)."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()
        self._drain_log()
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._requests = self._replies = -1

    def stop(self) -> None:
        """Ask the worker to exit, then make sure it has (used when a pool closes or evicts it)."""
        if self._proc.returncode is None and self._requests >= 0:
            with contextlib.suppress(WorkerLost, SandboxError, OSError):
                self.send(Bye(), timeout=0.2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.2)
        self.kill()
