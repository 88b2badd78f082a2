"""Connection handling of the HTTP server: deadlines per connection, a connection cap that keeps
file-descriptor headroom, and the accept batch that keeps the cap honest.

Contract:
- `raise_fd_limit()` lifts the soft `RLIMIT_NOFILE` to the hard limit where the kernel allows it;
  `ConnectionPolicy.from_limits` then sizes the cap below the soft limit, leaving `headroom`
  descriptors for everything else the server opens (sandbox pipes, files, the listening socket) and
  for connections accepted but not yet counted.
- Every connection is counted when made. Past the cap, the oldest connection that has not proved
  itself (no request head with a valid token, of any role — any complete head when the server has no token —
  and no request in progress) is closed to make room; when none is such, the new connection is
  closed at once. Connections are always accepted, so nothing waits in the listen backlog while the
  server is full, and `accept()` never meets `EMFILE` (the accept batch is smaller than the headroom).
- Deadlines (the connection is aborted when one passes):
  - a connection that has not proved itself may sit idle (no request in progress) for
    `unauthenticated_idle_s`; proved connections idle under uvicorn's keep-alive timeout;
  - a request head must be complete within `header_timeout_s` of its first byte;
  - a request body must be complete within `body_timeout_s` of its head.
  While the application handles a request no deadline runs: the application answers for its own time.

The guard is a subclass of uvicorn's HTTP/1.1 protocol (httptools when installed, h11 otherwise) and
uses only the asyncio protocol interface plus the request cycle's `more_body`/`response_complete`,
which both implementations keep.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from envfactory.serve.config import ServeLimits

logger = logging.getLogger(__name__)

MIN_HEADROOM = 64
MIN_CAP = 16


def raise_fd_limit() -> int:
    """Raise the soft `RLIMIT_NOFILE` to the hard limit where allowed; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. the hard limit above the kernel's nr_open
            logger.info("could not raise the soft file-descriptor limit from %d to %d: %s", soft, target, exc)
    return int(soft)


