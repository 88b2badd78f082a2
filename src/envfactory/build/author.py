"""Authoring: an LLM writes python tools for the operations the CRUD compiler could not express.

Contract:
- Targets (`authoring_targets`) are the operations `compile` dropped as not CRUD or lacking a key
  argument (receipt handles, items keyed by attribute maps, sends, quotas). Each keeps its API
  interface (`compile.operation_interface`, `compile.operation_output`): an authored tool has the
  same input and output schemas as the real operation, whatever the author writes.
- Requests (`author_request`, deterministic) carry `batch` operations each (`author_operations`; 1
  suits small models): the declarative collections (with those earlier answers added), the existing
  tools, the operations to write with their schemas and a data example of each output, and, in a revise
  round, the evidence against the previous attempt. Operations that make state are asked first. The
  answer is a python block (the class `AuthoredTools(AuthoredBase)`) and an optional JSON block
  declaring new collections and generated output ids.
- The answer is data until it is checked (`parse_answer`, `split_pieces`, `check_code`): the code is
  parsed with `ast` (never run here); it must define exactly the authored class, import nothing
  outside `ALLOWED_IMPORTS`, run nothing at the top level and touch no dunder attribute or
  `eval`/`open`-like name. Each operation's method becomes a piece, checked and kept or refused alone;
  `assemble` merges pieces of several answers into one class. New collections are validated by the
  declarative compiler. Then `hybrid_spec` assembles the sealed `EnvSpec` (`HybridImplementation`),
  whose code runs only in sandbox workers (`runtime.hybrid`), where its parity with the API schemas
  is checked when it loads.
- Failures are reasons, never exceptions out of the build: an unusable answer becomes a recorded
  failure and the operations stay dropped with it. A missing or unreachable model stops the build
  (the same setup errors realism re-raises).

The request side (`AuthoringTarget`, `skeleton`, `author_request`) lives in `author_request.py` and is
re-exported here.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from envfactory.build.author_request import AUTHORED_CLASS, AuthoringTarget, author_request, skeleton
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
from envfactory.store import write_atomic

__all__ = [
    "ALLOWED_IMPORTS",
    "AUTHOR_VERSION",
    "AuthoredDraft",
    "AuthoredPiece",
    "AuthoringError",
    "AuthoringResult",
    "AuthoringTarget",
    "assemble",
    "author_operations",
    "author_request",
    "authoring_targets",
    "check_code",
    "hybrid_spec",
    "parse_answer",
    "skeleton",
    "split_pieces",
    "write_hybrid_dir",
]

AUTHOR_VERSION = 1
ALLOWED_IMPORTS = frozenset({"base64", "collections", "datetime", "decimal", "hashlib", "itertools", "json",
                             "math", "re", "string", "typing"})
_AUTHORABLE = re.compile(r"needs an authored implementation|no argument names|no string argument names")
_FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
                              "getattr", "setattr", "delattr", "input", "breakpoint", "memoryview"})
_SETUP_ERRORS = (ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError)


class AuthoringError(EnvFactoryError):
    """An answer that cannot become authored tools; the message is the evidence for the next round."""


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
    if code is None and f"class {AUTHORED_CLASS}" in text:  # code without a fence: from the class on
        code = text[text.index(f"class {AUTHORED_CLASS}"):].split("```", 1)[0].strip()
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


def _checked_class(body: str) -> tuple[ast.ClassDef, list[str]]:
    """The authored class of a module, after the static checks, and the module's import lines.
    Raises `AuthoringError` naming the first problem (the code is parsed, never run, here)."""
    try:
        tree = ast.parse(body)
    except SyntaxError as exc:
        raise AuthoringError(f"the code does not parse: line {exc.lineno}: {exc.msg}") from None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    imports: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad = [n for n in names if n.split(".")[0] not in ALLOWED_IMPORTS]
            if bad:
                raise AuthoringError(f"import of {', '.join(bad)} is not allowed (only {', '.join(sorted(ALLOWED_IMPORTS))})")
            imports.append(ast.unparse(node))
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
    return cls, imports


def _methods(cls: ast.ClassDef) -> dict[str, _Method]:
    methods: dict[str, _Method] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            effect = _tool_effect(node)
            if effect is not None:
                params = tuple(a.arg for a in [*node.args.args[1:], *node.args.kwonlyargs])
                methods[node.name] = _Method(effect, params)
    return methods


def check_code(body: str, tools: Sequence[str]) -> dict[str, _Method]:
    """Static checks of the authored class; tool -> its declared effect and parameter names, for the
    tools it writes (an author may leave some out: they stay dropped). Raises `AuthoringError`."""
    cls, _ = _checked_class(body)
    methods = _methods(cls)
    if not set(methods) & set(tools):
        raise AuthoringError(f"no @tool method named as an operation to write ({', '.join(tools)})")
    extra = sorted(set(methods) - set(tools))
    if extra:
        raise AuthoringError(f"@tool methods that are not operations to write: {', '.join(extra)}")
    return methods


@dataclass(frozen=True, slots=True)
class AuthoredPiece:
    """One authored tool cut out of an answer: its method, the helper methods and imports of its
    answer, and the collections and generated outputs the answer declared."""

    tool: str
    method: str
    helpers: dict[str, str]
    imports: tuple[str, ...]
    collections: dict[str, CollectionDecl]
    generated: tuple[str, ...]


def split_pieces(draft: AuthoredDraft, tools: Sequence[str]) -> dict[str, AuthoredPiece]:
    """The pieces of an answer for `tools` (methods for other tools are left out). Raises
    `AuthoringError` when the answer as a whole is unusable or writes none of `tools`."""
    cls, imports = _checked_class(draft.body)
    functions = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    tool_names = set(_methods(cls))
    helpers = {name: ast.unparse(node) for name, node in functions.items() if name not in tool_names}
    wanted = [t for t in tools if t in tool_names]
    if not wanted:
        raise AuthoringError(f"no @tool method named as an operation to write ({', '.join(tools)})")
    return {
        tool: AuthoredPiece(tool, ast.unparse(functions[tool]), helpers, tuple(imports), dict(draft.collections),
                            tuple(draft.generated.get(tool, ())))
        for tool in wanted
    }


def body_answer(text: str, target: AuthoringTarget) -> AuthoredDraft:
    """An answer holding only the body of one operation's method: the body is put into the method's
    `skeleton` (the first python block without a class; its JSON block is read as usual)."""
    blocks = [(lang, body) for lang, body in _BLOCK.findall(text) if lang != "json" and not body.strip().startswith("{")]
    if not blocks:
        raise AuthoringError("the answer has no ```python block with the method's body")
    lines = textwrap.dedent(blocks[0][1]).strip("\n").splitlines()
    if not lines:
        raise AuthoringError("the method's body is empty")
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    body = [line for line in lines if not line.startswith(("import ", "from "))]
    code = skeleton(target).removesuffix("        ...") + "\n".join(("        " + line) if line.strip() else "" for line in body)
    extra = parse_answer(f"```python\n{code}\n```\n" + "".join(f"```json\n{b}\n```" for lang, b in _BLOCK.findall(text)
                                                                 if lang == "json" or b.strip().startswith("{")))
    return AuthoredDraft(body="\n".join([*imports, "", code]) if imports else code,
                         collections=extra.collections, generated=extra.generated)


def _parse_for(text: str, chunk: Sequence[AuthoringTarget]) -> AuthoredDraft:
    """The answer to a request for `chunk`: a whole class, or (one operation) only the method's body."""
    if len(chunk) == 1 and f"def {chunk[0].tool}(" not in text:
        return body_answer(text, chunk[0])
    return parse_answer(text)


