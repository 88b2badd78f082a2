"""Differential scripts for library builds: per AWS service with a reference implementation (moto), one
fixed call script written in the service's own terms (operation names and original field names), and
the hook that runs it against a compiled environment.

Contract:
- A script step names an original operation (`CreateQueue`) and original parameters. A parameter may
  be `{"$from": [step, "OriginalField"]}`: the value our environment returned for that field at that
  earlier step (the reference gets its own value through the id bijection of `build.differential`).
- Translation to our environment: the step's tool is the one whose `ToolSource.operation_id` ends with
  the operation name; parameters are renamed through the inverse of `ToolSource.field_names`. A step
  whose operation the environment lacks is left out (the build record says why it was dropped, and
  the differential result lists it as not compared). A `$from` that cannot be resolved (the producing
  step failed or was left out) leaves the step out too.
- `library_differential(env_dir, spec, env=...)` returns one `DifferentialResult` per scripted service the
  environment derives from (none for other environments). The scripts are fixed data: they do not
  depend on what our environment does, so they are an oracle independent of the compiler.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envfactory.build.differential import ScriptCall, run_moto
from envfactory.runtime import Environment, load_env, open_session
from envfactory.spec import DifferentialResult, EnvSpec, ToolSpec

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxPool

Step = tuple[str, dict[str, Any]]

_DDB_KEY = [{"AttributeName": "id", "KeyType": "HASH"}]
_DDB_ATTRS = [{"AttributeName": "id", "AttributeType": "S"}]

SCRIPTS: dict[str, list[Step]] = {
    "sqs": [
        ("CreateQueue", {"QueueName": "orders"}),
        ("CreateQueue", {"QueueName": "billing", "Attributes": {"VisibilityTimeout": "45"}}),
        ("GetQueueAttributes", {"QueueUrl": {"$from": [0, "QueueUrl"]}, "AttributeNames": ["All"]}),
        ("SendMessage", {"QueueUrl": {"$from": [0, "QueueUrl"]}, "MessageBody": "hello"}),
        ("ReceiveMessage", {"QueueUrl": {"$from": [0, "QueueUrl"]}, "MaxNumberOfMessages": 1}),
        ("DeleteMessage", {"QueueUrl": {"$from": [0, "QueueUrl"]}, "ReceiptHandle": {"$from": [4, "ReceiptHandle"]}}),
        ("ListQueues", {"QueueNamePrefix": "ord"}),
        ("ListQueues", {}),
        ("DeleteQueue", {"QueueUrl": {"$from": [1, "QueueUrl"]}}),
        ("ListQueues", {}),
    ],
    "ses": [
        ("VerifyEmailIdentity", {"EmailAddress": "ann@example.org"}),
        ("VerifyEmailIdentity", {"EmailAddress": "bob@example.org"}),
        ("ListIdentities", {}),
        ("SendEmail", {"Source": "ann@example.org", "Destination": {"ToAddresses": ["x@example.org"]},
                       "Message": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}}),
        ("GetSendQuota", {}),
        ("DeleteIdentity", {"Identity": "bob@example.org"}),
        ("ListIdentities", {}),
    ],
    "dynamodb": [
        ("CreateTable", {"TableName": "orders", "KeySchema": _DDB_KEY, "AttributeDefinitions": _DDB_ATTRS,
                         "BillingMode": "PAY_PER_REQUEST"}),
        ("DescribeTable", {"TableName": "orders"}),
        ("DescribeTable", {"TableName": "missing"}),
        ("PutItem", {"TableName": "orders", "Item": {"id": {"S": "o1"}, "total": {"N": "3"}}}),
        ("GetItem", {"TableName": "orders", "Key": {"id": {"S": "o1"}}}),
        ("UpdateItem", {"TableName": "orders", "Key": {"id": {"S": "o1"}},
                        "AttributeUpdates": {"total": {"Value": {"N": "4"}, "Action": "PUT"}}}),
        ("DeleteItem", {"TableName": "orders", "Key": {"id": {"S": "o1"}}}),
        ("ListTables", {}),
        ("DeleteTable", {"TableName": "orders"}),
        ("DescribeTable", {"TableName": "orders"}),
    ],
}
# botocore service names whose environments these scripts apply to.
_SERVICE_ALIASES = {"sqs": "sqs", "ses": "ses", "email": "ses", "dynamodb": "dynamodb"}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _tool_for(env: EnvSpec, operation: str) -> ToolSpec | None:
    for tool in env.tools:
        if tool.source is not None and tool.source.operation_id.rsplit(":", 1)[-1] == operation:
            return tool
    return None


def _field(output: Any, original: str) -> Any:
    """The value of `original` in our output (our names are snake_case forms of the original names)."""
    if isinstance(output, dict):
        for key, value in output.items():
            if _squash(key) == _squash(original):
                return value
        for value in output.values():
            found = _field(value, original)
            if found is not None:
                return found
    if isinstance(output, list):
        for item in output:
            found = _field(item, original)
            if found is not None:
                return found
    return None


def _resolve(value: Any, outputs: dict[int, Any]) -> tuple[bool, Any]:
    if isinstance(value, dict) and set(value) == {"$from"}:
        step, original = value["$from"]
        if step not in outputs:
            return False, None
        found = _field(outputs[step], original)
        return found is not None, found
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            ok, resolved = _resolve(item, outputs)
            if not ok:
                return False, None
            out[key] = resolved
        return True, out
    return True, value


def script_for(env: Environment, steps: list[Step], seed: int = 0) -> list[ScriptCall]:
    """`steps` in our environment's terms (see the module contract); runs our env to resolve `$from`."""
    # From the empty state, as `build.differential` runs our side: generated ids then agree.
    session = open_session(env, env.backend.load_state(None).to_json(), seed=seed)
    outputs: dict[int, Any] = {}
    calls: list[ScriptCall] = []
    try:
        for index, (operation, params) in enumerate(steps):
            tool = _tool_for(env.spec, operation)
            if tool is None:
                continue
            ok, resolved = _resolve(params, outputs)
            if not ok:
                continue
            ours_by_original = {orig: ours for ours, orig in (tool.source.field_names if tool.source else {}).items()}
            arguments = {ours_by_original.get(name, name): value for name, value in resolved.items()}
            result = session.call(tool.name, arguments)
            calls.append(ScriptCall(tool.name, arguments))
            if result.ok:
                outputs[index] = result.output
    finally:
        session.close()
    return calls


def scripted_service(spec: EnvSpec) -> str | None:
    """The scripted AWS service this environment derives from, if any."""
    for provenance in spec.meta.provenance:
        if provenance.provider != "aws":
            continue
        service = _SERVICE_ALIASES.get(provenance.service)
        if service is not None:
            return service
    return None


def library_differential(
    env_dir: Path, spec: EnvSpec, seed: int = 0, *, sandbox: SandboxPool | None = None,
    env: Environment | None = None,
) -> list[DifferentialResult]:
    """Differential results of a built environment against moto (empty when no script applies).
    `env`: the environment of `env_dir` already open (the library builder's, kept in memory); without it
    the directory is loaded here, and a hybrid environment (authored tools) needs `sandbox`."""
    service = scripted_service(spec)
    if service is None:
        return []
    if env is None:
        env = load_env(env_dir, sandbox=sandbox)
    script = script_for(env, SCRIPTS[service], seed)
    if not script:
        return []
    return [run_moto(env, service, script, seed=seed)]