@dataclass(slots=True)
class ConnectionStats:
    """Counters of what the guard did (for logs, tests and the robustness figures)."""

    accepted: int = 0
    refused: int = 0
    evicted: int = 0
    timed_out: int = 0
    peak: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """The limits one server's connections live under; see the module docstring."""

    max_connections: int
    accept_batch: int
    header_timeout_s: float
    body_timeout_s: float
    unauthenticated_idle_s: float
    tokens: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_limits(cls, limits: ServeLimits, tokens: tuple[str, ...], fd_limit: int | None = None) -> ConnectionPolicy:
        """Size the cap from the soft descriptor limit (`fd_limit`, default: the current one). `tokens`:
        the bearer tokens that prove a connection (none: the server has no token)."""
        soft = fd_limit if fd_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 20
        headroom = max(MIN_HEADROOM, soft // 4)
        derived = max(MIN_CAP, soft - headroom)
        cap = min(derived, limits.max_connections) if limits.max_connections is not None else derived
        return cls(max_connections=cap, accept_batch=max(4, min(128, headroom // 8)),
                   header_timeout_s=limits.header_timeout_s, body_timeout_s=limits.body_timeout_s,
                   unauthenticated_idle_s=limits.unauthenticated_idle_s, tokens=tokens)


class ConnectionTracker:
    """The open connections of one server, oldest first, and the counters."""

    def __init__(self, policy: ConnectionPolicy) -> None:
        """No connections yet; `policy` gives the cap, the deadlines and the tokens that prove a connection."""
        self.policy = policy
        self.open: OrderedDict[GuardedProtocolBase, None] = OrderedDict()
        self.stats = ConnectionStats()

    def admit(self, conn: GuardedProtocolBase) -> bool:
        """Count `conn`; False when it must be closed at once (the server is full of busy or proved
        connections)."""
        self.stats.accepted += 1
        if len(self.open) >= self.policy.max_connections:
            victim = next((c for c in self.open if c.evictable), None)
            if victim is None:
                self.stats.refused += 1
                return False
            self.stats.evicted += 1
            victim.drop()
        self.open[conn] = None
        self.stats.peak = max(self.stats.peak, len(self.open))
        return True

    def forget(self, conn: GuardedProtocolBase) -> None:
        """Stop counting `conn` (closed, or dropped); unknown connections are ignored."""
        self.open.pop(conn, None)


class GuardedProtocolBase(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP/1.1 protocol with the cap and deadlines of `ConnectionTracker.policy`.
    Made concrete per server by `guarded_protocol`."""

    tracker: ConnectionTracker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """uvicorn's protocol, not yet counted or proved; the tokens that prove it come from the tracker's policy."""
        super().__init__(*args, **kwargs)
        self._proved = False
        self._counted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "idle"
        self._last_cycle: Any = None
        self._expected = tuple(f"Bearer {token}".encode() for token in self.tracker.policy.tokens)

    # -- the asyncio protocol interface ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, or abort it at once when the tracker has no room; then start its idle deadline."""
        super().connection_made(transport)
        if not self.tracker.admit(self):
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        self._counted = True
        self._arm("idle")

    def data_received(self, data: bytes) -> None:
        """Feed uvicorn, then move to the deadline of the request phase the bytes reached."""
        super().data_received(data)
        self._update_phase(received=True)

    def connection_lost(self, exc: Exception | None) -> None:
        """Cancel the deadline and stop counting the connection."""
        self._disarm()
        if self._counted:
            self.tracker.forget(self)
            self._counted = False
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """After a response, back to the idle deadline (or the next pipelined request's)."""
        super().on_response_complete()
        self._update_phase(received=False)

    # -- deadlines ------------------------------------------------------------------------------------
    @property
    def evictable(self) -> bool:
        """Not proved, and no request of it in the application's hands."""
        return not self._proved and self._phase in ("idle", "head")

    def _request_cycle(self) -> Any:
        cycle = getattr(self, "cycle", None)
        return None if cycle is None or cycle.response_complete else cycle

    def _update_phase(self, *, received: bool) -> None:
        transport = getattr(self, "transport", None)
        if transport is None or transport.is_closing():
            self._disarm()
            return
        cycle = self._request_cycle()
        if cycle is not None:
            if cycle is not self._last_cycle:  # a new request head just completed
                self._last_cycle = cycle
                self._check_token(cycle.scope)
            self._arm("body" if cycle.more_body else "app")
        elif received:
            self._arm("head")  # bytes of a request head that is not complete yet
        else:
            self._arm("idle")

    def _check_token(self, scope: Any) -> None:
        if self._proved:
            return
        if not self._expected:
            self._proved = True
            return
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and any(hmac.compare_digest(bytes(value), e) for e in self._expected):
                self._proved = True
                return

    def _arm(self, phase: str) -> None:
        if phase == self._phase and self._deadline is not None:
            return
        self._disarm()
        self._phase = phase
        policy = self.tracker.policy
        seconds = {"head": policy.header_timeout_s, "body": policy.body_timeout_s,
                   "idle": None if self._proved else policy.unauthenticated_idle_s}.get(phase)
        if seconds is not None:
            self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._phase == "app":
            return
        self.tracker.stats.timed_out += 1
        self.drop()

    def drop(self) -> None:
        """Close the connection now (its descriptor is freed on the next loop turn)."""
        self._disarm()
        transport = getattr(self, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.abort()
        if self._counted:
            self.tracker.forget(self)
            self._counted = False


def guarded_protocol(tracker: ConnectionTracker) -> type[asyncio.Protocol]:
    """A protocol class for one server (uvicorn instantiates the class it is given)."""
    return type("GuardedHttpProtocol", (GuardedProtocolBase,), {"tracker": tracker})
