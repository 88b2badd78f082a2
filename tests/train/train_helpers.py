"""Helpers of the training tests (imported as `train_helpers`): an env server process that can be killed
and restarted on the same port, and TRL's way of driving environment objects."""

from __future__ import annotations

import inspect
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KillableServer:
    """`envfactory serve --http` on a fixed port, in a subprocess that tests kill with SIGKILL."""

    def __init__(self, envs: list[str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.envs = envs
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> KillableServer:
        self.starts += 1
        log = self.log_dir / f"serve-{self.port}-{self.starts}.log"
        args = [sys.executable, "-m", "envfactory", "serve", "--http", *[arg for e in self.envs for arg in ("--env", e)],
                "--port", str(self.port), "--log-level", "warning"]
        with log.open("wb") as handle:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle)
        deadline = time.monotonic() + 60
        while not re.search(r"listening on http://", log.read_text(errors="replace")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies with its sessions, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def trl_tools(environment: Any) -> dict[str, Any]:
    """The tool dict GRPOTrainer builds for one rollout: the class's public functions, bound."""
    return {name: getattr(environment, name) for name, _ in inspect.getmembers(type(environment), inspect.isfunction)
            if name not in ("reset", "get_reward") and not name.startswith("_")}
