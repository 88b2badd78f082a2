"""The wire protocol between the parent and a sandbox worker (version 1).

Transport: two dedicated pipes (requests parent → worker, replies worker → parent), never stdout or
stderr, which belong to the toolkit. A frame is `u32 header length | u32 body length | header | body`
(big endian). The header is one typed message (pydantic, discriminated by `op`, `schema_version` 1);
the body carries the one JSON value the message is about (tool arguments, a tool's output, a state) as
JSON bytes, or the toolkit source in `hello`. No pickle, no dict payloads.

Requests that expect a reply carry a sequence number the reply echoes; `commit`, `fork` and `release`
are one-way (the worker applies them in order and has nothing to say: anything wrong with them is a
protocol violation that ends the worker).
"""

from __future__ import annotations

import os
import struct
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter

from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.report import SandboxReport
from envfactory.spec import EnvMeta, PythonImplementation, SpecModel

PROTOCOL_VERSION = 1
# States up to this size travel back with the reply that made them (`Loaded`, `Called`).
STATE_ECHO_BYTES = 1 << 16
HEADER = struct.Struct(">II")


class _Message(SpecModel):
    schema_version: Literal[1] = 1


class RngState(SpecModel):
    """`random.Random.getstate()` of version 3: 625 words and the cached gaussian."""

    internal: tuple[int, ...]
    gauss_next: float | None = None


# -- requests -------------------------------------------------------------------------------------------
class Hello(_Message):
    """First message: which toolkit to run and how to confine it. Body: the toolkit source bytes."""

    op: Literal["hello"] = "hello"
    seq: int
    meta: EnvMeta
    implementation: PythonImplementation
    module_path: str
    env_dir: str
    scratch: str
    limits: SandboxLimits


class LoadState(_Message):
    """Validate state JSON (body; `null` for the empty state) into handle `handle`."""

    op: Literal["load"] = "load"
    seq: int
    handle: int


class Call(_Message):
    """Run `tool` on handle `handle` (whose state must hash to `expect`). Body: the arguments."""

    op: Literal["call"] = "call"
    seq: int
    handle: int
    token: int
    expect: str
    tool: str
    seed: int
    step: int
    clock_start: str
    clock_tick_us: int
    rng: RngState | None = None


class AheadItem(SpecModel):
    """A call run ahead (`CallAhead`): its commit token and tool; its context follows from the calls before it."""

    token: int
    tool: str


class CallAhead(_Message):
    """`call`, then the calls `ahead` on the same handle, each on the state the one before it left (a write's
    pending state; a read or a failed call leaves the state as it was), with the context the session would
    give it if every write before it commits (the step after each write; the same seed and clock). The worker
    stops after a call that moved the RNG or failed for a reason other than `tool` or `crash`. Body: the
    arguments of `call`, then of each item, `sizes` bytes each. Nothing is committed: each write waits for
    its `Commit` as usual, and a call on the handle drops the pending ones never committed."""

    op: Literal["call_ahead"] = "call_ahead"
    seq: int
    call: Call
    ahead: tuple[AheadItem, ...]
    sizes: tuple[int, ...]


class Commit(_Message):
    """Apply the pending write of call `token` (one-way)."""

    op: Literal["commit"] = "commit"
    token: int


class Fork(_Message):
    """Make handle `handle` a copy of handle `source` (one-way)."""

    op: Literal["fork"] = "fork"
    source: int
    handle: int


class Release(_Message):
    """Forget these handles (one-way)."""

    op: Literal["release"] = "release"
    handles: tuple[int, ...]


class Fetch(_Message):
    """Send back the state of `handle` (reply body: its canonical JSON)."""

    op: Literal["fetch"] = "fetch"
    seq: int
    handle: int


class Bye(_Message):
    """Exit now (one-way)."""

    op: Literal["bye"] = "bye"


Request = Annotated[
    Union[Hello, LoadState, Call, CallAhead, Commit, Fork, Release, Fetch, Bye],  # noqa: UP007
    Field(discriminator="op"),
]


