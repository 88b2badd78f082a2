"""What a sandbox worker actually enforces: measured in the worker before any toolkit code runs.

The report names every layer and every fallback in words, so a degraded sandbox is never silent: the
pool logs the fallbacks of the first worker it starts (and of any worker whose report differs) at
WARNING, and exposes the latest report as `SandboxPool.report`.
"""

from __future__ import annotations

from typing import Literal

from envfactory.spec import SpecModel

Identity = Literal["nobody", "nobody-with-root-file-access", "unchanged"]
Layer = Literal["landlock", "network-namespace", "seccomp", "rlimit-nproc", "audit-hook"]


class ResourceLimit(SpecModel):
    """One `setrlimit` as the worker left it."""

    name: str
    soft: int
    hard: int


class SandboxReport(SpecModel):
    """The confinement of one worker, as the kernel reports it (`/proc/self/status`) after set-up."""

    schema_version: Literal[1] = 1
    pid: int
    identity: Identity
    uid: int
    gid: int
    fsuid: int
    no_new_privs: bool
    capabilities_dropped: bool
    landlock_abi: int
    network_namespace: bool
    seccomp: bool
    filesystem: tuple[Layer, ...]
    network: tuple[Layer, ...]
    processes: tuple[Layer, ...]
    read_roots: tuple[str, ...]
    write_root: str
    disk_quota: bool = False
    limits: tuple[ResourceLimit, ...]
    fallbacks: tuple[str, ...]

    @property
    def degraded(self) -> bool:
        """True when some protection runs on a fallback (see `fallbacks`)."""
        return bool(self.fallbacks)

    def summary(self) -> str:
        """One line: what guards files, network and processes, and under which identity."""
        return (
            f"identity {self.identity} (uid {self.uid}, fsuid {self.fsuid}); "
            f"files: {'+'.join(self.filesystem)}; network: {'+'.join(self.network)}; "
            f"processes: {'+'.join(self.processes)}; landlock ABI {self.landlock_abi or 'none'}"
        )
