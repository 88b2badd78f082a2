"""Sandbox limits under abuse (issue 17, deliverable 4): a per-worker disk quota on everything a
toolkit writes (`resource_limit`, host untouched), no temporary directory left behind by workers that
exit, crash or whose parent dies, and module globals that do not leak between sessions of one worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envfactory.runtime import load_env, open_session
from envfactory.runtime.sandbox import SandboxLimits, SandboxPool
from envfactory.runtime.sandbox.pool import ROOT_PREFIX, sweep_stale_roots
from envfactory.spec import FRAMEWORK_ERROR_KINDS, ToolResult

MiB = 1 << 20

WRITER = '''
from __future__ import annotations

import os

from pydantic import BaseModel

from envfactory.runtime.toolkit import Toolkit, tool

CACHE: dict[str, int] = {}
SEEN: list[str] = []
CALLS = 0


class State(BaseModel):
    value: int = 0


class Counter(Toolkit[State]):
    total = 0

    @tool(effect="write")
    def fill(self, files: int, mib: int, swallow: bool = False) -> int:
        """Write `files` files of `mib` MiB each into the scratch directory.

        Args:
            files: how many files.
            mib: MiB per file.
            swallow: catch the write error and return normally.
        """
        chunk = b"x" * (1 << 20)
        written = 0
        try:
            for index in range(files):
                with open(f"fill-{self.state.value}-{index}.bin", "wb") as handle:
                    for _ in range(mib):
                        handle.write(chunk)
                        written += 1
        except OSError:
            if not swallow:
                raise
        self.state.value += 1
        return written

    @tool(effect="write")
    def small(self) -> int:
        """Write one small file and count it."""
        with open(f"small-{self.state.value}.txt", "w") as handle:
            handle.write("ok")
        self.state.value += 1
        return self.state.value

    @tool(effect="write")
    def remember(self, marker: str) -> list[str]:
        """Put `marker` in module globals and a class attribute; return what the globals hold.

        Args:
            marker: the session's marker.
        """
        global CALLS
        CALLS += 1
        CACHE[marker] = CALLS
        SEEN.append(marker)
        Counter.total += 1
        self.state.value += 1
        return [*SEEN, f"calls={CALLS}", f"total={Counter.total}", f"cache={sorted(CACHE)}"]
'''

LIMITS = SandboxLimits(call_timeout_s=10.0, disk_bytes=8 * MiB, file_size_bytes=4 * MiB)


def write_env(directory: Path, source: str = WRITER, name: str = "writer") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "schema_version": 1,
        "format": "envfactory.python",
        "meta": {"name": name, "description": "Writes files."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Counter"},
    }
    (directory / "env.json").write_text(json.dumps(document))
    (directory / "toolkit.py").write_text(source)
    return directory


def ok(result: ToolResult) -> Any:
    assert result.error is None, result.error
    return result.output


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return tmp_path / "scratch"


@pytest.fixture
def pool(scratch: Path) -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=2, limits=LIMITS, scratch_dir=scratch) as shared:
        yield shared


def disk_used(path: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*"))


def test_resource_limit_is_a_framework_error_kind() -> None:
    assert "resource_limit" in FRAMEWORK_ERROR_KINDS


@pytest.mark.parametrize(("files", "mib", "swallow"), [(1, 6, False), (4, 3, False), (6, 2, True), (64, 1, False)],
                         ids=["one-file-past-fsize", "many-files", "error-swallowed", "many-small"])
def test_disk_quota_fails_the_call_and_the_host_is_untouched(
    pool: SandboxPool, scratch: Path, tmp_path: Path, files: int, mib: int, swallow: bool
) -> None:
    env = load_env(write_env(tmp_path / "writer"), sandbox=pool)
    with open_session(env) as session:
        assert ok(session.call("small")) == 1
        before = session.state_json()
        result = session.call("fill", {"files": files, "mib": mib, "swallow": swallow})
        assert result.error is not None and result.error.kind == "resource_limit", result
        assert "MiB" in result.error.message
        assert session.state_json() == before  # the failed call changed nothing
        assert disk_used(scratch) < 1 * MiB  # everything it wrote lived in the quota tmpfs, now gone
        assert ok(session.call("small")) == 2  # a fresh worker serves the session on
        assert ok(session.call("fill", {"files": 1, "mib": 2})) == 2  # within the quota: fine
    report = pool.report
    assert report is not None
    if report.disk_quota:
        assert not any("tmpfs" in line for line in report.fallbacks)
    else:
        assert any("disk quota is measured" in line for line in report.fallbacks)


def test_fast_disk_filling_is_bounded(pool: SandboxPool, scratch: Path, tmp_path: Path) -> None:
    """The attack of the issue (640 MiB in 2.2 s) against an 8 MiB quota."""
    env = load_env(write_env(tmp_path / "writer"), sandbox=pool)
    report_free = shutil.disk_usage(scratch).free
    with open_session(env) as session:
        started = time.monotonic()
        result = session.call("fill", {"files": 160, "mib": 4})
        elapsed = time.monotonic() - started
    assert result.error is not None and result.error.kind == "resource_limit"
    assert elapsed < 5.0
    assert shutil.disk_usage(scratch).free > report_free - 16 * MiB  # the host disk saw at most the quota


def test_scratch_directories_are_removed_when_workers_exit_or_crash(tmp_path: Path, scratch: Path) -> None:
    with SandboxPool(max_workers=1, limits=LIMITS, scratch_dir=scratch) as pool:
        env = load_env(write_env(tmp_path / "writer"), sandbox=pool)
        other = load_env(write_env(tmp_path / "other", name="other"), sandbox=pool)
        session = open_session(env)
        ok(session.call("small"))
        (root,) = scratch.glob(f"{ROOT_PREFIX}*")
        assert len(list(root.iterdir())) == 1
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)  # a crash
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        crashed = session.call("small")  # noticed here: the call fails, the worker's directory goes
        assert crashed.error is not None and crashed.error.kind == "sandbox_failure"
        assert list(root.iterdir()) == []
        ok(session.call("small"))  # a successor, with a directory of its own
        assert len(list(root.iterdir())) == 1
        with open_session(other) as second:  # evicts the first worker (pool of one)
            ok(second.call("small"))
        assert len(list(root.iterdir())) == 1
        session.close()
    assert list(scratch.iterdir()) == []


def test_roots_left_by_a_killed_process_are_swept(tmp_path: Path, scratch: Path) -> None:
    program = textwrap.dedent(f"""
        import os, sys
        from envfactory.runtime import load_env, open_session
        from envfactory.runtime.sandbox import SandboxPool
        pool = SandboxPool(max_workers=1, scratch_dir={str(scratch)!r})
        session = open_session(load_env({str(write_env(tmp_path / "writer"))!r}, sandbox=pool))
        session.call("small")
        print("ready", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    (left,) = scratch.glob(f"{ROOT_PREFIX}{child.pid}-*")
    child.kill()  # SIGKILL: no finaliser runs
    child.wait(10)
    assert left.exists()  # its worker leaves by itself when its request pipe closes
    with SandboxPool(max_workers=1, scratch_dir=scratch) as fresh:  # creating a pool sweeps
        assert not left.exists()
        assert fresh.max_workers == 1
    assert sweep_stale_roots(scratch) == []


def test_module_globals_do_not_leak_between_sessions_of_one_worker(pool: SandboxPool, tmp_path: Path) -> None:
    env = load_env(write_env(tmp_path / "writer"), sandbox=pool)
    first, second = open_session(env, seed=1), open_session(env, seed=2)
    try:
        assert ok(first.call("remember", {"marker": "a1"})) == ["a1", "calls=1", "total=1", "cache=['a1']"]
        assert ok(second.call("remember", {"marker": "b1"})) == ["b1", "calls=1", "total=1", "cache=['b1']"]
        assert ok(first.call("remember", {"marker": "a2"})) == [
            "a1", "a2", "calls=2", "total=2", "cache=['a1', 'a2']"]
        fork = first.fork()
        assert ok(fork.call("remember", {"marker": "f1"})) == [
            "a1", "a2", "f1", "calls=3", "total=3", "cache=['a1', 'a2', 'f1']"]
        assert ok(second.call("remember", {"marker": "b2"})) == [
            "b1", "b2", "calls=2", "total=2", "cache=['b1', 'b2']"]
        assert ok(first.call("remember", {"marker": "a3"})) == [
            "a1", "a2", "a3", "calls=3", "total=3", "cache=['a1', 'a2', 'a3']"]
        fork.close()
        third = open_session(env, seed=3)  # a new session starts from the pristine module
        assert ok(third.call("remember", {"marker": "c1"})) == ["c1", "calls=1", "total=1", "cache=['c1']"]
        third.close()
        assert len(pool.worker_pids()) == 1  # all of it in one worker
    finally:
        first.close()
        second.close()
