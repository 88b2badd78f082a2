"""Authoring: an LLM writes python tools for the operations the CRUD compiler could not express.

Contract:
- Targets (`authoring_targets`) are the operations `compile` dropped as not CRUD or lacking a key
  argument (receipt handles, items keyed by attribute maps, sends, quotas). Each keeps its API
  interface (`compile.operation_interface`, `compile.operation_output`): an authored tool has the
  same input and output schemas as the real operation, whatever the author writes.
- One request per environment (`author_request`, deterministic): the declarative collections, the
  compiled tools, the operations to write and, in a revise round, the evidence against the previous
  attempt. The answer is a python block (the class `AuthoredTools(AuthoredBase)`) and an optional
  JSON block declaring new collections and generated output ids.
- The answer is data until it is checked (`parse_answer`, `check_code`): the code is parsed with
  `ast` (never run here); it must define exactly the authored class with one `@tool` method per
  target, import nothing outside `ALLOWED_IMPORTS`, and touch no dunder attribute. New collections
  are validated by the declarative compiler. Then `hybrid_spec` assembles the sealed `EnvSpec`
  (`HybridImplementation`), whose code runs only in sandbox workers (`runtime.hybrid`), where its
  parity with the API schemas is checked when it loads.
- Failures are reasons, never exceptions out of the build: an unusable answer becomes a recorded
  failure and the operations stay dropped with it. A missing or unreachable model stops the build
  (the same setup errors realism re-raises).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from envfactory.build.compile import CompiledEnv, operation_interface, operation_output
from envfactory.build.naming import tool_name
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.llm.errors import (
    DependencyMissingError,
    EndpointUnreachableError,
    ModelIntegrityError,
    ModelNotInstalledError,
)
from envfactory.llm.protocols import LLMClient
from envfactory.llm.types import ChatMessage, ChatRequest
from envfactory.runtime.declarative.compile import compile_source
from envfactory.runtime.hybrid import AUTHORED_BASE, authored_module
from envfactory.spec import (
    AuthoredCode,
    DeclarativeEnvSource,
    EnvSpec,
    HybridImplementation,
    Operation,
    ToolSource,
    ToolSpec,
    canonical_json,
)
from envfactory.spec.build import AuthoringRecord
from envfactory.spec.declarative import CollectionDecl

__all__ = [
    "ALLOWED_IMPORTS",
    "AUTHOR_VERSION",
    "AuthoredDraft",
    "AuthoringError",
    "AuthoringTarget",
    "author_operations",
    "author_request",
    "authoring_targets",
    "check_code",
    "hybrid_spec",
    "parse_answer",
    "write_hybrid_dir",
]

AUTHOR_VERSION = 1
AUTHORED_CLASS = "AuthoredTools"
ALLOWED_IMPORTS = frozenset({"base64", "collections", "datetime", "decimal", "hashlib", "itertools", "json",
                             "math", "re", "string", "typing"})
_AUTHORABLE = re.compile(r"needs an authored implementation|no argument names|no string argument names")
_FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
                              "getattr", "setattr", "delattr", "input", "breakpoint", "memoryview"})
_SETUP_ERRORS = (ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError)
_SCHEMA_CHARS = 1600
_MAX_TOKENS = 3000


class AuthoringError(EnvFactoryError):
    """An answer that cannot become authored tools; the message is the evidence for the next round."""


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


@dataclass(frozen=True, slots=True)
class AuthoredDraft:
    """A parsed answer: the class source, new collections and generated output paths per tool."""

    body: str
    collections: dict[str, CollectionDecl]
    generated: dict[str, list[str]]


def authoring_targets(
    compiled: CompiledEnv, operations: Mapping[str, Operation], *, exclude: frozenset[str] = frozenset(),
    limit: int = 8,
) -> list[AuthoringTarget]:
    """The compile-stage drops worth authoring, in the proposal's order (at most `limit`)."""
    used = {t.name for t in compiled.source.tools}
    targets: list[AuthoringTarget] = []
    for dropped in compiled.dropped:
        if dropped.stage != "compile" or dropped.operation_id in exclude or not _AUTHORABLE.search(dropped.reason):
            continue
        op = operations.get(dropped.operation_id)
        if op is None:
            continue
        name = tool_name(op.name)
        if name in used:
            continue
        used.add(name)
        input_schema, field_names, description = operation_interface(op)
        targets.append(AuthoringTarget(op, name, description, input_schema, operation_output(op), field_names,
                                       dropped.reason))
        if len(targets) >= limit:
            break
    return targets


