"""What the authoring model is asked (part of authoring, `author.py`): the operations to author
(`AuthoringTarget`), the class skeleton an answer fills in (`skeleton`) and the chat request
(`author_request`), with the declarative collections, the existing tools, each operation's schemas
and an example of its output, and in a revise round the evidence against the previous attempt.

Deterministic: the same source, targets and evidence give the same request bytes (temperature 0,
seed 0). Pure: nothing here calls a model.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from envfactory.llm.types import ChatMessage, ChatRequest
from envfactory.runtime.hybrid import AUTHORED_BASE
from envfactory.spec import DeclarativeEnvSource, Operation
from envfactory.spec.schema_tools import json_type, object_properties

AUTHORED_CLASS = "AuthoredTools"
_SCHEMA_CHARS = 1600
_MAX_TOKENS = 3000


@dataclass(frozen=True, slots=True)
class AuthoringTarget:
    """One operation to author, with the interface its tool keeps."""

    operation: Operation
    tool: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    field_names: dict[str, str]
    drop_reason: str


_SYSTEM = '''You implement API operations as Python methods over a JSON state, for a simulated API.

Write exactly one class, `class AuthoredTools(AuthoredBase):`, with one method per operation:
- named exactly as the operation's tool name, decorated `@tool(effect="write")` when it changes the
  state, `@tool(effect="read")` when it only reads;
- parameters named exactly as the operation's arguments, typed (str, int, float, bool,
  list[...], dict[str, Any]); take every required argument; optional ones default to None, and you
  may leave out optional arguments you do not use;
- a docstring: a summary line, then `Args:` with one line per parameter;
- returns a dict shaped exactly like the operation's output schema (its field names).

The state (the only place to keep anything): records by collection, each record a dict holding its key.
  self.records(c) -> dict key -> record   self.record(c, key) -> copy or None
  self.put(c, record)   self.remove(c, key)   self.new_key(c) -> a fresh generated key
  self.now() -> ISO timestamp of the session clock   self.ctx.rng -> seeded random.Random
Records you put must fit their collection's fields. Errors: raise self.not_found("..."),
self.rule_violation("...") or self.invalid_arguments("...").
When an operation needs records no collection holds, declare new collections in a ```json block:
{"collections": {"<name>": {"key": "<field>", "id_prefix": "<prefix_>", "record_schema": {"type": "object",
 "properties": {...}, "required": [...]}, "references": [{"field": "<field>", "collection": "<other>",
 "on_delete": "cascade"}]}}, "generated": {"<tool>": ["<OutputField>", "<List>[].<Field>"]}}
"generated" names output fields holding ids your code makes up (with self.new_key).
Imports: only hashlib, base64, json, re, math, datetime, decimal, itertools, collections, string.
No files, no network, no other modules. Return data, never a JSON Schema. Answer with the code block
(and the json block when you add collections), nothing else.

Example. Collections: books (key BookId: Title, Available) and loans (new). Operation BorrowBook
(tool borrow_book, args BookId required, Days optional; output {"LoanId": string, "DueDate": string}):
```json
{"collections": {"loans": {"key": "LoanId", "id_prefix": "loan_", "record_schema": {"type": "object",
 "properties": {"LoanId": {"type": "string"}, "BookId": {"type": "string"}, "Days": {"type": "integer"}},
 "required": ["LoanId", "BookId"]}, "references": [{"field": "BookId", "collection": "books"}]}},
 "generated": {"borrow_book": ["LoanId"]}}
```
```python
class AuthoredTools(AuthoredBase):
    @tool(effect="write")
    def borrow_book(self, BookId: str, Days: int | None = None) -> dict[str, Any]:
        """Borrow a book that is available.

        Args:
            BookId: the book to borrow.
            Days: loan length in days (14 when absent).
        """
        book = self.record("books", BookId)
        if book is None:
            raise self.not_found(f"no book {BookId}")
        if not book.get("Available", True):
            raise self.rule_violation(f"book {BookId} is on loan")
        book["Available"] = False
        self.put("books", book)
        loan_id = self.new_key("loans")
        self.put("loans", {"LoanId": loan_id, "BookId": BookId, "Days": Days or 14})
        return {"LoanId": loan_id, "DueDate": self.now()}
```'''


def _compact(schema: Any, limit: int = _SCHEMA_CHARS) -> str:
    """A schema as short JSON for the prompt: descriptions cut, then the whole text bounded."""
    def trim(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v[:120] if k == "description" and isinstance(v, str) else trim(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [trim(v) for v in value]
        return value

    text = orjson.dumps(trim(schema), option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= limit else text[:limit] + " …(cut)"


def _example_value(schema: Any, depth: int = 0) -> Any:
    """A value shaped like `schema`, for the prompt: small models return the schema itself unless they
    see what data looks like (`{}` for an empty output)."""
    if not isinstance(schema, dict) or depth > 4:
        return None
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    kind = json_type(schema)
    if kind == "object":
        props = object_properties(schema)
        required = [r for r in schema.get("required", []) if r in props]
        shown = required or list(props)[:6]
        return {name: _example_value(props[name], depth + 1) for name in shown}
    if kind == "array":
        item = _example_value(schema.get("items"), depth + 1)
        return [] if item is None else [item]
    return {"string": "...", "integer": 0, "number": 0.0, "boolean": False}.get(kind or "")


_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
             "array": "list[Any]", "object": "dict[str, Any]"}
_READ_VERBS = re.compile(r"^(get|list|describe|query|scan|search|read|fetch|check|lookup)", re.I)


def skeleton(target: AuthoringTarget) -> str:
    """The authored class with the target's method signature (every API argument: required ones first,
    optional ones `= None`), its decorator and a docstring; the body is left to the author. Arguments
    that are not python identifiers (keywords) are left out: calls passing them are refused."""
    props = object_properties(target.input_schema)
    required = [n for n in target.input_schema.get("required", []) if n in props]
    usable = [n for n in [*required, *sorted(set(props) - set(required))]
              if n.isidentifier() and not keyword.iskeyword(n) and n not in {"self", "tool"}]
    params = []
    for name in usable:
        kind = _PY_TYPES.get(json_type(props[name]) or "", "Any")
        params.append(f"{name}: {kind}" if name in required else f"{name}: {kind} | None = None")
    effect = "read" if _READ_VERBS.match(target.operation.name) else "write"
    summary = _doc_line(target.description, 100) or target.operation.name
    doc = [f'        """{summary}']
    if usable:
        doc += ["", "        Args:"]
        doc += [f"            {name}: {_doc_line(str(props[name].get('description', '')), 80) or name}" for name in usable]
    doc.append('        """')
    signature = ", ".join(["self", *params])
    return "\n".join([
        f"class {AUTHORED_CLASS}({AUTHORED_BASE}):",
        f'    @tool(effect="{effect}")',
        f"    def {target.tool}({signature}) -> dict[str, Any]:",
        *doc,
        "        ...",
    ])


