"""The moto side of a differential run, executed in its own process (`python -m envfactory.build.moto_worker`).

moto patches botocore process-wide, so it never runs in the process that builds or verifies
environments. Protocol: one `ReferenceScript` as JSON on stdin; one `ReferenceRun` as JSON on stdout (`--batch`: a JSON
array of scripts, each run from moto's empty state, and the array of their runs).
Each call goes through a botocore client's `_make_api_call` (original operation name, original field
names; top-level parameters the operation's input shape does not define are dropped and reported)
under `moto.mock_aws`, with dummy credentials in us-east-1 (or the script's region): no
network, no real account. A call that fails yields its AWS error code (`ReferenceCrash` when moto itself
raises something other than an AWS error); `ResponseMetadata` is dropped
and non-JSON values (datetimes, bytes, decimals) are turned into text.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import sys
from typing import Any

import orjson

from envfactory.spec.verification import ReferenceOutcome, ReferenceRun, ReferenceScript

__all__ = ["REFERENCE_CRASH", "main", "run_script", "run_scripts"]

REFERENCE_CRASH = "ReferenceCrash"
"""Error code of a call the reference itself crashed on (a moto bug): such calls are not compared."""


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "read"):  # streaming bodies
        return base64.b64encode(value.read()).decode("ascii")
    return value


def _get(value: Any, path: str) -> Any:
    """The value at a dotted path; also looks inside a one-member wrapper (`{"TableDescription": {...}}`),
    then, for a one-segment path, takes the first member of that name found depth-first in the answer's
    own member order (`{"channel": {"arn": ...}, "streamKey": {...}}` -> the channel's `arn`)."""
    found = walk_path(value, path)
    if found is None and isinstance(value, dict) and len(value) == 1:
        (only,) = value.values()
        found = walk_path(only, path)
    if found is None and "." not in path:
        found = _first_named(value, path)
    return found


def _first_named(value: Any, name: str) -> Any:
    """The first scalar member called `name`, depth-first (None when there is none)."""
    if isinstance(value, dict):
        if name in value and not isinstance(value[name], dict | list):
            return value[name]
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _first_named(child, name)
        if found is not None:
            return found
    return None


def _operation_target(client: Any, response: Any) -> Any:
    """The id an asynchronous create made (Cloud Map answers `{"OperationId": ...}`; `GetOperation` names
    the namespace or service it created in `Targets`), or None."""
    if not isinstance(response, dict) or set(response) != {"OperationId"}:
        return None
    if "GetOperation" not in client.meta.service_model.operation_names:
        return None
    try:
        answer = client._make_api_call("GetOperation", {"OperationId": response["OperationId"]})
    except Exception:  # the reference cannot say: the binding stays unresolved
        return None
    targets = answer.get("Operation", {}).get("Targets", {})
    return next(iter(targets.values()), None) if isinstance(targets, dict) else None


def walk_path(value: Any, path: str) -> Any:
    """The value at a dotted path through objects and list indexes (None when it is not there)."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _set(params: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = params
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def run_script(script: ReferenceScript) -> ReferenceRun:
    """Run `script`'s calls against moto's mocked AWS in this process, in order, and give one outcome per
    call (response or error code; parameters the service does not define are dropped and listed)."""
    import boto3
    from botocore.exceptions import ClientError, ParamValidationError
    from moto import mock_aws

    outcomes: list[ReferenceOutcome] = []
    with mock_aws():
        client = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=script.region
        ).client(script.service)
        for call in script.calls:
            params = orjson.loads(orjson.dumps(call.params))
            input_shape = client.meta.service_model.operation_model(call.operation).input_shape
            defined = set(input_shape.members) if input_shape is not None else set()  # GetSendQuota takes nothing
            ignored = sorted(name for name in params if name not in defined)
            for name in ignored:
                del params[name]
            for binding in call.bindings:
                earlier = outcomes[binding.step].response if binding.step < len(outcomes) else None
                bound = _get(earlier, binding.path)
                if bound is None:
                    bound = _operation_target(client, earlier)
                _set(params, binding.param, bound)
            try:
                response = client._make_api_call(call.operation, params)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("QueryErrorCode") or error.get("Code") or "Unknown")
                outcomes.append(ReferenceOutcome(operation=call.operation, ok=False, error_code=code,
                                                 error_message=str(error.get("Message", "")), ignored_params=ignored))
                continue
            except ParamValidationError as exc:
                outcomes.append(ReferenceOutcome(operation=call.operation, ok=False, error_code="ParamValidationError",
                                                 error_message=str(exc), ignored_params=ignored))
                continue
            except Exception as exc:  # a bug inside moto itself: recorded, never compared
                outcomes.append(ReferenceOutcome(operation=call.operation, ok=False, error_code=REFERENCE_CRASH,
                                                 error_message=f"{type(exc).__name__}: {exc}", ignored_params=ignored))
                continue
            outcomes.append(ReferenceOutcome(operation=call.operation, ok=True, response=_plain(response),
                                             ignored_params=ignored))
    return ReferenceRun(reference=script.reference, outcomes=outcomes)


def run_scripts(scripts: list[ReferenceScript]) -> list[ReferenceRun]:
    """`run_script` for each script in turn, each from moto's empty state (a fresh `mock_aws`)."""
    return [run_script(script) for script in scripts]


def main() -> None:
    """Worker entry point: a `ReferenceScript` as JSON on stdin, its `ReferenceRun` as JSON on stdout;
    with `--batch`, a JSON array of scripts in and a JSON array of runs out (one process for a suite)."""
    data = sys.stdin.buffer.read()
    if "--batch" in sys.argv[1:]:
        scripts = [ReferenceScript.model_validate(item) for item in orjson.loads(data)]
        runs = run_scripts(scripts)
        sys.stdout.buffer.write(orjson.dumps([run.model_dump(mode="json") for run in runs]))
        return
    script = ReferenceScript.model_validate_json(data)
    sys.stdout.buffer.write(run_script(script).to_json_bytes())


if __name__ == "__main__":
    main()