# -- the request ------------------------------------------------------------------------------------

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
No files, no network, no other modules.

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


def author_request(source: DeclarativeEnvSource, targets: Sequence[AuthoringTarget],
                   feedback: Sequence[str] = ()) -> ChatRequest:
    """The request for `targets` (deterministic: same inputs, same request)."""
    about = source.meta.description.strip().splitlines()[0][:200] if source.meta.description.strip() else ""
    lines = [f"API: {source.meta.name}" + (f" ({about})" if about else ""), "", "Collections (the state):"]
    for name, coll in sorted(source.collections.items()):
        props = coll.record_schema.get("properties")
        fields = ", ".join(sorted(props)) if isinstance(props, dict) else ""
        prefix = f", generated keys like {coll.id_prefix}0001" if coll.id_prefix else ""
        lines.append(f"- {name} (key {coll.key}{prefix}): {fields[:600]}")
        for ref in coll.references:
            lines.append(f"  {ref.field} refers to {ref.collection}")
    lines += ["", "Tools that already exist (do not write them): " + ", ".join(sorted(t.name for t in source.tools)),
              "", "Operations to write:"]
    for target in targets:
        lines += [
            f"## {target.operation.name} (tool {target.tool})",
            target.description[:600],
            f"Arguments: {_compact(target.input_schema)}",
            f"Output: {_compact(target.output_schema)}",
        ]
        errors = ", ".join(e.code for e in target.operation.errors[:8])
        if errors:
            lines.append(f"Errors the API declares: {errors}")
    if feedback:
        lines += ["", "Your previous answer failed these checks; fix them:", *[f"- {f[:500]}" for f in feedback[:8]]]
    return ChatRequest(
        messages=[ChatMessage.system(_SYSTEM), ChatMessage.user("\n".join(lines))],
        temperature=0.0, seed=0, max_tokens=_MAX_TOKENS,
    )


# -- the answer -------------------------------------------------------------------------------------

_BLOCK = re.compile(r"```(python|py|json)?[ \t]*\n(.*?)```", re.DOTALL)


def parse_answer(text: str) -> AuthoredDraft:
    """The python block (required) and the JSON block (optional) of an answer."""
    code: str | None = None
    extra: Any = None
    for lang, body in _BLOCK.findall(text):
        stripped = body.strip()
        if lang == "json" or (not lang and stripped.startswith("{")):
            if extra is None:
                try:
                    extra = orjson.loads(stripped)
                except orjson.JSONDecodeError as exc:
                    raise AuthoringError(f"the json block is not valid JSON: {exc}") from None
        elif code is None and "class " in stripped:
            code = stripped
    if code is None:
        raise AuthoringError("the answer has no ```python block defining the class")
    collections: dict[str, CollectionDecl] = {}
    generated: dict[str, list[str]] = {}
    if extra is not None:
        if not isinstance(extra, dict):
            raise AuthoringError("the json block must be an object with 'collections' and 'generated'")
        raw = extra.get("collections") or {}
        if not isinstance(raw, dict):
            raise AuthoringError("'collections' must be an object of collection name -> declaration")
        for name, decl in raw.items():
            try:
                collections[str(name)] = CollectionDecl.model_validate(decl)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                raise AuthoringError(f"collection {name}: {where}: {first['msg']}") from None
        made = extra.get("generated") or {}
        if not isinstance(made, dict) or not all(
            isinstance(v, list) and all(isinstance(p, str) for p in v) for v in made.values()
        ):
            raise AuthoringError("'generated' must map tool names to lists of output field paths")
        generated = {str(k): [str(p) for p in v] for k, v in made.items()}
    return AuthoredDraft(body=code, collections=collections, generated=generated)


