"""The viewer's HTTP server: routes, read-only enforcement, the access token, static files and error pages.

Contract:
- Only GET and HEAD are served; every other method (POST, PUT, PATCH, DELETE, OPTIONS, ...) is answered
  405 with `Allow: GET, HEAD`. No route writes anything.
- `ViewerConfig.check()` refuses a non-loopback host without a token. Without a token, a request whose
  `Host` header is not a loopback name is refused (403: DNS rebinding). With a token every request must
  carry it (`Authorization: Bearer`, the `envfactory_view_token` cookie, or `?token=` once, which sets
  the cookie); otherwise 401.
- Unknown routes, ids and paths answer a 404 page; an artifact that cannot be read answers 422 with a
  sentence naming the file and the problem; an unexpected error answers 500 with a short message (the
  traceback goes to the server log, never to the page). Every page carries a Content-Security-Policy
  that allows only the viewer's own scripts, so even text that escaped escaping could not run.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from envfactory.errors import SpecError
from envfactory.viewer import pages_envs, pages_graph, pages_records, pages_runs
from envfactory.viewer.render import PageResult, make_environment, query_int
from envfactory.viewer.workspace import (
    ATTEMPT_FILE,
    CHAIN_FILES,
    DROP_FILES,
    GRAPH_FILES,
    TASK_FILES,
    TRAJECTORY_FILES,
    ArtifactProblem,
    NotFound,
    WorkspaceData,
)

log = logging.getLogger("envfactory.viewer")

TOKEN_COOKIE = "envfactory_view_token"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
                ".LICENSE": "text/plain; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
READ_METHODS = "GET, HEAD"


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    """Where to serve which workspace, and the token required beyond loopback."""

    workspace: Path
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    prewarm: bool = True

    def check(self) -> ViewerConfig:
        """Refuse a non-loopback host without a token, and a port outside 0–65535 (`SpecError`)."""
        if not is_loopback(self.host) and not self.token:
            raise SpecError(f"refusing to serve the viewer on {self.host} without a token: pass --token-file "
                            "or set ENVFACTORY_VIEW_TOKEN (loopback hosts need none)")
        if not 0 <= self.port <= 65535:
            raise SpecError(f"--port {self.port}: use 0–65535")
        return self


class Viewer:
    """Maps a request path and query to a page; owns the workspace reader and the templates."""

    def __init__(self, data: WorkspaceData) -> None:
        """Pages over `data`; templates and static files come from the package (read once, here)."""
        self.data = data
        self.templates = make_environment()
        self.static = {p.name: p for p in Path(str(files("envfactory.viewer") / "static")).iterdir() if p.is_file()}

    def route(self, path: str, query: dict[str, str]) -> PageResult:
        """The page for `path` (segments percent-decoded one by one); `NotFound` for anything unknown."""
        parts = [unquote(p) for p in path.split("/") if p]
        data = self.data
        head, rest = (parts[0], parts[1:]) if parts else ("", [])
        handlers: dict[tuple[str, int], Callable[[], PageResult]] = {
            ("", 0): lambda: self.overview(),
            ("envs", 0): lambda: pages_envs.envs_page(data, query),
            ("env", 2): lambda: pages_envs.env_page(data, rest[0], rest[1]) if len(rest) == 2 else _missing(),
            ("funnels", 0): lambda: pages_runs.funnels_page(data),
            ("runs", 0): lambda: pages_runs.runs_page(data, query),
            ("run", 1): lambda: pages_runs.run_page(data, rest[0]),
            ("graph", 0): lambda: pages_graph.graph_page(data, query),
            ("chains", 0): lambda: pages_records.chains_page(data, query),
            ("tasks", 0): lambda: pages_records.records_page(data, "task", query),
            ("drops", 0): lambda: pages_records.records_page(data, "drop", query),
            ("task", 0): lambda: pages_records.task_page(data, query),
            ("trajectories", 0): lambda: pages_records.records_page(data, "trajectory", query),
            ("trajectory", 0): lambda: pages_records.trajectory_page(data, query),
            ("evals", 0): lambda: pages_runs.evals_page(data),
            ("eval", 1): lambda: pages_runs.eval_page(data, rest[0], query),
            ("static", 1): lambda: self.static_file(rest[0]),
        }
        if head == "graph" and rest == ["data.json"]:
            return pages_graph.graph_data(data, query)
        if head == "eval" and len(rest) == 3 and rest[1] == "attempt":
            return pages_runs.attempt_page(data, rest[0], query_int({"n": rest[2]}, "n", -1))
        handler = handlers.get((head, len(rest)))
        if handler is None:
            raise NotFound(f"no page at {path}")
        return handler()

    def prewarm(self) -> None:
        """Index every JSONL artifact once (a background thread calls this at start), so the first
        visit of a list page over a big file finds its index built. Unreadable files are left to the
        page that shows them."""
        data = self.data
        for kind, (patterns, summarise, _, _) in pages_records.KINDS.items():
            for item in data.data_files(patterns):
                with contextlib.suppress(OSError):
                    data.indexes.get(item.path, kind, summarise)
        for run in data.eval_runs():
            with contextlib.suppress(OSError):
                data.indexes.get(run.path / ATTEMPT_FILE, "attempt", pages_runs.attempt_summary)

    def overview(self) -> PageResult:
        """`/`: what the workspace holds, with links to each kind of page."""
        data = self.data
        counts = {
            "environments": pages_envs.env_count(data), "runs": len(data.runs()),
            "evaluation runs": len(data.eval_runs()), "graphs": len(data.data_files(GRAPH_FILES)),
            "chain files": len(data.data_files(CHAIN_FILES)), "task files": len(data.data_files(TASK_FILES)),
            "dropped-candidate files": len(data.data_files(DROP_FILES)),
            "trajectory files": len(data.data_files(TRAJECTORY_FILES)),
        }
        return PageResult("index.html", {"title": "Overview", "root": str(data.root), "counts": counts,
                                         "sources": data.env_sources()})

    def static_file(self, name: str) -> PageResult:
        """A vendored or own static file, by exact name from the package's `static/` listing."""
        path = self.static.get(name)
        if path is None:
            raise NotFound(f"no static file {name!r}")
        kind = STATIC_TYPES.get(path.suffix, "application/octet-stream")
        return PageResult(body=path.read_bytes(), content_type=kind)

    def render(self, result: PageResult) -> tuple[int, bytes, str]:
        """Status, body and content type of a result (templates rendered with autoescape)."""
        if not result.template:
            return result.status, result.body, result.content_type
        html = self.templates.get_template(result.template).render(**result.context)
        return result.status, html.encode("utf-8"), result.content_type

    def error_page(self, status: int, title: str, message: str) -> tuple[int, bytes, str]:
        """An HTML error page: `(status, body, content type)`."""
        html = self.templates.get_template("error.html").render(title=title, status=status, message=message)
        return status, html.encode("utf-8"), "text/html; charset=utf-8"

    def respond(self, target: str) -> tuple[int, bytes, str]:
        """Status, body and content type for a GET of `target` (path and query)."""
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            return self.render(self.route(parts.path, query))
        except NotFound as exc:
            return self.error_page(404, "Not found", str(exc) or "no such page")
        except ArtifactProblem as exc:
            return self.error_page(422, "Artifact cannot be shown", str(exc))
        except Exception as exc:  # the page must never show a traceback; the log keeps it
            log.exception("viewer error on %s", parts.path)
            return self.error_page(500, "Viewer error",
                                   f"the viewer failed on this page ({type(exc).__name__}); the server log has the details")


