"""Argument values for differential scenarios, generated from an AWS operation's botocore input shape
(part of `build.differential_scenarios`).

Contract:
- `shape_value(shape, name, variant, service)` gives one value valid for the shape as botocore and the
  service model describe it: enums take member `variant % len(enum)`; strings are built from the member
  name (emails, domains, ARNs, tokens, names) and fitted to the shape's `min`/`max`/`pattern` where the
  pattern is a Python-compatible regex; numbers the middle of their range; lists one item (or `min`);
  maps one entry; structures their required members (a union: its first member; a nested structure
  with no required member: the members leading to a service value, else its first); timestamps a fixed
  instant. `variant` makes names differ between records of one scenario; the same variant gives the
  same value (duplicate-name scenarios rely on it).
- `SERVICE_VALUES` holds, per service, the few values a service requires beyond what its shapes say
  (Managed Blockchain's framework version, admin password rules, instance types; Cloud Map instance
  attributes), by member name or shape name; they override generation wherever that member appears,
  and a top-level optional member they name is included.
- `invalid_value(shape, name)` gives a value the shape forbids (an enum value it does not list, a string
  past `max`), or None when the shape forbids nothing a value could show.
Deterministic: no randomness, no clock.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SERVICE_VALUES", "invalid_value", "shape_value"]

_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                   "Action": ["ses:SendEmail"], "Resource": "*"}],
})

SERVICE_VALUES: dict[str, dict[str, Any]] = {
    "managedblockchain": {
        "Framework": "HYPERLEDGER_FABRIC",
        "FrameworkVersion": "1.2",
        "Edition": "STARTER",
        "AdminUsername": "admin",
        "AdminPassword": "Password123",
        "InstanceType": "bc.t3.small",
        "AvailabilityZone": "us-east-1a",
        "ThresholdPercentage": 50,
        "ProposalDurationInHours": 24,
        "ThresholdComparator": "GREATER_THAN",
        "Principal": "123456789012",
        "NetworkFrameworkConfiguration": {"Fabric": {"Edition": "STARTER"}},
        # optional in the model, yet moto 5.2.1's CreateNetwork/CreateMember fail without it (KeyError)
        "MemberLogPublishingConfiguration": {"Fabric": {"CaLogs": {"Cloudwatch": {"Enabled": False}}}},
    },
    "servicediscovery": {
        "Vpc": "vpc-0a1b2c3d",
        "Attributes": {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "8080"},
    },
    "ses": {"Policy": _POLICY},
}
"""Values a service needs beyond its shapes (by member name), from the service's documentation."""

_TIMESTAMP = "2026-01-01T00:00:00Z"