@dataclass(frozen=True, slots=True)
class _Method:
    effect: str
    parameters: tuple[str, ...]


def check_code(body: str, tools: Sequence[str]) -> dict[str, _Method]:
    """Static checks of the authored class (it is parsed, never run, here); tool -> its declared
    effect and parameter names, for the tools it writes (an author may leave some out: they stay
    dropped). Raises `AuthoringError` naming the first problem."""
    try:
        tree = ast.parse(body)
    except SyntaxError as exc:
        raise AuthoringError(f"the code does not parse: line {exc.lineno}: {exc.msg}") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad = [n for n in names if n.split(".")[0] not in ALLOWED_IMPORTS]
            if bad:
                raise AuthoringError(f"import of {', '.join(bad)} is not allowed (only {', '.join(sorted(ALLOWED_IMPORTS))})")
        elif not isinstance(node, ast.ClassDef) and not _is_docstring(node):
            raise AuthoringError(f"line {node.lineno}: only imports and the class may appear at the top level")
    if len(classes) != 1 or classes[0].name != AUTHORED_CLASS:
        raise AuthoringError(f"define exactly one class, {AUTHORED_CLASS}({AUTHORED_BASE})")
    cls = classes[0]
    if [ast.unparse(b) for b in cls.bases] != [AUTHORED_BASE]:
        raise AuthoringError(f"the class must derive from {AUTHORED_BASE} only")
    for found in ast.walk(tree):
        if isinstance(found, ast.Attribute) and found.attr.startswith("__"):
            raise AuthoringError(f"line {found.lineno}: dunder attribute {found.attr} is not allowed")
        if isinstance(found, ast.Name) and (found.id in _FORBIDDEN_CALLS or found.id.startswith("__")):
            raise AuthoringError(f"line {found.lineno}: {found.id} is not allowed")
        if isinstance(found, ast.Global | ast.Nonlocal):
            raise AuthoringError(f"line {found.lineno}: global state is not allowed; keep everything in self.state")
    methods: dict[str, _Method] = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        effect = _tool_effect(node)
        if effect is None:
            continue
        params = tuple(a.arg for a in [*node.args.args[1:], *node.args.kwonlyargs])
        methods[node.name] = _Method(effect, params)
    if not set(methods) & set(tools):
        raise AuthoringError(f"no @tool method named as an operation to write ({', '.join(tools)})")
    extra = sorted(set(methods) - set(tools))
    if extra:
        raise AuthoringError(f"@tool methods that are not operations to write: {', '.join(extra)}")
    return methods


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _tool_effect(node: ast.FunctionDef) -> str | None:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id == "tool":
            for keyword in decorator.keywords:
                if keyword.arg == "effect" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            raise AuthoringError(f"{node.name}: write @tool(effect=\"read\") or @tool(effect=\"write\")")
    return None


# -- assembling the environment ---------------------------------------------------------------------