class _Rename(ast.NodeTransformer):
    """`self.<old>` -> `self.<new>` for helper methods renamed apart when two answers disagree."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in self.names:
            return ast.copy_location(ast.Attribute(value=node.value, attr=self.names[node.attr], ctx=node.ctx), node)
        return node


def assemble(pieces: Sequence[AuthoredPiece]) -> AuthoredDraft:
    """One class from pieces of (possibly) several answers. Helpers with the same name and the same code
    are shared; different code under one name is renamed apart. A collection two answers declare
    differently is refused (`AuthoringError`)."""
    imports: list[str] = []
    helpers: dict[str, str] = {}
    methods: list[str] = []
    collections: dict[str, CollectionDecl] = {}
    generated: dict[str, list[str]] = {}
    for index, piece in enumerate(pieces):
        imports.extend(i for i in piece.imports if i not in imports)
        for name, decl in piece.collections.items():
            if name in collections and collections[name] != decl:
                raise AuthoringError(f"{piece.tool}: collection {name} is declared differently by another operation")
            collections[name] = decl
        renames = {name: f"{name}_{index}" for name, code in piece.helpers.items()
                   if name in helpers and helpers[name] != code}
        for name, code in piece.helpers.items():
            if name in renames:
                node = _Rename(renames).visit(ast.parse(code).body[0])
                assert isinstance(node, ast.FunctionDef)
                node.name = renames[name]
                helpers[renames[name]] = ast.unparse(node)
            else:
                helpers.setdefault(name, code)
        method = ast.parse(piece.method).body[0]
        methods.append(ast.unparse(_Rename(renames).visit(method)) if renames else piece.method)
        if piece.generated:
            generated[piece.tool] = list(piece.generated)
    used = {n.attr for m in methods for n in ast.walk(ast.parse(m)) if isinstance(n, ast.Attribute)}
    used |= {n.attr for h in helpers.values() for n in ast.walk(ast.parse(h)) if isinstance(n, ast.Attribute)}
    members = [code for name, code in sorted(helpers.items()) if name in used] + methods
    body = "\n".join(imports) + ("\n\n\n" if imports else "") + f"class {AUTHORED_CLASS}({AUTHORED_BASE}):\n"
    body += "\n\n".join(_indent(code) for code in members) + "\n"
    return AuthoredDraft(body=body, collections=collections, generated=generated)


def _indent(code: str) -> str:
    return "\n".join(("    " + line) if line.strip() else "" for line in code.splitlines())


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
    write_atomic(directory / "spec.json", spec.to_json_bytes())
    for name, state in sorted(seeds.items()):
        write_atomic(directory / "seeds" / f"{name}.json", canonical_json(state))


@dataclass(frozen=True, slots=True)
class AuthoringResult:
    """What one authoring pass produced: the hybrid spec of every accepted piece (None when there is
    none), the updated record, the accepted pieces by tool, and why each other target failed."""

    spec: EnvSpec | None
    record: AuthoringRecord
    pieces: dict[str, AuthoredPiece]
    failed: dict[str, str]


def author_operations(
    llm: LLMClient, source: DeclarativeEnvSource, targets: Sequence[AuthoringTarget],
    feedback: Mapping[str, Sequence[str]] | None = None, record: AuthoringRecord | None = None,
    *, batch: int = 8, accepted: Mapping[str, AuthoredPiece] | None = None,
) -> AuthoringResult:
    """Ask `llm` for the targets, `batch` operations per request (1 suits small models), each request
    seeing the collections earlier answers added; keep what checks out, one operation at a time.
    `accepted` pieces (earlier rounds) are kept and not asked again; `feedback` is the evidence against
    an operation's previous attempt."""
    record = record or AuthoringRecord(model=llm.model_id)
    failed: dict[str, str] = {}
    pieces: dict[str, AuthoredPiece] = dict(accepted or {})
    by_tool = {t.tool: t for t in targets}
    pending = [t for t in _producers_first(targets) if t.tool not in pieces]
    for start in range(0, len(pending), max(1, batch)):
        chunk = pending[start:start + max(1, batch)]
        context = _with_collections(source, pieces.values())
        notes = [line for t in chunk for line in (feedback or {}).get(t.tool, ())]
        request = author_request(context, chunk, notes, authored=sorted(pieces))
        record = record.model_copy(update={"requests": record.requests + 1})
        try:
            response = llm.chat(request)
        except _SETUP_ERRORS:
            raise
        except Exception as exc:  # a model that fails on this request fails these operations, not the run
            why = f"the model failed: {type(exc).__name__}: {exc}"[:300]
            record = _failed(record, f"{', '.join(t.tool for t in chunk)}: {why}")
            failed.update((t.tool, why) for t in chunk)
            continue
        record = record.model_copy(update={"tokens": record.tokens + response.usage.total_tokens})
        try:
            found = split_pieces(_parse_for(response.content, chunk), [t.tool for t in chunk])
        except AuthoringError as exc:
            record = _failed(record, f"{', '.join(t.tool for t in chunk)}: {exc}"[:500])
            failed.update((t.tool, str(exc)[:500]) for t in chunk)
            continue
        failed.update((t.tool, "the answer has no method for it") for t in chunk if t.tool not in found)
        for tool, piece in found.items():
            trial = {**pieces, tool: piece}
            try:
                hybrid_spec(source, assemble(list(trial.values())), [by_tool[t] for t in trial], llm.model_id)
            except AuthoringError as exc:
                record = _failed(record, f"{tool}: {exc}"[:500])
                failed[tool] = str(exc)[:500]
                continue
            pieces = trial
    if not pieces:
        return AuthoringResult(None, record, {}, failed)
    ordered = [pieces[t.tool] for t in targets if t.tool in pieces]
    spec = hybrid_spec(source, assemble(ordered), [by_tool[p.tool] for p in ordered], llm.model_id)
    return AuthoringResult(spec, record, {p.tool: p for p in ordered}, failed)


_CONSUMER_VERBS = re.compile(r"^(get|list|describe|delete|remove|query|scan|search|read|fetch|check)", re.I)


def _producers_first(targets: Sequence[AuthoringTarget]) -> list[AuthoringTarget]:
    """Operations that make state (receive, put, send, tag) before those that read or remove it, so a
    later request sees the collections an earlier answer added (receipts before DeleteMessage)."""
    return sorted(targets, key=lambda t: bool(_CONSUMER_VERBS.match(t.operation.name)))


def _with_collections(source: DeclarativeEnvSource, pieces: Iterable[AuthoredPiece]) -> DeclarativeEnvSource:
    extra: dict[str, CollectionDecl] = {}
    for piece in pieces:
        extra.update(piece.collections)
    return source.model_copy(update={"collections": {**source.collections, **extra}}) if extra else source


def _failed(record: AuthoringRecord, why: str) -> AuthoringRecord:
    return record.model_copy(update={"failures": [*record.failures, why][:20]})