# -- replies --------------------------------------------------------------------------------------------
class Ready(_Message):
    """The toolkit imported and its spec derived under confinement. Body: the sealed EnvSpec JSON."""

    op: Literal["ready"] = "ready"
    seq: int
    protocol: int = PROTOCOL_VERSION
    report: SandboxReport


class Loaded(_Message):
    """A state was loaded into a handle (answer to `LoadState`). `hash` is that state's canonical hash.
    Body: that state's canonical JSON when it is at most `STATE_ECHO_BYTES` long, else empty."""
    op: Literal["loaded"] = "loaded"
    seq: int
    hash: str


class Called(_Message):
    """A tool ran. Body: its output JSON. `hash` is the pending state's for writes. With `output_bytes`
    set, the body is the output JSON (that many bytes) followed by the pending state's canonical JSON,
    sent along when it is at most `STATE_ECHO_BYTES` long (the parent keeps it, so reading that state
    back costs no round trip)."""

    op: Literal["called"] = "called"
    seq: int
    writes: bool
    hash: str | None = None
    rng: RngState | None = None
    output_bytes: int | None = None


class Fetched(_Message):
    """Body: the canonical JSON of the requested state."""

    op: Literal["fetched"] = "fetched"
    seq: int


FailureReason = Literal["spec", "setup", "tool", "crash", "memory", "disk", "integrity"]


class Failed(_Message):
    """A request failed. `reason`: `spec` (bad toolkit or state), `setup` (confinement could not be
    applied), `tool` (an anticipated tool error: `kind`, `message`, `path`), `crash` (the tool raised
    something else), `memory` (the memory limit was hit), `disk` (the call hit the disk quota or the
    file-size limit), `integrity` (the stored state does not hash to what the parent expects)."""

    op: Literal["failed"] = "failed"
    seq: int
    reason: FailureReason
    message: str
    kind: str | None = None
    path: str | None = None


class CalledAhead(_Message):
    """The replies to a `CallAhead`'s calls that ran, in order (`Called` or `Failed`, each as it would answer a
    `Call`). Body: each reply's body, `sizes` bytes each."""

    op: Literal["called_ahead"] = "called_ahead"
    seq: int
    replies: tuple[Annotated[Union[Called, Failed], Field(discriminator="op")], ...]  # noqa: UP007
    sizes: tuple[int, ...]


Reply = Annotated[Union[Ready, Loaded, Called, CalledAhead, Fetched, Failed], Field(discriminator="op")]  # noqa: UP007

REQUESTS: TypeAdapter[Request] = TypeAdapter(Request)
REPLIES: TypeAdapter[Reply] = TypeAdapter(Reply)


class ProtocolError(Exception):
    """A frame that breaks the protocol (size, encoding, unexpected message)."""


def encode(message: _Message, body: bytes = b"") -> bytes:
    """One frame: lengths, the message's JSON, the body."""
    header = message.__pydantic_serializer__.to_json(message)
    return HEADER.pack(len(header), len(body)) + header + body


def split_frame(buffer: bytearray, limit: int) -> tuple[bytes, bytes] | None:
    """Take one complete frame off the front of `buffer` (None while incomplete)."""
    if len(buffer) < HEADER.size:
        return None
    head, body = HEADER.unpack_from(buffer)
    if head + body > limit:
        raise ProtocolError(f"frame of {head + body} bytes exceeds the {limit}-byte limit")
    end = HEADER.size + head + body
    if len(buffer) < end:
        return None
    header = bytes(buffer[HEADER.size : HEADER.size + head])
    payload = bytes(buffer[HEADER.size + head : end])
    del buffer[:end]
    return header, payload


class BlockingReader:
    """Frames from a blocking descriptor (the worker's side)."""

    def __init__(self, fd: int, limit: int) -> None:
        """Read frames from `fd`; a frame larger than `limit` bytes is a protocol error."""
        self._fd = fd
        self.limit = limit
        self._buffer = bytearray()

    def read(self) -> tuple[bytes, bytes] | None:
        """The next frame, or None at end of file."""
        while True:
            frame = split_frame(self._buffer, self.limit)
            if frame is not None:
                return frame
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a blocking descriptor."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