def hybrid_spec(source: DeclarativeEnvSource, draft: AuthoredDraft, targets: Sequence[AuthoringTarget],
                author: str) -> EnvSpec:
    """The sealed hybrid `EnvSpec`: the declarative source plus the draft's collections and tools."""
    methods = check_code(draft.body, [t.tool for t in targets])
    targets = [t for t in targets if t.tool in methods]
    names = [t.tool for t in targets]
    clash = sorted(set(draft.collections) & set(source.collections))
    if clash:
        raise AuthoringError(f"new collections must not reuse existing names: {', '.join(clash)}")
    unknown = sorted(set(draft.generated) - set(names))
    if unknown:
        raise AuthoringError(f"'generated' names tools that are not written here: {', '.join(unknown)}")
    # The authored operations join the provenance of the resource they come from.
    provenance = [
        prov.model_copy(update={"operations": [
            *prov.operations,
            *(t.operation.id for t in targets if t.operation.id.startswith(f"{prov.resource}:")
              and t.operation.id not in prov.operations),
        ]})
        for prov in source.meta.provenance
    ]
    extended = source.model_copy(update={
        "collections": {**source.collections, **draft.collections},
        "meta": source.meta.model_copy(update={"provenance": provenance}),
    })
    try:
        declarative = compile_source(extended)
    except SpecError as exc:
        raise AuthoringError(f"the new collections do not compile: {exc}") from None
    tools: list[ToolSpec] = []
    ignored: dict[str, list[str]] = {}
    for target in targets:
        method = methods[target.tool]
        api = set(target.input_schema.get("properties", {}))
        unknown_params = sorted(set(method.parameters) - api)
        if unknown_params:
            raise AuthoringError(f"{target.tool}: parameters {unknown_params} are not arguments of "
                                 f"{target.operation.name} (its arguments: {sorted(api)})")
        missing = sorted(set(target.input_schema.get("required", [])) - set(method.parameters))
        if missing:
            raise AuthoringError(f"{target.tool}: the required arguments {missing} must be parameters")
        left = sorted(api - set(method.parameters))
        if left:
            ignored[target.tool] = left
        effect = "write" if method.effect == "write" else "read"
        tools.append(ToolSpec(
            name=target.tool, description=target.description or target.operation.name,
            input_schema=target.input_schema, output_schema=target.output_schema,
            effect=effect, idempotent=effect == "read",
            source=ToolSource(provider=target.operation.provider, service=target.operation.service,
                              operation_id=target.operation.id, field_names=target.field_names),
        ))
    model = declarative.implementation.model  # type: ignore[union-attr]
    code = AuthoredCode(
        class_name=AUTHORED_CLASS, source=authored_module(model, draft.body), tools=names,
        unsupported_arguments=ignored, generated_outputs={k: v for k, v in sorted(draft.generated.items())},
        author=author,
    )
    return EnvSpec(
        meta=declarative.meta, state_schema=declarative.state_schema, tools=[*declarative.tools, *tools],
        implementation=HybridImplementation(model=model, authored=code),
    ).seal()


def write_hybrid_dir(spec: EnvSpec, seeds: Mapping[str, Any], directory: Path) -> None:
    """Write a hybrid environment's `spec.json` and seeds (loading it needs a sandbox pool)."""
    (directory / "seeds").mkdir(parents=True, exist_ok=True)
    (directory / "spec.json").write_bytes(spec.to_json_bytes())
    for name, state in sorted(seeds.items()):
        (directory / "seeds" / f"{name}.json").write_bytes(canonical_json(state))


def author_operations(
    llm: LLMClient, source: DeclarativeEnvSource, targets: Sequence[AuthoringTarget],
    feedback: Sequence[str] = (), record: AuthoringRecord | None = None,
) -> tuple[EnvSpec | None, AuthoringRecord]:
    """Ask `llm` for the targets; the hybrid spec, or None with the failure recorded."""
    record = record or AuthoringRecord(model=llm.model_id)
    record = record.model_copy(update={"requests": record.requests + 1})
    try:
        response = llm.chat(author_request(source, targets, feedback))
    except _SETUP_ERRORS:
        raise
    except Exception as exc:  # a model that fails on this request fails this environment, not the run
        return None, _failed(record, f"the model failed: {type(exc).__name__}: {exc}"[:300])
    record = record.model_copy(update={"tokens": record.tokens + response.usage.total_tokens})
    try:
        draft = parse_answer(response.content)
        spec = hybrid_spec(source, draft, targets, llm.model_id)
    except AuthoringError as exc:
        return None, _failed(record, str(exc)[:500])
    return spec, record


def _failed(record: AuthoringRecord, why: str) -> AuthoringRecord:
    return record.model_copy(update={"failures": [*record.failures, why][:20]})
