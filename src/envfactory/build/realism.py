"""Seed realism: the LLM proposes realistic values for the free-text fields of a compiled
environment's seed records; each value is validated against the field's own schema and the
collection's constraints, and only values that fit replace the deterministic ones.

Contract:
- `realistic_seeds(source, state, llm, ...)` returns `(state', SeedRealism)`. `state'` differs from
  `state` only in the string fields `candidate_fields` selects: not the key, not a reference, not a
  field under a transition, not a machine-data name (`...Id`, `...Arn`, `...Url`, kinds, statuses,
  dates, codes), no `enum`/`const`/`pattern`, no machine format (date-time, uri, uuid, ...), no
  description that calls it a timestamp, id or link; prose-like names (name, title, notes, ...) first.
  Records whose keys the spec's examples name are left alone, so scenario tests built from those
  examples see the values they were derived with.
- One deterministic request per collection (temperature 0, seed 0, a JSON Schema response format with
  short strings, a one-shot example in the instructions). A model that is not installed, fails its
  integrity check or cannot be reached raises (the build stops with that message). Otherwise the
  answer is data: it is parsed and never executed, and each value is checked: `CompiledSchema` of the
  field, no control characters, not a copy of the prompt's title or descriptions nor made of the API
  line's words, unique fields stay unique, names and prose do not repeat another record's value. A
  provider failure or an unusable answer leaves the collection's deterministic values and is
  recorded, never raised.
- Same state, same model answers (a cache or a cassette) ⇒ the same `state'`: the library is
  reproducible from its recorded cassette.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.build.naming import snake
from envfactory.errors import EnvFactoryError
from envfactory.llm.errors import (
    DependencyMissingError,
    EndpointUnreachableError,
    ModelIntegrityError,
    ModelNotInstalledError,
)
from envfactory.llm.protocols import LLMClient
from envfactory.llm.types import ChatMessage, ChatRequest, ResponseFormat
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import DeclarativeEnvSource, JSONObject
from envfactory.spec.build import SeedRealism
from envfactory.spec.declarative import CollectionDecl
from envfactory.spec.schema_tools import json_type, object_properties

MAX_FIELDS = 4
MAX_VALUE_CHARS = 48  # short strings: long `maxLength` grammars are slow and have crashed llama.cpp
_MACHINE_FORMATS = frozenset({"date-time", "date", "time", "uri", "url", "uuid", "byte", "binary", "ipv4", "ipv6",
                              "hostname", "uri-reference", "duration", "password"})
_IDENTIFIER = re.compile(r"(^|_)(id|ids|arn|url|uri|link|key|token|etag|hash|path|version|cursor|sha|type|kind|parent|"
                         r"status|state|date|time|at|on|completed|due|created|updated|deleted|modified|expires|"
                         r"code|region|zone|locale|language|currency|country|timezone)$")
# A description that says the string is machine data (a timestamp, an id, a link) rules the field out.
_MACHINE_DESCRIPTION = re.compile(r"\b(rfc ?3339|timestamp|iso ?8601|identifier|ids?|urls?|uris?|links?|date|time|"
                                  r"base64|hex|json|regex|regular expression)\b", re.I)
# Fields whose names say they hold prose or names go first, so the cut at MAX_FIELDS keeps them.
_TEXTUAL = re.compile(r"(name|title|description|summary|notes?|comment|email|label|subject|body|message|text|"
                      r"display|address|city|street|company|bio|content|caption|question|answer|reason)")
# Set-up problems, not answers: they stop the caller (a missing model must not pass for a shy one).
_SETUP_ERRORS = (ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYSTEM = (
    "You write realistic sample records for a test copy of a real API's database. Answer with JSON only. "
    "Every value is a short, plausible string a real customer of this API would store (names, titles, "
    "descriptions, emails, notes), consistent within a record, and every record is different. Never copy "
    "the API's name or these instructions into a value. Example, for a collection of contacts with the "
    'fields name and email: {"records": [{"name": "Priya Raman", "email": "priya.raman@example.com"}, '
    '{"name": "Luis Ortega", "email": "l.ortega@example.org"}]}'
)
_WORD = re.compile(r"[a-z0-9]+")


def candidate_fields(decl: CollectionDecl) -> list[str]:
    """The free-text string fields of a collection that realism may fill (see the module doc)."""
    references = {ref.field for ref in decl.references}
    governed = {t.field for t in decl.transitions}
    fields: list[str] = []
    for name, schema in object_properties(decl.record_schema).items():
        if name == decl.key or name in references or name in governed or not isinstance(schema, dict):
            continue
        if json_type(schema) != "string" or "enum" in schema or "const" in schema or "pattern" in schema:
            continue
        if schema.get("format") in _MACHINE_FORMATS or _IDENTIFIER.search(snake(name)):
            continue
        if _MACHINE_DESCRIPTION.search(str(schema.get("description") or "")):
            continue
        fields.append(name)
    fields.sort(key=lambda f: not _TEXTUAL.search(snake(f)))  # stable: spec order within each group
    return fields[:MAX_FIELDS]


def realism_request(api_title: str, collection: str, decl: CollectionDecl, fields: list[str], count: int) -> ChatRequest:
    """The request for `count` records of `collection` (deterministic: same inputs, same request)."""
    props = object_properties(decl.record_schema)
    lines = []
    for name in fields:
        schema = props[name]
        described = str(schema.get("description") or "").strip().replace("\n", " ")[:140]
        fmt = f" (format {schema['format']})" if isinstance(schema.get("format"), str) else ""
        lines.append(f"- {name}{fmt}: {described}" if described else f"- {name}{fmt}")
    about = decl.description.strip().replace("\n", " ")[:200]
    user = (f"API: {api_title}\nCollection: {collection}" + (f" ({about})" if about else "") +
            f"\nWrite {count} different records with these fields:\n" + "\n".join(lines))
    item = {
        "type": "object",
        "properties": {name: {"type": "string", "minLength": 1, "maxLength": _max_length(props[name])} for name in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    schema = {"type": "object", "properties": {"records": {"type": "array", "items": item,
                                                           "minItems": count, "maxItems": count}},
              "required": ["records"], "additionalProperties": False}
    return ChatRequest(
        messages=[ChatMessage.system(_SYSTEM), ChatMessage.user(user)],
        response_format=ResponseFormat(name="seed_records", json_schema=schema),
        temperature=0.0, seed=0, max_tokens=40 + count * len(fields) * 24,
    )


@dataclass(slots=True)
class _Tally:
    requests: int = 0
    tokens: int = 0
    accepted: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _max_length(schema: Mapping[str, Any]) -> int:
    limit = schema.get("maxLength")
    return max(1, min(MAX_VALUE_CHARS, limit)) if isinstance(limit, int) else MAX_VALUE_CHARS


def realistic_seeds(
    source: DeclarativeEnvSource, state: JSONObject, llm: LLMClient, *, api_title: str,
    keep_keys: Mapping[str, Collection[str]] | None = None,
) -> tuple[JSONObject, SeedRealism]:
    """`state` with model-proposed values where they fit (see the module doc), and what happened."""
    keep_keys = keep_keys or {}
    collections = state.get("collections")
    report = _Tally()
    if not isinstance(collections, dict):
        return state, SeedRealism(model=llm.model_id)
    new_collections: dict[str, Any] = {}
    for name, records in collections.items():
        decl = source.collections.get(name)
        fields = candidate_fields(decl) if decl is not None else []
        kept = set(keep_keys.get(name, ()))
        keys = [k for k in records if k not in kept] if isinstance(records, dict) else []
        if decl is None or not fields or not keys:
            new_collections[name] = records
            continue
        request = realism_request(api_title, name, decl, fields, len(keys))
        report.requests += 1
        try:
            response = llm.chat(request)
            report.tokens += response.usage.total_tokens
            answer = response.parsed()
        except _SETUP_ERRORS:
            raise  # the model is not there at all: stop the build with its message instead of degrading
        except (EnvFactoryError, ValueError) as exc:
            report.failures.append(f"{name}: {str(exc).splitlines()[0][:160]}")
            new_collections[name] = records
            continue
        proposed = answer.get("records") if isinstance(answer, dict) else None
        if not isinstance(proposed, list):
            report.failures.append(f"{name}: the answer has no list of records")
            new_collections[name] = records
            continue
        assert isinstance(records, dict)  # `keys` is empty otherwise
        prompt = request.messages[-1].content.casefold()
        new_collections[name] = _apply(decl, name, dict(records), keys, fields, proposed, report, prompt)
    return {**state, "collections": new_collections}, SeedRealism(
        model=llm.model_id, requests=report.requests, tokens=report.tokens, accepted=report.accepted,
        rejected=report.rejected, rejections=report.rejections, failures=report.failures)


def _apply(decl: CollectionDecl, name: str, records: dict[str, Any], keys: list[str], fields: list[str],
           proposed: list[Any], report: _Tally, prompt: str) -> dict[str, Any]:
    props = object_properties(decl.record_schema)
    validators = {f: CompiledSchema(props[f]) for f in fields}
    unique_fields = {f for group in decl.unique for f in group}
    for key, answer in zip(keys, proposed, strict=False):
        record = dict(records[key])
        if not isinstance(answer, dict):
            report.rejected += len(fields)
            report.rejections.append(f"{name}[{key}]: not an object")
            continue
        for field_name in fields:
            value = answer.get(field_name)
            why = _why_not(value, validators[field_name])
            if why is None and _echoes(str(value), prompt):
                why = "copies the prompt (the API title or a field description) instead of a value"
            if why is None and (field_name in unique_fields or _TEXTUAL.search(snake(field_name))):
                # Unique fields must stay unique; names, titles and prose that repeat another record's
                # value are a lazy answer, not realism.
                taken = {r.get(field_name) for k, r in records.items() if k != key and isinstance(r, dict)}
                why = "repeats another record's value" if isinstance(value, str) and value.strip() in taken else None
            if why is not None:
                report.rejected += 1
                if len(report.rejections) < 20:
                    report.rejections.append(f"{name}[{key}].{field_name}: {why}")
                continue
            assert isinstance(value, str)
            record[field_name] = value.strip()
            report.accepted += 1
        records[key] = record
    return records


def _echoes(value: str, prompt: str) -> bool:
    """Whether a value is a stretch of the prompt, or made of the API line's words (small models often
    echo titles and descriptions)."""
    text = value.strip().casefold()
    if len(text) >= 12 and text in prompt:
        return True
    words = _WORD.findall(text)
    title_words = set(_WORD.findall(prompt.split("\n", 1)[0]))
    return len(words) >= 3 and sum(w in title_words for w in words) >= 0.8 * len(words)


def _why_not(value: Any, validator: CompiledSchema) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "not a non-empty string"
    if _CONTROL.search(value):
        return "holds control characters"
    if len(value.strip()) > MAX_VALUE_CHARS:
        return f"longer than the {MAX_VALUE_CHARS} characters asked for"
    violation = validator.check(value.strip())
    return None if violation is None else f"does not fit the field's schema: {violation.message[:120]}"
