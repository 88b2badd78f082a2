"""JSON Schema plumbing shared by the sources: collecting the named definitions an operation reaches
into `$defs` (with a budget), rewriting `$ref`s, detecting reference cycles that describe nothing,
and checking that a finished schema compiles.

Contract:
- Output schemas are self-contained: every `$ref` points into the schema's own `$defs`. A reference the
  collector cannot follow (external file, missing name, budget spent) becomes an empty schema with a
  `description` saying so, and the reason is returned for the caller to record.
- Recursive definitions stay `$ref`s (that is what `$defs` is for); a definition that only refers to
  itself through other bare references (`A → B → A`) has no content and becomes `{}`.
- The budget bounds work and size on huge, densely linked specifications (Stripe, Microsoft Graph):
  at most `max_defs` definitions per schema, `max_nodes` nodes, a nesting depth of `max_depth`, and
  definitions at most `max_ref_depth` references away from the operation. A reference past a limit
  becomes a schema that accepts anything and names the definition (`x-ref-name`), with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from envfactory.resources._text import clean_text
from envfactory.resources.model import SourceFormatError
from envfactory.spec import JSONObject, JSONValue

MAX_DEFS = 80
MAX_DEPTH = 48
MAX_NODES = 10_000
MAX_REF_DEPTH = 4

# Keywords whose values are prose: cleaned like every other description.
_PROSE = frozenset({"description", "title", "summary"})


@dataclass(slots=True)
class RefBudget:
    max_defs: int = MAX_DEFS
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_ref_depth: int = MAX_REF_DEPTH
    nodes: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if problem not in self.problems and len(self.problems) < 20:
            self.problems.append(problem)


def _placeholder(reason: str) -> JSONObject:
    return {"description": reason}


class DefinitionCollector:
    """Collect the definitions reachable from some schemas into one `$defs` map.

    `resolve(ref)` maps a `$ref` string of the source document to `(name, definition)` — the name the
    definition gets under `$defs` and its raw body — or `None` when the reference cannot be followed.
    `pointer_suffix(ref)` returns the JSON-pointer tail below the definition (`/properties/x`), if any.
    `transform(node)` adapts each schema object of a source dialect (OpenAPI 3.0's `nullable`) first.
    """

    def __init__(
        self,
        resolve: Callable[[str], tuple[str, Any] | None],
        pointer_suffix: Callable[[str], str] = lambda ref: "",
        budget: RefBudget | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._resolve = resolve
        self._transform = transform
        self._suffix = pointer_suffix
        self.budget = budget or RefBudget()
        self.defs: dict[str, JSONValue] = {}
        self._pending: list[tuple[str, Any, int]] = []
        self._known: set[str] = set()
        self._ref_depth = 0  # references between the schema being converted and the operation

    def convert(self, node: Any) -> JSONValue:
        """A copy of `node` with refs rewritten to `#/$defs/<name>`; reached definitions are queued."""
        return self._walk(node, 0)

    def finish(self) -> dict[str, JSONValue]:
        """Convert every queued definition (breadth first) and return `$defs`."""
        while self._pending:
            name, body, ref_depth = self._pending.pop(0)
            self._ref_depth = ref_depth
            self.defs[name] = self._walk(body, 0)
        self._ref_depth = 0
        self._break_alias_cycles()
        return self.defs

    def attach(self, schema: JSONValue) -> JSONObject:
        """`schema` as an object with the collected `$defs` (only when there are any)."""
        root: JSONObject = dict(schema) if isinstance(schema, dict) else {}
        defs = self.finish()
        if defs:
            root["$defs"] = dict(defs)
        return root

    def _walk(self, node: Any, depth: int) -> JSONValue:
        budget = self.budget
        budget.nodes += 1
        if depth > budget.max_depth:
            budget.note(f"schema nested deeper than {budget.max_depth} levels was cut")
            return _placeholder("(nested too deeply; cut)")
        if budget.nodes > budget.max_nodes:
            budget.note(f"schema larger than {budget.max_nodes} nodes was cut")
            return _placeholder("(schema too large; cut)")
        if isinstance(node, dict):
            if self._transform is not None:
                node = self._transform(node)
            ref = node.get("$ref")
            if isinstance(ref, str):
                return self._ref(ref, node, depth)
            out: JSONObject = {}
            for key, value in node.items():
                if not isinstance(key, str):
                    continue
                if key in _PROSE and isinstance(value, str):
                    out[key] = clean_text(value, from_html=True)
                elif key == "properties" and isinstance(value, dict):
                    # property names are data, not keywords: keep them all, walk their schemas
                    out[key] = {str(k): self._walk(v, depth + 1) for k, v in value.items()}
                else:
                    out[key] = self._walk(value, depth + 1)
            return out
        if isinstance(node, list):
            return [self._walk(item, depth + 1) for item in node]
        if isinstance(node, str | int | float | bool) or node is None:
            return node
        return str(node)

    def _ref(self, ref: str, node: Mapping[str, Any], depth: int) -> JSONValue:
        resolved = self._resolve(ref)
        if resolved is None:
            self.budget.note(f"unresolvable $ref {clean_text(ref, 200)!r} replaced by an empty schema")
            return _placeholder(f"(unresolved reference {clean_text(ref, 200)})")
        name, body = resolved
        if name not in self._known:
            if len(self._known) >= self.budget.max_defs:
                self.budget.note(f"more than {self.budget.max_defs} referenced definitions; the rest were cut")
                return _omitted(name, "schema too large")
            if self._ref_depth >= self.budget.max_ref_depth:
                self.budget.note(f"definitions more than {self.budget.max_ref_depth} references deep were not expanded")
                return _omitted(name, f"more than {self.budget.max_ref_depth} references deep")
            self._known.add(name)  # taken before conversion, so recursive references stop here
            self._pending.append((name, body, self._ref_depth + 1))
        out: JSONObject = {"$ref": f"#/$defs/{_escape_pointer(name)}{self._suffix(ref)}"}
        # OpenAPI 3.1 / JSON Schema allow siblings of $ref (a description, mostly): keep the prose.
        for key in _PROSE:
            value = node.get(key)
            if isinstance(value, str):
                out[key] = clean_text(value, from_html=True)
        return out

    def _break_alias_cycles(self) -> None:
        """Definitions that are bare references chaining back to themselves describe nothing."""
        prefix = "#/$defs/"
        for start in list(self.defs):
            seen = [start]
            current = self.defs.get(start)
            while isinstance(current, dict) and set(current) <= {"$ref", *_PROSE} and isinstance(
                current.get("$ref"), str
            ):
                target = _unescape_pointer(str(current["$ref"]).removeprefix(prefix))
                if target in seen:
                    for name in seen:
                        self.defs[name] = _placeholder("(cyclic reference with no content)")
                    self.budget.note(f"cyclic $ref chain {' -> '.join([*seen, target])} has no content")
                    break
                seen.append(target)
                current = self.defs.get(target)


def _omitted(name: str, why: str) -> JSONObject:
    return {"description": f"({clean_text(name, 200)}: not expanded, {why})", "x-ref-name": clean_text(name, 200)}


def _escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def schema_problem(schema: JSONObject) -> str | None:
    """Why `schema` does not compile as a JSON Schema (jsonschema-rs), or None when it does."""
    try:
        jsonschema_rs.validator_for(schema)
    except Exception as exc:  # jsonschema-rs raises ValidationError/ValueError subclasses for bad schemas
        return clean_text(str(exc).split("\n", 1)[0], 300)
    return None


def strip_keyword(node: JSONValue, keyword: str) -> JSONValue:
    """A copy of a schema without `keyword` anywhere (used to drop unusable `pattern`s)."""
    if isinstance(node, dict):
        return {
            k: (strip_keyword(v, keyword) if k != "properties" or not isinstance(v, dict)
                else {pk: strip_keyword(pv, keyword) for pk, pv in v.items()})
            for k, v in node.items() if k != keyword
        }
    if isinstance(node, list):
        return [strip_keyword(item, keyword) for item in node]
    return node


def finished_schema(schema: JSONObject) -> tuple[JSONObject | None, str | None]:
    """`schema` if it compiles; else the schema without `pattern`s if that compiles (and a note);
    else `(None, why)`."""
    problem = schema_problem(schema)
    if problem is None:
        return schema, None
    relaxed = strip_keyword(schema, "pattern")
    assert isinstance(relaxed, dict)
    if schema_problem(relaxed) is None:
        return relaxed, f"patterns dropped ({problem})"
    return None, problem


def finished_schemas(input_schema: JSONObject, output_schema: JSONObject, notes: list[str]) -> list[JSONObject]:
    """`[input, output]` finished (`finished_schema`); each one's note is appended to `notes` as
    `"<direction>: <note>"`. Raises `SourceFormatError` naming the direction when one does not compile."""
    finished: list[JSONObject] = []
    for direction, schema in (("input", input_schema), ("output", output_schema)):
        done, note = finished_schema(schema)
        if done is None:
            raise SourceFormatError(f"{direction} schema does not compile: {note}")
        if note:
            notes.append(f"{direction}: {note}")
        finished.append(done)
    return finished
