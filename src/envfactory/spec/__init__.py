"""`spec`: typed, versioned models of every artifact and their JSON Schemas. No I/O besides load/dump.

Every model here is frozen pydantic with `extra="forbid"` and a `schema_version`; `ARTIFACT_MODELS`
lists the ones exported by `envfactory schema`.
"""

from envfactory.spec.base import (
    CanonicalJSONError,
    JSONObject,
    JSONValue,
    SpecModel,
    canonical_json,
    content_hash,
    parse_json,
    sha256_hex,
)
from envfactory.spec.declarative import (
    CollectionDecl,
    DeclarativeEnvSource,
    DeclarativeModel,
    DeclarativeToolDecl,
    OperationDecl,
)
from envfactory.spec.diff import StateChange, StateDiff
from envfactory.spec.env import DeclarativeImplementation, EnvSpec, PythonImplementation
from envfactory.spec.manifest import RunManifest
from envfactory.spec.meta import Domain, EnvMeta, Provenance
from envfactory.spec.operation import Operation, OperationError, OperationExample, ResourceSource
from envfactory.spec.python_env import PythonEnvSource
from envfactory.spec.reward import Reward, RewardComponent
from envfactory.spec.snapshot import Snapshot
from envfactory.spec.task import (
    CallMadeCheck,
    Check,
    EnvRef,
    GoldCall,
    OutputContainsCheck,
    RubricCheck,
    ScriptedUser,
    SimulatedUser,
    StateEqualsCheck,
    Task,
    TaskOrigin,
    Turn,
)
from envfactory.spec.tool import (
    AGENT_ERROR_KINDS,
    FRAMEWORK_ERROR_KINDS,
    ErrorInfo,
    ErrorKind,
    ToolCall,
    ToolEffect,
    ToolResult,
    ToolSource,
    ToolSpec,
)
from envfactory.spec.trajectory import Message, Producer, TerminationReason, Trajectory

ARTIFACT_MODELS: dict[str, type[SpecModel]] = {
    "env-spec": EnvSpec,
    "declarative-env": DeclarativeEnvSource,
    "python-env": PythonEnvSource,
    "tool-spec": ToolSpec,
    "operation": Operation,
    "tool-call": ToolCall,
    "tool-result": ToolResult,
    "snapshot": Snapshot,
    "state-diff": StateDiff,
    "task": Task,
    "trajectory": Trajectory,
    "reward": Reward,
    "run-manifest": RunManifest,
}

__all__ = [
    "AGENT_ERROR_KINDS",
    "ARTIFACT_MODELS",
    "FRAMEWORK_ERROR_KINDS",
    "CallMadeCheck",
    "CanonicalJSONError",
    "Check",
    "CollectionDecl",
    "DeclarativeEnvSource",
    "DeclarativeImplementation",
    "DeclarativeModel",
    "DeclarativeToolDecl",
    "Domain",
    "EnvMeta",
    "EnvRef",
    "EnvSpec",
    "ErrorInfo",
    "ErrorKind",
    "GoldCall",
    "JSONObject",
    "JSONValue",
    "Message",
    "Operation",
    "OperationDecl",
    "OperationError",
    "OperationExample",
    "OutputContainsCheck",
    "Producer",
    "Provenance",
    "PythonEnvSource",
    "PythonImplementation",
    "ResourceSource",
    "Reward",
    "RewardComponent",
    "RubricCheck",
    "RunManifest",
    "ScriptedUser",
    "SimulatedUser",
    "Snapshot",
    "SpecModel",
    "StateChange",
    "StateDiff",
    "StateEqualsCheck",
    "Task",
    "TaskOrigin",
    "TerminationReason",
    "ToolCall",
    "ToolEffect",
    "ToolResult",
    "ToolSource",
    "ToolSpec",
    "Trajectory",
    "Turn",
    "canonical_json",
    "content_hash",
    "parse_json",
    "sha256_hex",
]
