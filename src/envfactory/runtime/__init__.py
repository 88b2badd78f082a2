"""`runtime`: load environments, open isolated sessions and session groups, execute calls,
snapshot/restore/fork/hash/diff (DESIGN §3). Imports only `spec` (and `envfactory.errors`).

Contract (entries: `loader.load_env`, `Session`, `open_group`):
- Inputs: environment directories, files or bundled names (with a `SandboxPool` for untrusted python),
  state JSON or `Snapshot`s, a seed and a clock configuration, and tool calls (arguments as objects or
  the raw text a model produced).
- Outputs: `Environment`s, live sessions and session groups, one `ToolResult` per call, snapshots, state
  hashes and diffs.
- Errors: an environment or state that does not fit raises `SpecError`; a tool's anticipated failure,
  invalid arguments, an unknown tool or a sandbox failure is an error `ToolResult` the agent sees (with
  a kind), never an exception; a closed session raises `SessionClosedError`; untrusted code without a
  pool raises `SandboxRequiredError`.
- Determinism: a session's results, states and hashes depend only on the environment, initial state,
  seed, clock configuration and calls (no wall clock, no global RNG; failed calls do not move the RNG);
  hashes are canonical (independent of key order), so equal states hash equal in any process.
"""

from envfactory.runtime.backend import Backend, PreparedCall, StateHandle
from envfactory.runtime.environment import CompiledTool, Environment
from envfactory.runtime.group import SessionGroup, open_group, qualified_name
from envfactory.runtime.loader import (
    bundled_env_names,
    library_config,
    library_env_names,
    library_root,
    load_env,
    load_library_config,
    parse_env_document,
)
from envfactory.runtime.session import Session, open_session
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.runtime.write_diffs import WriteDiffs

__all__ = [
    "Backend",
    "CallContext",
    "ClockConfig",
    "CompiledTool",
    "Environment",
    "PreparedCall",
    "Session",
    "SessionGroup",
    "StateHandle",
    "WriteDiffs",
    "bundled_env_names",
    "library_config",
    "library_env_names",
    "library_root",
    "load_env",
    "load_library_config",
    "open_group",
    "open_session",
    "parse_env_document",
    "qualified_name",
]
