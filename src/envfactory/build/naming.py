"""Names for what the build makes: words from API identifiers and names that fit the patterns of the
declarative format (tools, collections, fields, environments). Nouns are inflected by
`spec.inflection` (`singular`, `plural`).

Contract:
- Every function is pure and total: any string in (hostile, empty, non-ASCII) gives a name that
  matches its pattern out. Text from specs is only ever data here.
- `words("GetQueueAttributes") == ["get", "queue", "attributes"]`; the same for snake, kebab and
  dotted spellings, so AWS, Google and OpenAPI names split alike.
"""

from __future__ import annotations

import hashlib
import re

from envfactory.spec.inflection import plural, singular
from envfactory.spec.tool import TOOL_NAME_PATTERN

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_FIELD_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_TOOL_RE = re.compile(TOOL_NAME_PATTERN)
_ENV_MAX = 48
_TOOL_MAX = 64

def words(identifier: str) -> list[str]:
    """Lower-case words of an identifier in any spelling (CamelCase, snake, kebab, dotted, spaced)."""
    return [w.lower() for w in _CAMEL.findall(identifier)]


def camel_words(identifier: str) -> list[str]:
    """Words with their original capitalisation (`EmailIdentity` → `Email`, `Identity`)."""
    return _CAMEL.findall(identifier)


def snake(identifier: str) -> str:
    """`EmailIdentity` → `email_identity`; empty or symbol-only input gives ``."""
    return "_".join(words(identifier))


def field_name(original: str) -> str:
    """A record field / argument name (`^[A-Za-z_][A-Za-z0-9_]*$`) for any original field name.

    Names that already fit are kept exactly (the common case: `QueueUrl`, `customer_id`, `_id`).
    """
    cleaned = _FIELD_UNSAFE.sub("_", original).strip("_") if not _is_field(original) else original
    if not cleaned:
        cleaned = "field_" + _short_hash(original)
    if cleaned[0].isdigit():
        cleaned = "f_" + cleaned
    return cleaned[:64]


def _is_field(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name))


def collection_name(noun: str) -> str:
    """A collection name (`^[a-z][a-z0-9_]{0,47}$`): the snake-case plural of a resource noun."""
    parts = words(noun) or ["record"]
    parts[-1] = plural(singular(parts[-1]))
    name = "_".join(parts)
    if not name[0].isalpha():
        name = "c_" + name
    return name[:_ENV_MAX].rstrip("_")


def tool_name(identifier: str) -> str:
    """A tool name (`^[A-Za-z0-9_-]{1,64}$`) in snake case: `CreateQueue` → `create_queue`,
    `tasks.tasklists.insert` → `tasks_tasklists_insert`. Over-long names keep a hash suffix so two
    long names stay distinct."""
    name = snake(identifier) or "tool_" + _short_hash(identifier)
    if len(name) > _TOOL_MAX:
        name = name[: _TOOL_MAX - 9] + "_" + _short_hash(identifier)
    assert _TOOL_RE.match(name)
    return name


def env_name(*parts: str) -> str:
    """An environment name (`^[a-z][a-z0-9_]{0,47}$`, no `__`) from a few identifying parts."""
    joined = "_".join(p for p in (snake(part) for part in parts) if p)
    joined = re.sub(r"_+", "_", joined).strip("_") or "env"
    if not joined[0].isalpha():
        joined = "e_" + joined
    if len(joined) > _ENV_MAX:
        joined = joined[: _ENV_MAX - 9].rstrip("_") + "_" + _short_hash("_".join(parts))
    return joined


def id_prefix(noun: str) -> str:
    """A generated-id prefix (≤ 16 of `[A-Za-z0-9_-]`), e.g. `queue_`, `tasklist_`."""
    stem = "".join(words(singular(noun)))[:12] or "rec"
    return stem + "_"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