def _doc_line(text: str, limit: int) -> str:
    """The first line of spec prose, reduced to plain characters: it goes into a docstring."""
    first = (text.strip().splitlines() or [""])[0]
    return _UNSAFE_DOC.sub("", first)[:limit].strip()


_UNSAFE_DOC = re.compile(r"[^\w .,;:()/'-]")


def author_request(source: DeclarativeEnvSource, targets: Sequence[AuthoringTarget],
                   feedback: Sequence[str] = (), *, authored: Sequence[str] = ()) -> ChatRequest:
    """The request for `targets` (deterministic: same inputs, same request); `authored` names tools
    earlier answers already wrote."""
    about = source.meta.description.strip().splitlines()[0][:200] if source.meta.description.strip() else ""
    lines = [f"API: {source.meta.name}" + (f" ({about})" if about else ""), "", "Collections (the state):"]
    for name, coll in sorted(source.collections.items()):
        props = coll.record_schema.get("properties")
        fields = ", ".join(sorted(props)) if isinstance(props, dict) else ""
        prefix = f", generated keys like {coll.id_prefix}0001" if coll.id_prefix else ""
        lines.append(f"- {name} (key {coll.key}{prefix}): {fields[:600]}")
        for ref in coll.references:
            lines.append(f"  {ref.field} refers to {ref.collection}")
    existing = sorted({*(t.name for t in source.tools), *authored})
    lines += ["", "Tools that already exist (do not write them): " + ", ".join(existing),
              "", "Operations to write:"]
    for target in targets:
        lines += [
            f"## {target.operation.name} (tool {target.tool})",
            target.description[:600],
            f"Arguments: {_compact(target.input_schema)}",
            f"Output schema: {_compact(target.output_schema)}",
            f"Return data shaped like: {_compact(_example_value(target.output_schema), 600)}",
        ]
        errors = ", ".join(e.code for e in target.operation.errors[:8])
        if errors:
            lines.append(f"Errors the API declares: {errors}")
    if len(targets) == 1:
        # One operation: hand over the method's signature and docstring, so the answer only has to
        # write its body (small models break signatures and docstrings far more often than bodies).
        lines += ["", "The method, to complete:", "```python", skeleton(targets[0]), "```",
                  "Reply with a ```python block holding only the body of the method (the lines that replace "
                  "`...`), and the json block if you add collections."]
    if feedback:
        lines += ["", "Your previous answer failed these checks; fix them:", *[f"- {f[:500]}" for f in feedback[:8]]]
    return ChatRequest(
        messages=[ChatMessage.system(_SYSTEM), ChatMessage.user("\n".join(lines))],
        temperature=0.0, seed=0, max_tokens=_MAX_TOKENS,
    )