def _missing() -> PageResult:
    raise NotFound("no such page")


def _token_of(handler: BaseHTTPRequestHandler) -> tuple[str, bool]:
    """The token a request carries and whether it came in the query string."""
    auth = handler.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip(), False
    query = parse_qs(urlsplit(handler.path).query)
    if "token" in query:
        return query["token"][0], True
    cookie = SimpleCookie(handler.headers.get("Cookie", ""))
    morsel = cookie.get(TOKEN_COOKIE)
    return (morsel.value if morsel is not None else ""), False


def _host_name(host_header: str) -> str:
    """The host name of a `Host` header, without the port (`[::1]:8765` → `::1`)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def make_handler(viewer: Viewer, token: str | None) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a server showing `viewer`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "envfactory-view"
        sys_version = ""

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None,
                  head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _serve(self, head: bool) -> None:
            extra: dict[str, str] = {}
            if token is None and not is_loopback(_host_name(self.headers.get("Host", ""))):
                # Without a token the viewer is for this machine only: a page elsewhere that rebinds its
                # own name to 127.0.0.1 must not read the workspace through the browser (DNS rebinding).
                self._send(*viewer.error_page(403, "Forbidden", "this viewer answers only requests addressed "
                                              "to a loopback name (localhost, 127.0.0.1, [::1])"), head=head)
                return
            if token is not None:
                given, from_query = _token_of(self)
                if not hmac.compare_digest(given.encode(), token.encode()):
                    self._send(*viewer.error_page(401, "Token required", "this viewer needs its access token"),
                               head=head)
                    return
                if from_query:
                    extra["Set-Cookie"] = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            started = time.perf_counter()
            status, body, content_type = viewer.respond(self.path)
            extra["Server-Timing"] = f"render;dur={1000 * (time.perf_counter() - started):.1f}"
            self._send(status, body, content_type, extra, head=head)

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _refuse(self) -> None:
            status, body, content_type = viewer.error_page(
                405, "Method not allowed", f"the viewer is read-only: {self.command} is not allowed, only {READ_METHODS}")
            self._send(status, body, content_type, {"Allow": READ_METHODS})

        do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server serving one `Viewer`."""

    daemon_threads = True

    def __init__(self, config: ViewerConfig, library: Path | None = None) -> None:
        """Bind `config.host:config.port` (IPv6 when the host has a colon) after `config.check()`, which raises
        `SpecError` for a non-loopback host without a token; starts prewarming the indexes in a daemon thread
        when `config.prewarm`. Does not serve until `serve_forever` or `start_background`."""
        config.check()
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.viewer = Viewer(WorkspaceData(config.workspace, library))
        super().__init__((config.host, config.port), make_handler(self.viewer, config.token))
        if config.prewarm:
            threading.Thread(target=self.viewer.prewarm, name="envfactory-view-prewarm", daemon=True).start()

    @property
    def url(self) -> str:
        """`http://host:port` of the bound socket (the real port when 0 was asked; IPv6 hosts bracketed)."""
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start_background(self) -> threading.Thread:
        """Serve in a daemon thread (tests, benchmarks); `shutdown()` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="envfactory-view", daemon=True)
        thread.start()
        return thread


def configure_logging(level: str = "warning") -> None:
    """Send the viewer's log to stderr at `level`."""
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(asctime)s %(name)s %(message)s")
