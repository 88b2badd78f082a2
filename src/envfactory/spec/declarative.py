"""The declarative environment format: an environment described entirely as data.

A declarative environment is a set of *collections* (typed records with a key) and *operations*
(one per tool) interpreted by the trusted engine in `envfactory.runtime.declarative`. Business rules
live here as data: constraints (JSON Schema on records, unique fields, references between
collections), state *transitions* (allowed changes of a status-like field), *requirements* (declared
error cases checked before a write) and *effects* on other records (adjust a stock or a balance,
set a field, create a ledger record). Nothing in this format is ever executed as code; expressions are
a small closed vocabulary evaluated by an interpreter.

Format reference with examples: `docs/declarative-format.md`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from envfactory.spec.base import JSONObject, JSONValue, SpecModel
from envfactory.spec.meta import EnvMeta
from envfactory.spec.tool import ToolSource

# ---------------------------------------------------------------------------------------------------
# Expressions (values computed from arguments, records, items of an array, lookups, the clock)
# ---------------------------------------------------------------------------------------------------

FIELD_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class ArgExpr(SpecModel):
    """The value of an argument (dotted path into nested objects); missing → `default`."""

    op: Literal["arg"] = "arg"
    path: str = Field(pattern=FIELD_PATH_PATTERN)
    default: JSONValue = None


class ConstExpr(SpecModel):
    """A literal JSON value."""

    op: Literal["const"] = "const"
    value: JSONValue


class FieldExpr(SpecModel):
    """A field of the operation's target record as it was before the operation."""

    op: Literal["field"] = "field"
    path: str = Field(pattern=FIELD_PATH_PATTERN)


class ItemExpr(SpecModel):
    """A field of the current element inside `for_each` (empty path: the element itself)."""

    op: Literal["item"] = "item"
    path: str = ""


class NowExpr(SpecModel):
    """The session clock as an ISO-8601 UTC timestamp (injected, deterministic)."""

    op: Literal["now"] = "now"


class KeyExpr(SpecModel):
    """The key of the operation's target record (for create: the newly generated or given key)."""

    op: Literal["key"] = "key"


class LookupExpr(SpecModel):
    """A field of another record: `collection[key].path` (missing record → not_found)."""

    op: Literal["lookup"] = "lookup"
    collection: str
    key: Expr
    path: str = Field(pattern=FIELD_PATH_PATTERN)


class ArithExpr(SpecModel):
    """`add`, `sub` (first minus the rest), `mul` over numbers."""

    op: Literal["add", "sub", "mul"]
    args: list[Expr] = Field(min_length=1)


class SumExpr(SpecModel):
    """Sum of `expr` evaluated for each element of the array `over` (elements reachable via `item`)."""

    op: Literal["sum"] = "sum"
    over: Expr
    expr: Expr


Expr = Annotated[
    Union[ArgExpr, ConstExpr, FieldExpr, ItemExpr, NowExpr, KeyExpr, LookupExpr, ArithExpr, SumExpr],  # noqa: UP007
    Field(discriminator="op"),
]

# ---------------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------------

CompareOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains"]


class CompareCond(SpecModel):
    """`left <op> right`; `in`/`not_in` test membership of left in the array right."""

    op: CompareOp
    left: Expr
    right: Expr


class PresenceCond(SpecModel):
    """Whether an expression yields a value (`exists`) or null/missing (`missing`)."""

    op: Literal["exists", "missing"]
    value: Expr


class AllCond(SpecModel):
    """A condition that holds when every one of `conditions` does."""
    op: Literal["all"] = "all"
    conditions: list[Condition]


class AnyCond(SpecModel):
    """A condition that holds when at least one of `conditions` does."""
    op: Literal["any"] = "any"
    conditions: list[Condition]


class NotCond(SpecModel):
    """A condition that holds when `condition` does not."""
    op: Literal["not"] = "not"
    condition: Condition


Condition = Annotated[
    Union[CompareCond, PresenceCond, AllCond, AnyCond, NotCond],  # noqa: UP007
    Field(discriminator="op"),
]

# ---------------------------------------------------------------------------------------------------
# Collections
# ---------------------------------------------------------------------------------------------------

