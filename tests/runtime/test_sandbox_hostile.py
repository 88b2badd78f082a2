"""Hostile toolkits against the sandbox (issue 3).

Every test runs one attack from `tests/fixtures/hostile` in a worker that also hosts three sibling
sessions of the same environment, then asserts:
- the exact result kind (the attempt fails: the tool raises → `execution_error`; the worker dies or
  stalls → `sandbox_failure` / `timeout`) and, where the report says which layer refuses it, that
  layer's refusal;
- the parent is alive and the pool still serves (the siblings answer calls afterwards);
- the three siblings' hashes and states are unchanged (rebuilt by replay when the worker died);
- no trace of a secret file (random bytes, outside the environment directory) appears in any result,
  log record or the worker's captured output.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envfactory.runtime import Environment, Session, load_env, open_session
from envfactory.runtime.sandbox import SandboxBackend, SandboxLimits, SandboxPool, SandboxReport
from envfactory.spec import ToolResult

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
TIMEOUT_S = 1.0
LIMITS = SandboxLimits(call_timeout_s=TIMEOUT_S, memory_bytes=512 * 1024 * 1024)

# Which layer refuses first, and the words its refusal carries.
_REFUSALS = {
    "seccomp": "Operation not permitted",
    "landlock": "Permission denied",
    "network-namespace": "Network is unreachable",
    "rlimit-nproc": "Resource temporarily unavailable",
    "audit-hook": "sandbox:",
}
_PRECEDENCE = {
    "tcp": ("network", ("seccomp", "landlock", "network-namespace", "audit-hook")),
    "udp": ("network", ("seccomp", "network-namespace", "audit-hook")),
    "processes": ("processes", ("seccomp", "rlimit-nproc", "audit-hook")),
    "filesystem": ("filesystem", ("landlock", "audit-hook")),
}


def refusal(report: SandboxReport, attempt: str) -> str:
    """What the refusal of an attempt says, given the layers this worker has (the first to act wins)."""
    area, order = _PRECEDENCE[attempt]
    layers = getattr(report, area)
    first = next(layer for layer in order if layer in layers)
    return _REFUSALS[first]


@dataclass
class Arena:
    pool: SandboxPool
    env: Environment
    siblings: list[Session]
    expected: list[tuple[str, Any]]
    attacker: Session
    secret: bytes
    secret_path: Path
    env_dir: Path
    tmp_path: Path
    caplog: pytest.LogCaptureFixture
    parent_pid: int

    @property
    def backend(self) -> SandboxBackend:
        backend = self.env.backend
        assert isinstance(backend, SandboxBackend)
        return backend

    @property
    def report(self) -> SandboxReport:
        report = self.backend.report
        assert report is not None
        return report

    def attack(self, tool: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        return self.attacker.call(tool, arguments or {})

    def check_unharmed(self, *results: ToolResult) -> None:
        assert os.getpid() == self.parent_pid
        states = []
        for session, (digest, state) in zip(self.siblings, self.expected, strict=True):
            assert session.hash() == digest
            assert session.state_json() == state  # read back from the worker and checked against the hash
            answer = session.call("peek")
            assert answer.error is None and answer.output == state
            states.append(repr(state))
        output = self.backend.output_tail().decode("latin-1")
        texts = [r.model_dump_json() for r in results] + [self.caplog.text, output, *states]
        forms = [
            self.secret.decode("latin-1"),
            self.secret.hex(),
            base64.b64encode(self.secret).decode(),
            repr(self.secret)[2:-1],
        ]
        for text in texts:
            for form in forms:
                assert form not in text


def _world_reachable(path: Path) -> bool:
    return all(os.stat(parent).st_mode & 0o001 for parent in path.parents) and bool(os.stat(path).st_mode & 0o004)


def kind(result: ToolResult) -> str:
    assert result.error is not None, f"the attack succeeded: {result.output!r}"
    return result.error.kind


def message(result: ToolResult) -> str:
    assert result.error is not None
    return result.error.message


@pytest.fixture
def arena(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Arena]:
    caplog.set_level(logging.DEBUG)
    secret = secrets.token_bytes(32)
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    secret_path = secret_dir / "secret.bin"
    secret_path.write_bytes(secret)
    env_dir = tmp_path / "hostile"
    shutil.copytree(HOSTILE, env_dir)
    with SandboxPool(max_workers=2, limits=LIMITS) as pool:
        env = load_env(env_dir, sandbox=pool)
        siblings = [open_session(env, seed=index) for index in range(3)]
        for index, session in enumerate(siblings):
            for _ in range(index + 1):
                assert session.call("bump", {"note": f"sibling-{index}"}).error is None
        expected = [(session.hash(), session.state_json()) for session in siblings]
        attacker = open_session(env, seed=99)
        yield Arena(
            pool, env, siblings, expected, attacker, secret, secret_path, env_dir, tmp_path, caplog, os.getpid()
        )


def test_sockets_cannot_reach_the_parents_network(arena: Arena) -> None:
    with socket.socket() as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.3)
        tcp = arena.attack("connect_out", {"host": "127.0.0.1", "port": listener.getsockname()[1]})
        datagram = arena.attack("send_datagram", {"host": "127.0.0.1", "port": udp.getsockname()[1]})
        for result, attempt in ((tcp, "tcp"), (datagram, "udp")):
            assert kind(result) == "execution_error"
            assert refusal(arena.report, attempt) in message(result)
        with pytest.raises(TimeoutError):
            listener.accept()
        with pytest.raises(TimeoutError):
            udp.recv(64)
    assert arena.report.network_namespace or "no network namespace" in " ".join(arena.report.fallbacks)
    arena.check_unharmed(tcp, datagram)


def test_no_process_can_be_spawned(arena: Arena) -> None:
    marker = arena.tmp_path / "pwned"
    spawn = arena.attack("spawn_process", {"argv": ["/bin/sh", "-c", f"echo pwned > {marker}"]})
    fork = arena.attack("fork_process")
    for result in (spawn, fork):
        assert kind(result) == "execution_error"
        assert refusal(arena.report, "processes") in message(result)
    assert not marker.exists()
    pid = arena.backend.worker_pid
    assert pid is not None
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        assert children.read_text().strip() == ""
    arena.check_unharmed(spawn, fork)


def test_a_secret_outside_the_environment_cannot_be_read(arena: Arena) -> None:
    stolen = arena.attack("read_file", {"path": str(arena.secret_path)})
    assert kind(stolen) == "execution_error"
    assert refusal(arena.report, "filesystem") in message(stolen)
    system = arena.attack("read_file", {"path": "/etc/passwd"})
    assert kind(system) == "execution_error"
    # The environment's own directory stays readable (the refusals above are confinement, not breakage),
    # except for plain `nobody` without Landlock, where file permissions decide.
    own = arena.attack("read_file", {"path": str(arena.env_dir / "data.txt")})
    if arena.report.identity != "nobody" or _world_reachable(arena.env_dir / "data.txt"):
        assert own.error is None and bytes.fromhex(own.output).startswith(b"readable data")
    else:
        assert kind(own) == "execution_error"
    arena.check_unharmed(stolen, system, own)


def test_writes_outside_the_scratch_directory_are_refused(arena: Arena) -> None:
    outside = arena.tmp_path / "escape.txt"
    toolkit = arena.env_dir / "toolkit.py"
    before = toolkit.read_bytes()
    escaped = arena.attack("write_file", {"path": str(outside), "text": "escaped"})
    overwritten = arena.attack("write_file", {"path": str(toolkit), "text": "pwned"})
    for result in (escaped, overwritten):
        assert kind(result) == "execution_error"
        assert refusal(arena.report, "filesystem") in message(result)
    assert not outside.exists() and toolkit.read_bytes() == before
    scratch = arena.attack("write_file", {"path": "notes.txt", "text": "allowed"})
    assert scratch.error is None and scratch.output == len("allowed")
    arena.check_unharmed(escaped, overwritten, scratch)


def test_an_endless_loop_times_out_and_the_next_call_works(arena: Arena) -> None:
    started = time.monotonic()
    result = arena.attack("spin")
    assert kind(result) == "timeout"
    assert time.monotonic() - started < TIMEOUT_S + 2
    after = arena.attack("bump", {"note": "after"})
    assert after.error is None and after.output == 1
    arena.check_unharmed(result, after)


def test_an_8_gb_allocation_hits_the_memory_limit_at_once(arena: Arena) -> None:
    started = time.monotonic()
    result = arena.attack("allocate", {"gigabytes": 8})
    assert kind(result) == "sandbox_failure"
    assert "memory limit" in message(result)
    assert time.monotonic() - started < 1.0
    arena.check_unharmed(result)


def test_os_exit_becomes_a_sandbox_failure_and_commits_nothing(arena: Arena) -> None:
    old_pid = arena.backend.worker_pid
    result = arena.attack("exit_now", {"status": 3})
    assert kind(result) == "sandbox_failure"
    assert "exited with status 3" in message(result)
    assert arena.attack("peek").output == {"counter": 0, "notes": []}
    assert arena.backend.worker_pid not in (None, old_pid)
    arena.check_unharmed(result)


def test_a_segfault_becomes_a_sandbox_failure(arena: Arena) -> None:
    result = arena.attack("segfault")
    assert kind(result) == "sandbox_failure"
    assert "SIGSEGV" in message(result)
    assert "Segmentation fault" in arena.caplog.text  # the worker's last words, logged with the failure
    arena.check_unharmed(result)


def test_a_stdout_flood_neither_blocks_nor_corrupts_the_protocol(arena: Arena) -> None:
    result = arena.attack("flood", {"megabytes": 16})
    assert result.error is None and result.output == "flooded"
    assert len(arena.backend.output_tail()) <= LIMITS.output_tail_bytes
    after = arena.attack("bump", {"note": "after the flood"})
    assert after.error is None and after.output == 1
    endless = arena.attack("flood_forever")
    assert kind(endless) == "timeout"
    arena.check_unharmed(result, after, endless)


def test_forged_protocol_frames_end_the_worker_not_the_parent(arena: Arena) -> None:
    result = arena.attack("forge_reply")
    assert kind(result) == "sandbox_failure"
    assert "protocol" in message(result)
    arena.check_unharmed(result)


def test_siblings_cannot_be_reached_through_the_garbage_collector(arena: Arena) -> None:
    result = arena.attack("tamper_gc", {"marker": "tampered"})
    assert kind(result) == "execution_error"
    assert "gc.get_objects" in message(result)
    arena.check_unharmed(result)


def test_siblings_cannot_be_reached_through_module_globals(arena: Arena) -> None:
    result = arena.attack("tamper_globals", {"marker": "tampered"})
    assert kind(result) == "execution_error"
    assert "no sibling state reachable" in message(result)
    arena.check_unharmed(result)


def test_frames_and_signal_handlers_are_out_of_reach(arena: Arena) -> None:
    frames = arena.attack("walk_frames")
    assert kind(frames) == "execution_error" and "sys._getframe" in message(frames)
    handler = arena.attack("trap_signal")
    assert kind(handler) == "execution_error" and "signal handlers" in message(handler)
    arena.check_unharmed(frames, handler)