def _fits(value: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:  # a Java-only regex feature: cannot check here
        return True


def _sized(value: str, meta: dict[str, Any]) -> str:
    low, high = int(meta.get("min", 0) or 0), meta.get("max")
    if len(value) < low:
        value = value + "x" * (low - len(value))
    if high is not None and len(value) > int(high):
        value = value[: int(high)]
    return value


def _string(name: str, meta: dict[str, Any], variant: int, service: str) -> str:
    lower = name.lower()
    word = re.sub(r"[^a-z0-9]", "", lower)[:16] or "value"
    if "email" in lower or lower in {"source", "recipient"}:
        candidates = [f"user{variant}@example.com"]
    elif lower.endswith("arn"):
        candidates = [f"arn:aws:{service}:us-east-1:123456789012:{word.removesuffix('arn') or 'resource'}/r{variant}"]
    elif "domain" in lower:
        candidates = [f"example{variant}.com"]
    elif lower.endswith("token") or "requestid" in lower:
        candidates = [f"token-{variant:04d}"]
    elif "phone" in lower:
        candidates = [f"+1206555{variant % 10000:04d}"]
    elif "description" in lower:
        candidates = [f"Description {variant}"]
    else:
        candidates = [f"{word}{variant}", f"{word[:1] or 'v'}{variant}", f"v{variant}"]
    pattern = meta.get("pattern")
    for candidate in candidates:
        fitted = _sized(candidate, meta)
        if _fits(fitted, pattern):
            return fitted
    return _sized(candidates[0], meta)


def _number(meta: dict[str, Any], integral: bool) -> int | float:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        middle = (float(low) + float(high)) / 2
        return int(middle) if integral else round(middle, 2)
    if low is not None:
        return int(low) if integral else float(low)
    return 1 if integral else 0.5


def shape_value(shape: Any, name: str, variant: int, service: str, *, depth: int = 0) -> Any:
    """One valid value for a botocore `shape` of member `name` (module contract)."""
    overrides = SERVICE_VALUES.get(service, {})
    if name in overrides:
        return overrides[name]
    if shape.name in overrides:
        return overrides[shape.name]
    meta = dict(shape.metadata)
    kind = shape.type_name
    if kind == "string":
        enum = list(getattr(shape, "enum", []) or [])
        return enum[variant % len(enum)] if enum else _string(name, meta, variant, service)
    if kind in {"integer", "long"}:
        return _number(meta, True)
    if kind in {"double", "float"}:
        return _number(meta, False)
    if kind == "boolean":
        return variant % 2 == 0
    if kind == "timestamp":
        return _TIMESTAMP
    if kind == "blob":
        return "ZGF0YQ=="
    if kind == "list":
        count = max(1, int(meta.get("min", 1) or 1))
        return [shape_value(shape.member, name.removesuffix("s"), variant + i, service, depth=depth + 1)
                for i in range(count)]
    if kind == "map":
        key = shape_value(shape.key, "key", variant, service, depth=depth + 1)
        return {str(key): shape_value(shape.value, "value", variant, service, depth=depth + 1)}
    if kind == "structure":
        return structure_value(shape, variant, service, depth=depth)
    return f"v{variant}"


def structure_value(shape: Any, variant: int, service: str, *, depth: int = 0, optional: bool = False) -> dict[str, Any]:
    """A structure's required members (a union: its first member); with `optional`, also its optional
    members of scalar shapes (strings, numbers, booleans)."""
    members = dict(shape.members)
    if getattr(shape, "is_tagged_union", False) and members:
        first = next(iter(members))
        return {first: shape_value(members[first], first, variant, service, depth=depth + 1)}
    chosen = [n for n in members if n in set(shape.required_members)]
    overrides = SERVICE_VALUES.get(service, {})
    chosen += [n for n, m in members.items() if n not in chosen and (n in overrides or m.name in overrides)]
    if optional:
        chosen += [n for n, m in members.items() if n not in chosen and not _REFERENCE.search(n)
                   and m.type_name in {"string", "integer", "long", "boolean", "double", "float"}]
    if not chosen and depth > 0 and members:  # all optional, yet an empty object says nothing
        chosen = [n for n, m in members.items() if _mentions(m, overrides, 0)] or [next(iter(members))]
    if depth > 4:
        chosen = [n for n in chosen if members[n].type_name != "structure"]
    return {n: shape_value(members[n], n, variant, service, depth=depth + 1) for n in chosen}


_REFERENCE = re.compile(r"(Arn|Id|Ids|Token|After|Before)$")
"""Optional members that name other resources: left out of the optional variant (they would dangle)."""


def _mentions(shape: Any, overrides: dict[str, Any], depth: int) -> bool:
    """Whether a member of `shape`, at any depth up to 4, has a service value in `overrides`."""
    if depth > 4 or shape.type_name not in {"structure", "list"}:
        return False
    if shape.type_name == "list":
        return _mentions(shape.member, overrides, depth + 1)
    return any(n in overrides or m.name in overrides or _mentions(m, overrides, depth + 1)
               for n, m in shape.members.items())


def invalid_value(shape: Any, name: str) -> Any:
    """A value `shape` forbids (module contract), or None."""
    if shape.type_name != "string":
        return None
    if getattr(shape, "enum", None):
        return "NOT_A_LISTED_VALUE"
    high = shape.metadata.get("max")
    if high is not None and int(high) < 4096:
        return "x" * (int(high) + 1)
    return None
