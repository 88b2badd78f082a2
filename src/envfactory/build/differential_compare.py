"""How a differential run compares our outputs with a reference's (part of `differential.py`): the
normalisation (`NORMALISATION`), field names mapped to the original API's (`original_field`,
`output_name`, `set_path`), generated ids paired through one consistent `Bijection`, and the
recursive comparison of outputs and listings (`same`, `compare_fields`).

Pure functions over JSON values; deterministic (keys compared in sorted order).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from envfactory.spec import ToolSpec
from envfactory.spec.tool import AgentErrorKind

AWS_ERROR_KINDS: dict[str, AgentErrorKind] = {
    # missing things
    "AWS.SimpleQueueService.NonExistentQueue": "not_found",
    "QueueDoesNotExist": "not_found",
    "ResourceNotFoundException": "not_found",
    "NotFoundException": "not_found",
    "NoSuchEntity": "not_found",
    # refused by a rule of the service
    "QueueAlreadyExists": "rule_violation",
    "QueueNameExists": "rule_violation",
    "ResourceInUseException": "rule_violation",
    "AlreadyExistsException": "rule_violation",
    "ConditionalCheckFailedException": "rule_violation",
    "MessageRejected": "rule_violation",
    "LimitExceededException": "rule_violation",
    # malformed requests
    "ValidationException": "invalid_arguments",
    "ValidationError": "invalid_arguments",
    "InvalidParameterValue": "invalid_arguments",
    "InvalidParameterValueException": "invalid_arguments",
    "InvalidParameterCombination": "invalid_arguments",
    "MissingParameter": "invalid_arguments",
    "ParamValidationError": "invalid_arguments",
    "InvalidAttributeName": "invalid_arguments",
    # codes of the services the library's differential suite covers (build.differential_suite)
    "ConflictException": "rule_violation",
    "AlreadyExists": "rule_violation",
    "ResourceAlreadyExistsException": "rule_violation",
    "ResourceInUse": "rule_violation",
    "CannotDeleteException": "rule_violation",
    "NamespaceAlreadyExists": "rule_violation",
    "ServiceAlreadyExists": "rule_violation",
    "ResourceLimitExceededException": "rule_violation",
    "ServiceQuotaExceededException": "rule_violation",
    "IllegalStatusException": "rule_violation",
    "InvalidCampaignStateException": "rule_violation",
    "RuleSetDoesNotExist": "not_found",
    "RuleDoesNotExist": "not_found",
    "NamespaceNotFound": "not_found",
    "ServiceNotFound": "not_found",
    "InstanceNotFound": "not_found",
    "OperationNotFound": "not_found",
    "InvalidInput": "invalid_arguments",
    "InvalidRequestException": "invalid_arguments",
    "BadRequestException": "invalid_arguments",
    "InvalidPolicy": "invalid_arguments",
}
"""AWS error codes (moto's `QueryErrorCode` or `Code`) -> the agent error kind our environment must answer."""


NORMALISATION = (
    "reference responses unwrapped when they hold one object member (or several, none of which our "
    "output has: the one sharing most field names with ours); our fields renamed to original "
    "names via ToolSource.field_names and compared only where both sides have them; generated ids through "
    "one consistent bijection (ids only a listing shows pair in listed order); timestamps ignored; scalars compared as text; list outputs {items} vs the "
    "reference's one top-level array (scalar members against our collection keys, object members by key)"
)


_TIMESTAMP_NAME = re.compile(r"(_at|Date|Time|Timestamp|DateTime|_time|_date)$")


_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


@dataclass
class Bijection:
    """The one consistent pairing of our generated ids with the reference's, and how many values were compared."""

    ours_to_theirs: dict[str, Any] = field(default_factory=dict)
    theirs_to_ours: dict[str, str] = field(default_factory=dict)
    values_compared: int = 0

    def pair(self, ours: Any, theirs: Any) -> bool:
        """Record or check one pair; False when it contradicts an earlier pair."""
        if not isinstance(ours, str) or not isinstance(theirs, str):
            return bool(ours == theirs)
        known = self.ours_to_theirs.get(ours)
        back = self.theirs_to_ours.get(theirs)
        if known is None and back is None:
            self.ours_to_theirs[ours] = theirs
            self.theirs_to_ours[theirs] = ours
            return True
        return known == theirs and back == ours

    def translate(self, ours: Any) -> Any:
        """The reference's id paired with `ours` (unchanged when unpaired or not a string)."""
        return self.ours_to_theirs.get(ours, ours) if isinstance(ours, str) else ours


def original_operation(tool: ToolSpec) -> str | None:
    """The source operation's name (last segment of its id) a tool was made from, if any."""
    if tool.source is None or not tool.source.operation_id:
        return None
    return tool.source.operation_id.rsplit(":", 1)[-1]


def original_field(tool: ToolSpec, name: str) -> str | None:
    """The original (dotted) field name our field `name` maps to, if the tool's source names one."""
    if tool.source is None:
        return None
    return tool.source.field_names.get(name)


def set_path(params: dict[str, Any], path: str, value: Any) -> None:
    """Put `value` at a dotted original path; numeric segments index lists (`entities.0.name`)."""
    parts = path.split(".")
    node: Any = params
    for part, following in itertools.pairwise(parts):
        container: Any = [] if following.isdigit() else {}
        if isinstance(node, list):
            index = int(part)
            while len(node) <= index:
                node.append(None)
            if node[index] is None:
                node[index] = container
            node = node[index]
        else:
            node = node.setdefault(part, container)
    last = parts[-1]
    if isinstance(node, list):
        index = int(last)
        while len(node) <= index:
            node.append(None)
        node[index] = value
    else:
        node[last] = value


def output_name(spec: ToolSpec, name: str) -> str:
    """Our output field under its original name: the last non-numeric segment of the mapped path."""
    original = original_field(spec, name)
    if original is None:
        return name
    segments = [part for part in original.split(".") if not part.isdigit()]
    return segments[-1] if segments else name


def generated_values(paths: Sequence[str], output: Any) -> list[tuple[str, str]]:
    """(value, concrete dotted path) of every generated id in `output` (`[]` expands list indexes)."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, parts: list[str], where: list[str]) -> None:
        if not parts:
            if isinstance(value, str):
                found.append((value, ".".join(where)))
            return
        head, rest = parts[0], parts[1:]
        name, many = (head[:-2], True) if head.endswith("[]") else (head, False)
        child = value.get(name) if isinstance(value, dict) else None
        if many:
            for index, item in enumerate(child if isinstance(child, list) else []):
                walk(item, rest, [*where, name, str(index)])
        elif child is not None:
            walk(child, rest, [*where, name])

    for path in paths:
        walk(output, path.split("."), [])
    return found


def unwrap(response: Any, ours: set[str], collection: str | None) -> Any:
    """One record out of its envelope: `{"TableDescription": {...}}` -> `{...}` unless our output has that
    member itself (`Attributes`); `{"entities": [{...}], ...}` (the member named after our collection, or
    the only member) holding exactly one record -> that record; an envelope of several members none of
    which our output has (`{"channel": {...}, "streamKey": {...}}`) -> the object member sharing the most
    field names with our output (the first such in the reference's order on a tie)."""
    if not isinstance(response, dict):
        return response
    if len(response) > 1 and ours and not (set(response) & ours):
        overlaps = [(len(set(v) & ours), k) for k, v in response.items() if isinstance(v, dict)]
        best = max((o for o, _ in overlaps), default=0)
        if best > 0:
            return response[next(k for o, k in overlaps if o == best)]
    if collection is not None and isinstance(response.get(collection), list) and len(response[collection]) == 1:
        return response[collection][0]
    if len(response) == 1:
        ((name, only),) = response.items()
        if name in ours:
            return response
        if isinstance(only, dict):
            return only
        if isinstance(only, list) and len(only) == 1 and isinstance(only[0], dict):
            return only[0]
    return response


def is_timestamp(name: str, value: Any) -> bool:
    """Whether a field is a timestamp (by name or ISO date-time value): never compared."""
    return bool(_TIMESTAMP_NAME.search(name)) or (isinstance(value, str) and bool(_ISO_DATETIME.match(value)))


def same(ours: Any, theirs: Any, bijection: Bijection, generated: set[str]) -> str | None:
    """None when equal under the normalisation, else a short reason."""
    if not isinstance(ours, dict | list):
        bijection.values_compared += 1
    if isinstance(ours, str) and ours in generated:
        return None if bijection.pair(ours, theirs) else f"generated id {ours!r} pairs with {theirs!r}, inconsistently"
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) & set(theirs)):
            if is_timestamp(key, ours[key]):
                continue
            problem = same(ours[key], theirs[key], bijection, generated)
            if problem is not None:
                return f"{key}: {problem}"
        return None
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return f"{len(ours)} items vs {len(theirs)}"
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            problem = same(a, b, bijection, generated)
            if problem is not None:
                return f"[{index}]: {problem}"
        return None
    if isinstance(ours, dict | list) or isinstance(theirs, dict | list):
        return f"{ours!r} vs {theirs!r}"
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return None if str(ours).lower() == str(theirs).lower() else f"{ours!r} vs {theirs!r}"
    return None if str(ours) == str(theirs) else f"{ours!r} vs {theirs!r}"


