"""`runtime`: load environments, open isolated sessions and session groups, execute calls,
snapshot/restore/fork/hash/diff (DESIGN §3). Imports only `spec` (and `envfactory.errors`).
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
