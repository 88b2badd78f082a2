"""Assemble and run servers: the HTTP API (optionally with MCP at `/mcp`) under uvicorn, or MCP over
stdio; and `BackgroundServer`, which runs an app on a free local port in a thread (tests, benchmarks,
trainers that want the API inside their own process).
"""

from __future__ import annotations

import gc
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import anyio
import uvicorn
from fastapi import FastAPI

from envfactory.serve.api import MCP_PATH, create_app
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.config import ServeConfig, ServeLimits
from envfactory.serve.connections import ConnectionPolicy, ConnectionTracker, guarded_protocol, raise_fd_limit
from envfactory.serve.errors import ServeConfigError
from envfactory.serve.mcp_server import McpBridge, McpHttpEndpoint, serve_stdio
from envfactory.serve.service import EnvService, SessionTemplate

logger = logging.getLogger(__name__)

BACKLOG = 2048  # the kernel's queue of connections not yet accepted (the accept batch is smaller)


@dataclass(frozen=True, slots=True)
class Served:
    """An assembled HTTP server: the ASGI app and the service behind it."""

    app: FastAPI
    service: EnvService
    mcp_path: str | None
    connections: ConnectionTracker


def build_http(catalog: EnvCatalog, config: ServeConfig, *, mcp: SessionTemplate | None = None,
               service: EnvService | None = None) -> Served:
    """The HTTP API over `catalog`; with `mcp`, also MCP (streamable HTTP) at `/mcp`, one session group
    per MCP session opened from that template."""
    config.check()
    svc = service or EnvService(catalog, config.limits)
    endpoint = None
    if mcp is not None:
        svc.check_template(mcp)
        endpoint = McpHttpEndpoint(McpBridge(svc, mcp, http=True), config.limits, host=config.host)
    tokens = tuple(t for t in (config.token, getattr(config, "policy_token", None)) if t is not None)
    tracker = ConnectionTracker(ConnectionPolicy.from_limits(config.limits, tokens, raise_fd_limit()))
    return Served(create_app(svc, config, mcp=endpoint), svc, MCP_PATH if endpoint is not None else None, tracker)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: a free one), ready before the app starts."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(BACKLOG)  # connections made before uvicorn accepts wait in the backlog
    except OSError:
        sock.close()
        raise
    return sock


def listening_url(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket (IPv6 hosts bracketed)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_http(served: Served, config: ServeConfig, *, log_level: str = "info",
             announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM); every session is closed on the way out.
    `announce` is called with the base URL once the port is bound (port 0 picks a free one)."""
    sock = bind_socket(config.host, config.port)
    try:
        if announce is not None:
            announce(listening_url(sock))
        policy = served.connections.policy
        logger.info("connections: at most %d open (file-descriptor limit %d); deadlines: head %g s, body %g s, "
                    "idle before authentication %g s", policy.max_connections,
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0], policy.header_timeout_s, policy.body_timeout_s,
                    policy.unauthenticated_idle_s)
        freeze_heap()
        GuardedServer(_uvicorn_config(served.app, served.connections, config.host, config.port, log_level)).run(
            sockets=[sock])
    finally:
        sock.close()


def freeze_heap() -> None:
    """Move everything allocated so far (modules, the app, the loaded environments) out of the garbage
    collector's reach, for a process that is about to serve and then exit.

    A full collection scans every tracked object; in a freshly started server that is some 160,000
    objects and 50-150 ms of one core, which a machine under load stretches towards a second, stalling
    every connection at once. Frozen objects are never scanned again (nor freed, which a server's
    startup state never is anyway), so a full collection then walks only what serving allocated. Not
    for `BackgroundServer`: it runs inside a process whose heap is not the server's to freeze."""
    gc.collect()
    gc.freeze()


class GuardedServer(uvicorn.Server):
    """uvicorn's server, with the kernel's listen queue restored to `BACKLOG` once serving: asyncio
    sizes both the queue and its accept batch from one number, and the batch must stay below the
    descriptor headroom (`ConnectionPolicy.accept_batch`)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, then each listening socket's queue set back to `BACKLOG`."""
        await super().startup(sockets)
        for sock in sockets or ():
            sock.listen(BACKLOG)


def _uvicorn_config(app: FastAPI, tracker: ConnectionTracker, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False,
                          http=guarded_protocol(tracker), backlog=tracker.policy.accept_batch,
                          timeout_graceful_shutdown=5)


def run_stdio(catalog: EnvCatalog, template: SessionTemplate, config: ServeConfig | None = None) -> None:
    """Serve one MCP client over stdin/stdout until it disconnects."""
    service = EnvService(catalog, (config or ServeConfig()).limits)
    service.check_template(template)
    anyio.run(serve_stdio, McpBridge(service, template))


class BackgroundServer:
    """Run a `Served` app (or a bare ASGI app, under the default connection limits) with uvicorn in a daemon thread on `host` and a free port; a context manager.

    `url` is the base URL once entered. Leaving stops the server (its lifespan closes every session)
    and joins the thread.
    """

    def __init__(self, app: FastAPI | Served, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 start_timeout_s: float = 30.0) -> None:
        """Prepare (not start) a server for `app` on `host:port` (0: a free port); `start_timeout_s`: how long
        `start` waits for uvicorn to come up."""
        if isinstance(app, Served):
            asgi, tracker = app.app, app.connections
        else:  # a bare app: the default connection limits
            asgi, tracker = app, ConnectionTracker(ConnectionPolicy.from_limits(ServeLimits(), ()))
        self.connections = tracker
        self._server = GuardedServer(_uvicorn_config(asgi, tracker, host, port, log_level))
        self._host = host
        self._port = port
        self._timeout = start_timeout_s
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port; `RuntimeError` when the server is not running."""
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """The base URL; `RuntimeError` when the server is not running."""
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return listening_url(self._socket)

    def start(self) -> BackgroundServer:
        """Bind, serve in a daemon thread and wait until uvicorn has started; `ServeConfigError` (after stopping
        it) when it does not start within the timeout."""
        sock = bind_socket(self._host, self._port)
        self._socket = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"envfactory-serve-{self.port}", daemon=True)
        self._thread.start()
        where = f"{self._host}:{self.port}"
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServeConfigError(f"the server on {where} did not start (see its log)")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the server to exit (its lifespan closes every session), join the thread for up to `timeout_s`
        and close the socket; idempotent."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