def compare_fields(
    spec: ToolSpec, ours: Any, theirs: Any, bijection: Bijection, generated: set[str], list_key: str | None,
    collection: str | None,
) -> tuple[str | None, Any, Any]:
    """Compare one call's outputs under the normalisation: (problem or None, our compared part, theirs)."""
    if isinstance(ours, dict) and isinstance(ours.get("items"), list) and list_key is not None:
        arrays = {k: v for k, v in theirs.items() if isinstance(v, list)} if isinstance(theirs, dict) else {}
        if collection in arrays:
            members = arrays[collection]
        elif len(arrays) == 1:
            (members,) = arrays.values()
        else:
            return None, None, None  # nothing comparable: no list the reference answer singles out
        items = [i for i in ours["items"] if isinstance(i, dict)]
        if all(not isinstance(m, dict) for m in members):
            pair_unpaired(bijection, [i.get(list_key) for i in items], [str(m) for m in members], generated)
            mine = sorted(str(bijection.translate(i.get(list_key))) for i in items)
            their = sorted(str(m) for m in members)
            bijection.values_compared += max(len(mine), len(their))
            return (None if mine == their else "listed identifiers differ"), mine, their
        original_key = output_name(spec, list_key)
        if not any(isinstance(m, dict) and original_key in m for m in members):
            return compare_keyless(spec, items, members, bijection, generated)
        by_key = {str(m.get(original_key)): m for m in members if isinstance(m, dict)}
        pair_unpaired(bijection, [i.get(list_key) for i in items], list(by_key), generated)
        mine_keys = sorted(str(bijection.translate(i.get(list_key))) for i in items)
        if mine_keys != sorted(by_key):
            return "listed records differ", mine_keys, sorted(by_key)
        for item in items:
            renamed = {output_name(spec, k): v for k, v in item.items()}
            problem = same(renamed, by_key[str(bijection.translate(item.get(list_key)))], bijection, generated)
            if problem is not None:
                return problem, item, by_key[str(bijection.translate(item.get(list_key)))]
        return None, mine_keys, sorted(by_key)
    renamed_names = {output_name(spec, k) for k in ours} if isinstance(ours, dict) else set()
    theirs = unwrap(theirs, renamed_names, collection)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        renamed = {output_name(spec, k): v for k, v in ours.items()}
        common = sorted(set(renamed) & set(theirs))
        problem = same({k: renamed[k] for k in common}, {k: theirs[k] for k in common}, bijection, generated)
        return problem, {k: renamed[k] for k in common}, compared_part(renamed, theirs)
    return None, None, None


