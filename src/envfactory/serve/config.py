"""Server configuration: where to listen, the bearer token, and the limits every session lives under.

Contract: `ServeConfig.check()` refuses a server bound beyond loopback without a token (anyone who can
reach the port could drive every session), and tokens shorter than `MIN_TOKEN_LENGTH`. The CLI builds
these objects; nothing here reads environment variables or files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from envfactory.serve.errors import ServeConfigError

MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for loopback addresses and the usual names of loopback. Wildcards (`0.0.0.0`, `::`) and
    other names count as beyond loopback."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """Per-server limits.

    - `max_sessions`: open sessions (HTTP and MCP together); creating one more answers 503.
    - `idle_timeout_s`: a session with no request for this long is closed by the reaper.
    - `reap_interval_s`: how often the reaper looks (default: a quarter of the idle timeout, at most 30 s).
    - `max_body_bytes`: request bodies above this size answer 413 before they are parsed.
    - `remember_closed`: how many closed session ids are remembered, so that a late request hears
      "closed" (410, with the reason) rather than "unknown" (404).
    - `header_timeout_s`: a request head must be complete this long after its first byte.
    - `body_timeout_s`: a request body must be complete this long after its head.
    - `unauthenticated_idle_s`: a connection that has sent no request with a valid token (with no
      token configured: no complete request) is closed after this long without a request in progress.
    - `max_connections`: open connections at most (`None`: derived from the file-descriptor limit,
      keeping headroom; see `connections.py`). Past it, unproved idle connections make room or the
      new connection is closed at once.
    - `max_json_depth`: deepest nesting of arrays and objects a JSON body may have (400 past it).
    """

    max_sessions: int = 1024
    idle_timeout_s: float = 900.0
    reap_interval_s: float | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    remember_closed: int = 10_000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    unauthenticated_idle_s: float = 10.0
    max_connections: int | None = None
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ServeConfigError(f"max_sessions must be at least 1, got {self.max_sessions}")
        if not self.idle_timeout_s > 0:
            raise ServeConfigError(f"idle_timeout_s must be positive, got {self.idle_timeout_s}")
        if self.reap_interval_s is not None and not self.reap_interval_s > 0:
            raise ServeConfigError(f"reap_interval_s must be positive, got {self.reap_interval_s}")
        if self.max_body_bytes < 1024:
            raise ServeConfigError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        for name in ("header_timeout_s", "body_timeout_s", "unauthenticated_idle_s"):
            if not getattr(self, name) > 0:
                raise ServeConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ServeConfigError(f"max_connections must be at least 1, got {self.max_connections}")
        if not 2 <= self.max_json_depth <= 512:
            raise ServeConfigError(f"max_json_depth must be between 2 and 512, got {self.max_json_depth}")
        if self.remember_closed < 0:
            raise ServeConfigError(f"remember_closed must not be negative, got {self.remember_closed}")

    @property
    def reap_every_s(self) -> float:
        """Seconds between idle-reaper passes: `reap_interval_s`, else a quarter of the idle timeout (at most 30)."""
        return self.reap_interval_s if self.reap_interval_s is not None else min(30.0, self.idle_timeout_s / 4)


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Where and how the HTTP server listens. `token`: the bearer token every request except health and
    the API docs must carry; required when `host` is not loopback. `policy_token`: a second token whose
    holder has the policy role (a session's tools and calls only; `roles.py`); needs `token`."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    policy_token: str | None = field(default=None, repr=False)
    limits: ServeLimits = field(default_factory=ServeLimits)

    def check(self) -> None:
        """Raise `ServeConfigError` for a configuration that must not start."""
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ServeConfigError(f"the bearer token must have at least {MIN_TOKEN_LENGTH} characters")
        if self.token is None and not is_loopback(self.host):
            raise ServeConfigError(
                f"refusing to listen on {self.host} without a bearer token: beyond loopback anyone who "
                "reaches the port could drive every session; pass a token (--token-file or "
                "ENVFACTORY_SERVE_TOKEN) or bind to 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise ServeConfigError(f"port {self.port} is out of range")
        if self.policy_token is not None:
            if self.token is None:
                raise ServeConfigError("a policy token needs a trainer token: without one every client has every role")
            if len(self.policy_token) < MIN_TOKEN_LENGTH or self.policy_token == self.token:
                raise ServeConfigError(f"the policy token must have at least {MIN_TOKEN_LENGTH} characters and "
                                       "differ from the trainer's token")
