"""Sandbox workers for untrusted python toolkits (DESIGN §3, §11; docs/sandbox.md).

An untrusted toolkit never runs in the caller's process: `load_env(ref, sandbox=pool)` gives it a
`SandboxBackend`, whose worker process (one per environment, at most `max_workers` per pool) runs as
an unprivileged user in its own network namespace, under Landlock, seccomp and resource limits, with
per-call wall timeouts. Sessions use the backend like any other; a crash or timeout becomes a
`sandbox_failure` or `timeout` result, the worker is replaced and the sessions it held are rebuilt.

Public: `SandboxPool`, `SandboxLimits`, `SandboxReport`, `SandboxBackend`, `SandboxFailure`.
"""

from envfactory.runtime.sandbox.backend import SandboxBackend
from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.loads import SandboxFailure
from envfactory.runtime.sandbox.pool import SandboxPool
from envfactory.runtime.sandbox.report import ResourceLimit, SandboxReport
from envfactory.runtime.sandbox.state import SandboxState

__all__ = [
    "ResourceLimit",
    "SandboxBackend",
    "SandboxFailure",
    "SandboxLimits",
    "SandboxPool",
    "SandboxReport",
    "SandboxState",
]
