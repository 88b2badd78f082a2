"""Sampling JSON values from a JSON Schema: plausible values (tool arguments, records) for a schema.

Contract:
- `generate_value(schema, rng, pool)` is a pure function of its inputs. The same schema, the same
  `random.Random` state and the same pool give the same value, in every process. All randomness
  comes from `rng`; the global RNG is never used.
- Strings whose property name is a key of `pool` are usually drawn from `pool[name]`. The pool holds
  live values such as ids seen in earlier outputs (`verify.argsgen.harvest_values` collects them).
  The generator sometimes invents a value anyway, so that `not_found` paths get exercised too.
- Supported: `type` (as one name or a list, `null` included), `enum`, `const`, objects (`properties`,
  `required`, map-like `additionalProperties`), arrays (`items`, `prefixItems`, `minItems`/`maxItems`,
  `uniqueItems`), strings (`minLength`/`maxLength`, the formats `date-time`, `date`, `time`, `email`,
  `uri`, `uuid`), integers and numbers (`minimum`/`maximum`, exclusive bounds, `multipleOf`), booleans,
  local `$ref`s (`#/$defs/...`, resolved by `schema_tools.pointer_target`), `anyOf`/`oneOf` (one branch
  is picked; a `discriminator` property is always included) and `allOf` (branches merged with
  `schema_tools.merge`). `oneOf` is not checked for exclusivity.
- `pattern` is best effort. A few candidate shapes are tried and the first that matches is used.
  Otherwise a value that may not match is returned (a session then reports `invalid_arguments`).
- Past `max_depth` levels of nesting, the generator keeps only what is required: no optional
  properties, the fewest array items, and scalar branches of unions. Recursive schemas such as a
  JSON-value type therefore always terminate.
- Errors: `ValueError` for a schema that admits no value (`false`, an empty enum, no usable branch)
  or holds an unresolvable or non-local `$ref`.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import orjson

from envfactory.spec.schema_tools import merge, pointer_target

__all__ = ["DEFAULT_MAX_DEPTH", "OPTIONAL_PROBABILITY", "POOL_PROBABILITY", "generate_value"]

POOL_PROBABILITY = 0.85
"""Chance that a string with a matching pool key is drawn from the pool rather than invented."""

OPTIONAL_PROBABILITY = 0.5
"""Chance that an optional property is included."""

DEFAULT_MAX_DEPTH = 6

_WORDS = (
    "alpha", "amber", "atlas", "birch", "cedar", "delta", "ember", "fjord", "gamma", "harbor",
    "indigo", "juniper", "kestrel", "lumen", "maple", "nova", "onyx", "prism", "quartz", "river",
    "sierra", "tango", "umber", "vertex", "willow", "xenon", "yarrow", "zephyr",
)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_SCALAR_TYPES = ("string", "integer", "number", "boolean", "null")
_COMPOUND_KEYS = ("$ref", "anyOf", "oneOf", "allOf", "properties", "items", "prefixItems")


def generate_value(
    schema: Mapping[str, Any] | bool,
    rng: random.Random,
    pool: Mapping[str, list[str]] | None = None,
    *,
    name: str | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """One JSON value for `schema`; `name` is the property name used to look values up in `pool`."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Generator(root, rng, pool or {}, max_depth).value(schema, name, 0)


