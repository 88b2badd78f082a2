"""Argument grounding: optional arguments whose values nothing in the conversation mentions are dropped.

Why: small models asked for one tool's arguments fill every optional field with something — a
placeholder (`your_next_token`), a made-up filter, a limit — and the environment then filters by it or
refuses it, so a request the model understood still fails. A value that neither the user, nor an earlier
tool result, nor the assistant's own earlier words mention is not one the user asked for. Synthesis
solvers turn this on (`SynthTrajectoriesConfig.ground_arguments`); evaluation leaves it off, so
benchmark scores measure the model's own calls.

Contract:
- `ground_arguments(arguments, schema, transcript)` returns the arguments to run and the names of the
  optional ones it dropped, in the order given. It is pure and deterministic.
- Required arguments (the schema's top-level `required`) are always kept, whatever their values: a
  missing required value is the environment's error to report.
- An optional argument is kept when its value is grounded in `transcript`: a string or number when it
  appears there as a whole token, case-insensitively; a boolean when the parameter's name, as words
  (`include_all`, `includeAll` → "include all"), appears there; a list or object when it is not empty
  and every scalar in it is grounded; `null` never.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from envfactory.spec import JSONObject, JSONValue, json_leaves

__all__ = ["ground_arguments"]


def _mentions(transcript: str, token: str) -> bool:
    """Whether `token` appears in `transcript` as a whole token (case-insensitive)."""
    if not token.strip():
        return False
    pattern = rf"(?<![A-Za-z0-9_]){re.escape(token.strip())}(?![A-Za-z0-9_])"
    return re.search(pattern, transcript, re.IGNORECASE) is not None


def _name_words(name: str) -> str:
    """`includeAll` / `include_all` / `include-all` → `include all`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(part for part in re.split(r"[\s_\-.]+", spaced.lower()) if part)


def _number_texts(value: float) -> list[str]:
    if isinstance(value, float) and value.is_integer():
        return [str(int(value)), repr(value)]
    return [str(value)]


def _scalar_grounded(name: str, value: Any, transcript: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return _mentions(transcript, _name_words(name))
    if isinstance(value, int | float):
        return any(_mentions(transcript, text) for text in _number_texts(value))
    return isinstance(value, str) and _mentions(transcript, value)


def _grounded(name: str, value: JSONValue, transcript: str) -> bool:
    if isinstance(value, dict | list):
        scalars = list(json_leaves(value))
        return bool(scalars) and all(_scalar_grounded(path.rsplit(".", 1)[-1] or name, leaf, transcript)
                                     for path, leaf in scalars)
    return _scalar_grounded(name, value, transcript)


def ground_arguments(arguments: Mapping[str, JSONValue], schema: JSONValue,
                     transcript: str) -> tuple[JSONObject, list[str]]:
    """The arguments to run (required ones and grounded optional ones) and the dropped names.

    Args:
        arguments: the call's arguments as the model wrote them.
        schema: the tool's parameters schema (only its top-level `required` list is read).
        transcript: the conversation as the model saw it (user and assistant text, tool results).
    """
    listed = schema.get("required") if isinstance(schema, dict) else None
    required = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
    kept: JSONObject = {}
    dropped: list[str] = []
    for name, value in arguments.items():
        if name in required or _grounded(name, value, transcript):
            kept[name] = value
        else:
            dropped.append(name)
    return kept, dropped