def pair_unpaired(bijection: Bijection, mine: Sequence[Any], theirs: Sequence[str], generated: set[str]) -> None:
    """Pair the generated ids of a listing that no earlier answer paired (a create that answers only an
    operation id) with the reference's listed ids no pair uses, in listed order, when both sides list
    the same number of such ids (otherwise leave them: the listing then differs)."""
    open_mine = [m for m in mine if isinstance(m, str) and m in generated and m not in bijection.ours_to_theirs]
    open_theirs = [t for t in theirs if t not in bijection.theirs_to_ours]
    if open_mine and len(open_mine) == len(open_theirs):
        for ours, their in zip(open_mine, open_theirs, strict=True):
            bijection.pair(ours, their)


def compared_part(ours: Any, theirs: Any) -> Any:
    """The part of `theirs` that `same` compared with `ours`: common keys, recursively."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: compared_part(ours[k], theirs[k]) for k in sorted(set(ours) & set(theirs))}
    return theirs


def compare_keyless(
    spec: ToolSpec, items: list[dict[str, Any]], members: list[Any], bijection: Bijection, generated: set[str]
) -> tuple[str | None, Any, Any]:
    """Records the reference keeps without our key (relations): multisets of their common fields."""
    renamed = [{output_name(spec, k): v for k, v in item.items()} for item in items]
    common = set().union(*(set(r) for r in renamed)) & set().union(*(set(m) for m in members if isinstance(m, dict)))
    common = {name for name in common if not is_timestamp(name, None)}

    def projection(record: Mapping[str, Any]) -> str:
        return orjson.dumps({k: bijection.translate(record.get(k)) for k in sorted(common)}).decode()

    mine = sorted(projection(r) for r in renamed)
    their = sorted(projection(m) for m in members if isinstance(m, dict))
    bijection.values_compared += len(common) * max(len(mine), len(their))
    return (None if mine == their else "listed records differ"), mine, their


def holds_generated(value: Any, generated: set[str]) -> bool:
    """Whether `value` is one of our generated ids."""
    if isinstance(value, str):
        return value in generated
    return False