class _Generator:
    __slots__ = ("max_depth", "pool", "rng", "root")

    def __init__(
        self,
        root: Mapping[str, Any],
        rng: random.Random,
        pool: Mapping[str, list[str]],
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.root = root
        self.rng = rng
        self.pool = pool
        self.max_depth = max_depth

    # -- dispatch -----------------------------------------------------------------------------------
    def value(self, schema: Mapping[str, Any] | bool, name: str | None, depth: int) -> Any:
        if schema is True:
            schema = {}
        if schema is False:
            raise ValueError("the schema `false` admits no value")
        assert isinstance(schema, Mapping)
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = list(schema["enum"])
            if not options:
                raise ValueError("an empty enum admits no value")
            return self.rng.choice(options)
        for keyword in ("anyOf", "oneOf"):
            branches = schema.get(keyword)
            if branches:
                base = {k: v for k, v in schema.items() if k not in (keyword, "discriminator")}
                branch = self._resolve(self._pick_branch(branches, depth))
                tag = schema.get("discriminator")
                if isinstance(tag, Mapping) and isinstance(tag.get("propertyName"), str):
                    # OpenAPI/pydantic discriminator: the tag property tells the branches apart
                    branch = merge(branch, {"required": [tag["propertyName"]]})
                return self.value(merge(base, branch), name, depth)
        kind = self._pick_type(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "string":
            return self._string(schema, name)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Inline `$ref` and merge `allOf`, repeatedly, so the result has neither at its top."""
        for _ in range(64):
            if "$ref" in schema:
                target = self._lookup(str(schema["$ref"]))
                siblings = {k: v for k, v in schema.items() if k != "$ref"}
                schema = merge(target, siblings)
            elif "allOf" in schema:
                merged: Mapping[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    if isinstance(part, Mapping):
                        merged = merge(merged, self._resolve(part))
                schema = merged
            else:
                return schema
        raise ValueError("$ref/allOf nesting too deep (a reference cycle without content?)")

    def _lookup(self, ref: str) -> Mapping[str, Any]:
        node = pointer_target(self.root, ref)
        if node is True:
            return {}
        if not isinstance(node, Mapping):
            raise ValueError(f"$ref {ref!r} does not point at a schema")
        return node

    def _pick_branch(self, branches: list[Any], depth: int) -> Mapping[str, Any]:
        options = [b if isinstance(b, Mapping) else {} for b in branches if b is not False]
        if not options:
            raise ValueError("no branch of anyOf/oneOf admits a value")
        if depth >= self.max_depth:
            simple = [b for b in options if _is_scalar(b)]
            if simple:
                options = simple
        return options[self.rng.randrange(len(options))]

    def _pick_type(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            types = [str(t) for t in declared]
            if depth >= self.max_depth:
                types = [t for t in types if t in _SCALAR_TYPES] or types
            non_null = [t for t in types if t != "null"]
            if non_null and (len(non_null) == len(types) or self.rng.random() < 0.8):
                return non_null[self.rng.randrange(len(non_null))]
            return "null"
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return ("string", "integer", "boolean")[self.rng.randrange(3)]

    # -- compound values ----------------------------------------------------------------------------
    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = [str(r) for r in schema.get("required") or []]
        result: dict[str, Any] = {}
        for key, sub in properties.items():
            if key in required or (depth < self.max_depth and self.rng.random() < OPTIONAL_PROBABILITY):
                result[key] = self.value(sub, key, depth + 1)
        extra = schema.get("additionalProperties")
        for key in required:
            if key not in result:
                sub = extra if isinstance(extra, Mapping) else {}
                result[key] = self.value(sub, key, depth + 1)
        if not properties and isinstance(extra, Mapping) and depth < self.max_depth:
            for index in range(self.rng.randint(0, 2)):
                key = f"{self.rng.choice(_WORDS)}_{index}"
                result.setdefault(key, self.value(extra, key, depth + 1))
        return result

    def _array(self, schema: Mapping[str, Any], name: str | None, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 3))
        high = max(low, min(high, low + 3))
        count = low if depth >= self.max_depth else self.rng.randint(low, high)
        unique = bool(schema.get("uniqueItems"))
        result: list[Any] = []
        seen: set[bytes] = set()
        attempts = 0
        while len(result) < count and attempts < count * 8 + 8:
            attempts += 1
            index = len(result)
            if isinstance(prefix, list) and index < len(prefix):
                sub = prefix[index]
            elif items is False:
                break
            else:
                sub = items
            element = self.value(sub, name, depth + 1)
            if unique:
                fingerprint = orjson.dumps(element, option=orjson.OPT_SORT_KEYS)
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
            result.append(element)
        return result

    # -- scalars --------------------------------------------------------------------------------------
    def _string(self, schema: Mapping[str, Any], name: str | None) -> str:
        candidates = self.pool.get(name, []) if name is not None else []
        if candidates and self.rng.random() < POOL_PROBABILITY:
            choice = candidates[self.rng.randrange(len(candidates))]
            if _fits_length(choice, schema):
                return choice
        fmt = schema.get("format")
        if fmt is None and "pattern" not in schema and name is not None and _looks_like_email(name):
            fmt = "email"
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt](self.rng)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            matched = self._string_for_pattern(pattern, schema)
            if matched is not None:
                return matched
        return self._plain_string(schema)

    def _plain_string(self, schema: Mapping[str, Any]) -> str:
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 24)))
        text = self.rng.choice(_WORDS)
        while len(text) < low:
            text += " " + self.rng.choice(_WORDS)
        if self.rng.random() < 0.3 and len(text) + 4 <= high:
            text += f" {self.rng.randrange(1000)}"
        return _fit(text, low, high)

    def _string_for_pattern(self, pattern: str, schema: Mapping[str, Any]) -> str | None:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return None
        for _ in range(4):
            sampled = _sample_pattern(pattern, self.rng)
            if sampled is not None and compiled.search(sampled) and _fits_length(sampled, schema):
                return sampled
        word = self.rng.choice(_WORDS)
        number = self.rng.randrange(1000)
        shapes = [
            word,
            f"{word}{number}",
            f"{word.upper()}-{number:03d}",
            f"{word[:2].upper()}-{number:03d}",
            f"{word}_{number}",
            f"{number:04d}",
            f"{word}@example.com",
            f"https://example.com/{word}",
            word.upper(),
        ]
        for shape in shapes:
            if compiled.search(shape) and _fits_length(shape, schema):
                return shape
        return None

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        lo, hi = math.ceil(low), math.floor(high)
        if lo > hi:
            return int(lo)
        value = self.rng.randint(int(lo), int(hi))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = (value // step) * step
            if value < lo:
                value += step
        return value

    def _number(self, schema: Mapping[str, Any]) -> float:
        low, high = _bounds(schema, integer=False)
        if low > high:
            return float(low)
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            first, last = math.ceil(low / step), math.floor(high / step)
            if first <= last:
                return float(self.rng.randint(first, last) * step)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    """Inclusive `(low, high)` honouring exclusive bounds (draft 6+ numbers, draft 4 booleans)."""
    epsilon = 1 if integer else 0.01
    low: float | None = None
    high: float | None = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(minimum):
        low = float(minimum) + (epsilon if ex_min is True else 0)
    if _is_number(ex_min):
        low = max(low if low is not None else -math.inf, float(ex_min) + epsilon)
    if _is_number(maximum):
        high = float(maximum) - (epsilon if ex_max is True else 0)
    if _is_number(ex_max):
        high = min(high if high is not None else math.inf, float(ex_max) - epsilon)
    if low is None and high is None:
        return 0.0, 100.0
    if low is None:
        assert high is not None
        return min(0.0, high), high
    if high is None:
        return low, low + 100.0
    return low, high


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(schema: Mapping[str, Any]) -> bool:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared in _SCALAR_TYPES
    return "enum" in schema or "const" in schema or not any(k in schema for k in _COMPOUND_KEYS)


def _looks_like_email(name: str) -> bool:
    return name.lower() == "email" or name.lower().endswith("_email")


def _fits_length(text: str, schema: Mapping[str, Any]) -> bool:
    return int(schema.get("minLength", 0)) <= len(text) <= int(schema.get("maxLength", len(text)))


def _fit(text: str, low: int, high: int) -> str:
    text = text[:high]
    return text + "x" * (low - len(text)) if len(text) < low else text


# -- a sampler for simple regular expressions -------------------------------------------------------------
# Literals, escapes (\d \w \s and escaped punctuation), `.`, character classes with ranges and
# negation, groups with alternation, and the quantifiers ? * + {n} {n,} {n,m}. Anything else
# (look-arounds, back-references, ...) makes `_sample_pattern` return None.

_DIGITS = "0123456789"
_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + _DIGITS + "_"
_PRINTABLE = _WORD_CHARS + " -.,:;/@#+"
_CLASS_ESCAPES = {"d": _DIGITS, "w": _WORD_CHARS, "s": " "}
_UNBOUNDED_EXTRA = 3

_Node = tuple[str, Any]


class _PatternError(ValueError):
    pass


def _sample_pattern(pattern: str, rng: random.Random) -> str | None:
    try:
        node, end = _parse_alternation(pattern, 0)
        if end != len(pattern):
            raise _PatternError(pattern)
    except (_PatternError, IndexError):
        return None
    return _emit(node, rng)


def _parse_alternation(p: str, i: int) -> tuple[_Node, int]:
    branches: list[_Node] = []
    seq, i = _parse_sequence(p, i)
    branches.append(seq)
    while i < len(p) and p[i] == "|":
        seq, i = _parse_sequence(p, i + 1)
        branches.append(seq)
    return ("alt", branches), i


def _parse_sequence(p: str, i: int) -> tuple[_Node, int]:
    items: list[_Node] = []
    while i < len(p) and p[i] not in "|)":
        atom, i = _parse_atom(p, i)
        atom, i = _parse_quantifier(p, i, atom)
        items.append(atom)
    return ("seq", items), i


def _parse_atom(p: str, i: int) -> tuple[_Node, int]:
    c = p[i]
    if c in "^$":
        return ("seq", []), i + 1
    if c == ".":
        return ("set", _PRINTABLE), i + 1
    if c == "(":
        i += 1
        if p.startswith("?:", i):
            i += 2
        elif p.startswith("?", i):
            raise _PatternError("look-arounds and named groups are not supported")
        node, i = _parse_alternation(p, i)
        if i >= len(p) or p[i] != ")":
            raise _PatternError("unbalanced group")
        return node, i + 1
    if c == "[":
        return _parse_class(p, i + 1)
    if c == "\\":
        chars, i = _parse_escape(p, i + 1)
        return ("set", chars), i
    if c in "*+?{":
        raise _PatternError("quantifier without an atom")
    return ("set", c), i + 1


def _parse_escape(p: str, i: int) -> tuple[str, int]:
    c = p[i]
    if c in _CLASS_ESCAPES:
        return _CLASS_ESCAPES[c], i + 1
    if c.isalnum():
        raise _PatternError(f"unsupported escape \\{c}")
    return c, i + 1


def _parse_class(p: str, i: int) -> tuple[_Node, int]:
    negated = p[i] == "^"
    if negated:
        i += 1
    chars: list[str] = []
    first = True
    while first or p[i] != "]":
        first = False
        if p[i] == "\\":
            chunk, i = _parse_escape(p, i + 1)
            chars.extend(chunk)
            continue
        start = p[i]
        if p[i + 1] == "-" and p[i + 2] != "]":
            end = p[i + 2]
            if end == "\\":
                raise _PatternError("escaped range end")
            chars.extend(chr(code) for code in range(ord(start), ord(end) + 1))
            i += 3
        else:
            chars.append(start)
            i += 1
    members = "".join(dict.fromkeys(chars))
    if negated:
        members = "".join(ch for ch in _PRINTABLE if ch not in members)
    if not members:
        raise _PatternError("empty character class")
    return ("set", members), i + 1


def _parse_quantifier(p: str, i: int, atom: _Node) -> tuple[_Node, int]:
    if i >= len(p):
        return atom, i
    c = p[i]
    if c in "?*+":
        low, high = {"?": (0, 1), "*": (0, _UNBOUNDED_EXTRA), "+": (1, 1 + _UNBOUNDED_EXTRA)}[c]
        i += 1
    elif c == "{" and re.match(r"\{\d+(,\d*)?\}", p[i:]):
        close = p.index("}", i)
        body = p[i + 1 : close]
        if "," in body:
            lo_text, hi_text = body.split(",", 1)
            low = int(lo_text)
            high = int(hi_text) if hi_text else low + _UNBOUNDED_EXTRA
        else:
            low = high = int(body)
        i = close + 1
    else:
        return atom, i
    if i < len(p) and p[i] in "?+":  # lazy or possessive: same strings
        i += 1
    return ("repeat", (atom, low, high)), i


def _emit(node: _Node, rng: random.Random) -> str:
    kind, body = node
    if kind == "set":
        return str(body[rng.randrange(len(body))])
    if kind == "seq":
        return "".join(_emit(child, rng) for child in body)
    if kind == "alt":
        return _emit(body[rng.randrange(len(body))], rng)
    atom, low, high = body
    return "".join(_emit(atom, rng) for _ in range(rng.randint(low, max(low, high))))


def _date_time(rng: random.Random) -> str:
    moment = _EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 365))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(rng: random.Random) -> str:
    return (_EPOCH + timedelta(days=rng.randrange(365))).strftime("%Y-%m-%d")


def _time(rng: random.Random) -> str:
    return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)}.{rng.randrange(10000)}@example.com"


def _uri(rng: random.Random) -> str:
    return f"https://example.com/{rng.choice(_WORDS)}/{rng.randrange(1000)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_FORMATS = {
    "date-time": _date_time,
    "date": _date,
    "time": _time,
    "email": _email,
    "idn-email": _email,
    "uri": _uri,
    "url": _uri,
    "uuid": _uuid,
}
