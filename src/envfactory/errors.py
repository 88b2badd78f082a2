"""One vocabulary of failures, named by the boundary they cross (imported by every layer; imports only
the error kinds of `envfactory.spec.tool`, which import no other layer).

- `ToolError`: an anticipated failure of a tool call; it becomes a `ToolResult` error the agent sees.
- `ToolCrash`: a bug inside an implementation; recorded as `execution_error`, logged with its traceback.
- `SpecError`: an environment, task or file that does not meet its contract (bad input from a user).
- `SessionClosedError`, `SandboxError`, ...: framework failures.
"""

from __future__ import annotations

from typing import cast

from envfactory.spec.tool import SANDBOX_FAILURE_KINDS, AgentErrorKind, SandboxFailureKind


class EnvFactoryError(Exception):
    """Base of every error envfactory raises on purpose."""


class SpecError(EnvFactoryError, ValueError):
    """An artifact or input file violates its contract; the message says what and where."""


class StateLoadError(SpecError):
    """A state given to a backend does not fit it, found after the load was sent without waiting for it (a
    session opened with `defer_load`): raised where the state is first used, never turned into a call result."""


class ToolError(EnvFactoryError):
    """An anticipated tool failure shown to the agent. `kind` is an agent-visible error kind."""

    def __init__(self, kind: AgentErrorKind, message: str, path: str | None = None) -> None:
        """`kind` and `message` reach the agent; `path`: a JSON pointer into the arguments at fault, if any."""
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.path = path


class ToolCrash(EnvFactoryError):
    """An implementation raised something it did not declare: a bug, never the agent's fault."""


class SessionClosedError(EnvFactoryError):
    """The session was closed; no further calls, snapshots or forks."""


class SandboxRequiredError(EnvFactoryError):
    """Untrusted python toolkits may only run in sandbox workers."""


class SandboxError(EnvFactoryError):
    """A sandbox worker failed (crash, limit, protocol violation). `kind` is the framework error kind a
    session reports for it: `sandbox_failure`, `timeout` when a limit on time was hit, or
    `resource_limit` when a sandbox resource limit (the disk quota) was hit."""

    def __init__(self, message: str, kind: str = "sandbox_failure") -> None:
        """`kind` as the worker reported it; one outside `SANDBOX_FAILURE_KINDS` becomes `sandbox_failure`."""
        super().__init__(message)
        # `kind` may come off the worker protocol as any string; an unknown one is a sandbox failure.
        self.kind: SandboxFailureKind = (
            cast("SandboxFailureKind", kind) if kind in SANDBOX_FAILURE_KINDS else "sandbox_failure")


class StoreError(EnvFactoryError):
    """The workspace or one of its databases cannot be used (unwritable, corrupt, written by a newer version)."""


class ProviderError(EnvFactoryError):
    """An LLM or embedding provider failed: model not installed, endpoint unreachable, bad response."""
