"""Helpers of the serving tests: the real app under uvicorn in a background thread on a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.config import ServeConfig, ServeLimits
from envfactory.serve.connections import ConnectionTracker
from envfactory.serve.runner import BackgroundServer, build_http
from envfactory.serve.service import EnvService, SessionTemplate

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
TOKEN = "test-token-0123456789abcdef"


@dataclass(frozen=True)
class Running:
    url: str
    service: EnvService
    connections: ConnectionTracker | None = None


@contextmanager
def running(catalog: EnvCatalog, *, limits: ServeLimits | None = None, token: str | None = None,
            mcp: SessionTemplate | None = None) -> Iterator[Running]:
    """Start the HTTP server (with MCP at /mcp when `mcp` is given); stop it, reliably, on exit."""
    served = build_http(catalog, ServeConfig(token=token, limits=limits or ServeLimits()), mcp=mcp)
    with BackgroundServer(served) as server:
        yield Running(server.url, served.service, served.connections)


class ServerProcess:
    """`envfactory serve ... --port 0` in a subprocess; `url` once it listens. Stopped with SIGINT (the
    server closes its sessions), killed if it does not exit in time."""

    def __init__(self, *args: str, log_dir: Path) -> None:
        self.log = log_dir / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        self._args = [sys.executable, "-m", "envfactory", "serve", *args, "--port", "0", "--log-level", "warning"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self._args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not self.url:
            match = re.search(r"listening on (http://\S+):\s", self.log.read_text(encoding="utf-8", errors="replace"))
            if match:
                self.url = match.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log.read_text(encoding='utf-8')}")
            else:
                time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()


def child_pids(pid: int) -> set[int]:
    """Live child processes of `pid` (Linux /proc)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return children