COLLECTION_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class ReferenceDecl(SpecModel):
    """`field` holds keys of records in `collection`. `field` may cross arrays with `[]`,
    e.g. `items[].product_id`. Deleting a referenced record is refused (`restrict`) or removes the
    referencing records (`cascade`)."""

    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\])?)*$")
    collection: str
    on_delete: Literal["restrict", "cascade"] = "restrict"


class TransitionDecl(SpecModel):
    """Allowed changes of one field: `allowed[old] = [new, ...]`. `initial` limits values on create."""

    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    allowed: dict[str, list[str]]
    initial: list[str] | None = None


class CapacityDecl(SpecModel):
    """At most `max_records` records in the collection, or, with `per`, at most that many sharing one
    value of field `per` (records under one parent). A create past it fails with `rule_violation`.
    `quote` is the spec sentence the limit was read from."""

    max_records: int = Field(ge=0)
    per: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    quote: str = ""


def _absent(value: object) -> bool:
    return value is None


class CollectionDecl(SpecModel):
    """A collection of records with a key field, a record JSON Schema and declared constraints."""

    description: str = ""
    key: str = Field(default="id", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    id_prefix: str = Field(default="", max_length=16, pattern=r"^[A-Za-z0-9_-]*$")
    id_width: int = Field(default=0, ge=0, le=12, description="zero padding of generated ids")
    record_schema: JSONObject = Field(description="JSON Schema of one record (type object)")
    unique: list[list[str]] = Field(default_factory=list, description="field sets unique per record")
    references: list[ReferenceDecl] = Field(default_factory=list)
    transitions: list[TransitionDecl] = Field(default_factory=list)
    # left out of the file when None, so environments compiled before it keep their content hashes
    capacity: CapacityDecl | None = Field(default=None, exclude_if=_absent,
                                          description="how many records the collection holds at most")


# ---------------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------------

ErrorCaseKind = Literal["not_found", "rule_violation", "invalid_arguments"]


class RequirementDecl(SpecModel):
    """A declared error case: when `condition` does not hold, the call fails with `error` and `message`."""

    condition: Condition
    error: ErrorCaseKind = "rule_violation"
    message: str


class AdjustEffect(SpecModel):
    """Add `by` to a numeric field of `collection[key]` (negative to decrement)."""

    op: Literal["adjust"] = "adjust"
    collection: str
    key: Expr
    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    by: Expr
    for_each: Expr | None = None


class SetEffect(SpecModel):
    """Set a field of `collection[key]` to `value`."""

    op: Literal["set"] = "set"
    collection: str
    key: Expr
    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: Expr
    for_each: Expr | None = None


class CreateEffect(SpecModel):
    """Create a record in `collection` (key generated) with `values`."""

    op: Literal["create"] = "create"
    collection: str
    values: dict[str, Expr]
    for_each: Expr | None = None


Effect = Annotated[Union[AdjustEffect, SetEffect, CreateEffect], Field(discriminator="op")]  # noqa: UP007

FilterMatch = Literal["eq", "ne", "lt", "le", "gt", "ge", "contains", "prefix", "in", "search"]


class FilterDecl(SpecModel):
    """`list` keeps records whose `field` matches argument `arg` (filters with an absent arg are skipped)."""

    arg: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    field: str = Field(pattern=FIELD_PATH_PATTERN)
    match: FilterMatch = "eq"


class ListDecl(SpecModel):
    """Filtering, sorting and pagination of a `list` operation."""

    filters: list[FilterDecl] = Field(default_factory=list)
    sort_by: str | None = Field(default=None, description="default sort field (key if unset)")
    sort_arg: str | None = Field(default=None, description="argument naming the sort field")
    descending_arg: str | None = None
    page_size_arg: str | None = None
    page_token_arg: str | None = None
    default_page_size: int = Field(default=20, ge=1, le=1000)
    max_page_size: int = Field(default=100, ge=1, le=1000)


OperationKind = Literal["create", "get", "list", "update", "patch", "delete"]

_FIELD_NAME = r"^[A-Za-z_$][A-Za-z0-9_$.-]{0,63}$"


class EnvelopeDecl(SpecModel):
    """Where an operation's result stands in its response, as the source's response schema defines it.

    - `list`: the page of records under `records` (`{"jobs": [...]}`), the next-page token under
      `next_token` (absent from the answer on the last page) and the number of matching records under
      `total`, each left out when None.
    - `create` / `get` / `update` / `patch`: the record under `records` (`{"GameServerGroup": {...}}`).
    - `list` with `records` None: the page as a bare array (`[{...}, ...]`), as a source whose response is
      an array answers it; no token and no total (generation 2).
    Without an envelope a list answers `{items, next_page_token, total}` and the others the bare record.
    """

    records: str | None = Field(pattern=_FIELD_NAME, description="None: a list's bare array")
    next_token: str | None = Field(default=None, pattern=_FIELD_NAME)
    total: str | None = Field(default=None, pattern=_FIELD_NAME)


def _no_envelope(value: EnvelopeDecl | None) -> bool:
    return value is None


def _false(value: bool) -> bool:
    return not value


class IdempotencyDecl(SpecModel):
    """An idempotency token (`clientToken`, `ClientRequestToken`, `Idempotency-Key`): argument `arg`.

    A write naming a token already used by this tool answers the first call's result again without
    writing, when its arguments are the same; with other arguments it fails with `rule_violation` (a
    conflict). Used tokens are records of `collection` (key `token` = `<tool>:<token>`, fields `tool`,
    `arguments_digest` and `result`), so they fork, hash and diff with the rest of the state.
    """

    arg: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    collection: str


class OperationDecl(SpecModel):
    """What one tool does to the state.

    - `create`: new record from arguments that are record fields (plus `assign`); key generated from the
      collection's counter unless `key_arg` supplies one.
    - `get` / `delete`: the record whose key is argument `key_arg`.
    - `update`: replace every non-key field with the arguments (with `keep_transitions`, state-machine fields
      the arguments leave out keep their values); `patch`: change only given fields.
    - `list`: filtered, sorted page of records.
    Requirements run before the write; the write, its effects and every constraint apply atomically.
    """

    kind: OperationKind
    collection: str
    key_arg: str | None = Field(default=None, description="argument holding the target key (a create: may be "
                                 "`member.property`, a property of an object argument, generation 2)")
    fields_from_args: bool = Field(
        default=True, description="copy arguments whose names are record fields into the record"
    )
    assign: dict[str, Expr] = Field(default_factory=dict, description="fields set from expressions")
    requires: list[RequirementDecl] = Field(default_factory=list)
    effects: list[Effect] = Field(default_factory=list)
    listing: ListDecl | None = Field(default=None, description="filters, sort and paging for `list`")
    # left out of the file when None, so environments compiled before it keep their content hashes
    envelope: EnvelopeDecl | None = Field(default=None, exclude_if=_no_envelope,
                                          description="the response's own wrapping of the result")
    # the two below are left out of the file at their defaults for the same reason (compiler generation 2)
    keep_transitions: bool = Field(
        default=False, exclude_if=_false, description="`update` only: keep the fields under a transition that "
        "the arguments do not name (moving a record's state is a transition of its own)")
    idempotency: IdempotencyDecl | None = Field(default=None, exclude_if=_absent,
                                                description="the argument holding an idempotency token")


class DeclarativeToolDecl(SpecModel):
    """A tool of a declarative environment as written by hand or by the compiler.

    `input_schema` is the JSON Schema of the arguments; the output schema, `effect` and `idempotent`
    are derived from the operation when the environment is compiled to an `EnvSpec`.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str
    input_schema: JSONObject
    operation: OperationDecl
    source: ToolSource | None = None


class DeclarativeModel(SpecModel):
    """The executable part of a declarative environment."""

    schema_version: Literal[1] = 1
    collections: dict[str, CollectionDecl]
    operations: dict[str, OperationDecl] = Field(description="tool name -> operation")


class DeclarativeEnvSource(SpecModel):
    """The hand-writable file format (`envfactory envs validate FILE`), compiled to an `EnvSpec`."""

    schema_version: Literal[1] = 1
    format: Literal["envfactory.declarative"] = "envfactory.declarative"
    meta: EnvMeta
    collections: dict[str, CollectionDecl]
    tools: list[DeclarativeToolDecl]


for _model in (
    LookupExpr, ArithExpr, SumExpr, CompareCond, PresenceCond, AllCond, AnyCond, NotCond,
    RequirementDecl, AdjustEffect, SetEffect, CreateEffect, OperationDecl, CollectionDecl, DeclarativeToolDecl,
    DeclarativeModel, DeclarativeEnvSource,
):
    _model.model_rebuild()
