"""What each API operation does to which resource: the analysis propose and compile share.

Contract:
- `shape_of(op)` classifies one operation by the conventions of its provider: AWS names (verb + noun:
  `CreateQueue`, `GetQueueAttributes`), Google discovery method ids (`tasks.tasklists.insert`) with
  their paths, and for everything else the HTTP method and path (`POST /customers/{id}/orders`), with
  the name's verb as a fallback when there is no usable path. Roles: create, read, list, update,
  delete, or action (anything that is not CRUD on a record).
- `group_operations(ops)` groups one service's operations by the resource they act on, finds each
  group's key (the argument naming one record) and its parent groups (path nesting, or a create that
  requires another group's key), deterministically: same operations in, same groups out.
- Actions carry their verb (`OperationShape.verb`: `start` for `StartDBCluster`, `cancel` for
  `POST /orders/{id}/cancel` or `jobs.cancel`) and, when they name one record, its `item_param`.
  A path action whose last segment is a status verb of `STATUS_VERBS` after a record parameter
  (`POST|PUT /orders/{order_id}/cancel`) acts on the record's resource (`orders`), not on a
  resource of its own. `STATUS_VERBS` maps each verb to the status values it leads to, most
  specific first; the compiler turns such actions into status transitions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from envfactory.build.naming import camel_words, collection_name, words
from envfactory.spec import Operation
from envfactory.spec.build import OperationRole
from envfactory.spec.inflection import singular
from envfactory.spec.schema_tools import json_type, object_properties

_CREATE = frozenset({"create", "put", "add", "register", "verify", "send", "insert", "post", "new"})
_READ = frozenset({"get", "describe", "read", "fetch", "show", "retrieve", "lookup", "view"})
_LIST = frozenset({"list", "search", "find", "query", "browse"})
_UPDATE = frozenset({"update", "set", "modify", "change", "edit", "patch", "replace", "rename"})
_DELETE = frozenset({"delete", "remove", "deregister", "unregister", "destroy", "drop"})
_ATTRIBUTE_WORDS = frozenset({
    "attribute", "attributes", "url", "arn", "detail", "details", "info", "metadata", "configuration",
    "config", "settings", "setting", "status", "state", "properties", "options",
})
_GOOGLE_ROLES: dict[str, OperationRole] = {
    "insert": "create", "create": "create", "get": "read", "list": "list", "update": "update",
    "patch": "update", "delete": "delete",
}
STATUS_VERBS: dict[str, tuple[str, ...]] = {
    "start": ("started", "running", "active", "in_progress"),
    "stop": ("stopped", "inactive", "idle"),
    "enable": ("enabled", "active"),
    "disable": ("disabled", "inactive"),
    "cancel": ("cancelled", "canceled"),
    "archive": ("archived",),
    "unarchive": ("active", "unarchived"),
    "restore": ("active", "restored", "available", "enabled"),
    "close": ("closed",),
    "open": ("open", "opened"),
    "reopen": ("open", "reopened", "opened"),
    "publish": ("published", "live"),
    "unpublish": ("unpublished", "draft"),
    "approve": ("approved",),
    "reject": ("rejected", "declined"),
    "decline": ("declined", "rejected"),
    "activate": ("active", "activated", "enabled"),
    "deactivate": ("inactive", "deactivated", "not_activated", "disabled"),
    "suspend": ("suspended",),
    "resume": ("active", "running", "resumed"),
    "lock": ("locked",),
    "unlock": ("unlocked",),
    "complete": ("completed", "complete", "done", "finished"),
    "finish": ("finished", "completed", "complete", "done"),
    "accept": ("accepted", "approved", "active"),
    "pause": ("paused",),
    "revoke": ("revoked",),
    "expire": ("expired",),
    "void": ("voided", "void"),
    "submit": ("submitted",),
    "confirm": ("confirmed",),
    "retire": ("retired",),
    "deprecate": ("deprecated",),
    "block": ("blocked",),
    "unblock": ("unblocked", "active"),
    "terminate": ("terminated",),
    "resolve": ("resolved",),
    "dismiss": ("dismissed",),
    "hold": ("on_hold", "held"),
    "release": ("released",),
}
_KEY_SUFFIXES = ("Url", "Name", "Id", "Arn", "Key", "Identity", "Address", "ID", "Identifier")
_PARAM = re.compile(r"^\{([^{}]+)\}$")
_CUSTOM_METHOD = re.compile(r"^\{([^{}]+)\}:[A-Za-z]+$")


@dataclass(frozen=True, slots=True)
class OperationShape:
    """One operation's role on one resource, as far as its name, method and path tell."""

    operation: Operation
    style: str  # aws | google | path | name
    noun: str  # the resource noun (AWS, names) or the path chain (`customers/orders`) it acts on
    role: OperationRole
    item_param: str | None = None  # path parameter naming the target record
    path_params: tuple[str, ...] = ()
    partial: bool = False  # an update that changes only the fields given (PATCH, AWS Set/Update)
    note: str = ""
    verb: str = ""  # lower-case verb of an action (`start`, `cancel`)


@dataclass(slots=True)
class ResourceGroup:
    """The operations of one service that act on one resource."""

    noun: str
    style: str
    shapes: list[OperationShape] = field(default_factory=list)
    key_member: str | None = None  # the argument naming one record (`QueueUrl`, `tasklist`, `id`)
    parents: list[tuple[str, str]] = field(default_factory=list)  # (parent noun, argument carrying its key)
    related: list[str] = field(default_factory=list)  # nouns of groups a create field is named after

    @property
    def collection(self) -> str:
        """The collection name of the group's records: the plural of the noun's last segment."""
        last = self.noun.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
        return collection_name(last)

    @property
    def roles(self) -> set[str]:
        """The roles of the group's operations (`create`, `read`, `list`, ...)."""
        return {s.role for s in self.shapes}

    @property
    def stateful(self) -> bool:
        """True when the group can create a record and read or list it back."""
        return "create" in self.roles and bool(self.roles & {"read", "list"})


def provider_style(op: Operation) -> str:
    """How an operation names its resource: `aws` or `google` by provider, `path` for an HTTP operation
    with a path, else `name` (read from the operation name)."""
    if op.provider == "aws":
        return "aws"
    if op.provider == "google":
        return "google"
    path = op.http_path or ""
    if op.http_method and path.strip("/"):
        return "path"
    return "name"


def verb_role(verb: str) -> OperationRole:
    """The CRUD role a leading verb gives an operation (`create`, `read`, `list`, `update`, `delete`), or
    `action`."""
    if verb in _CREATE:
        return "create"
    if verb in _READ:
        return "read"
    if verb in _LIST:
        return "list"
    if verb in _UPDATE:
        return "update"
    if verb in _DELETE:
        return "delete"
    return "action"


def shape_of(op: Operation) -> OperationShape:
    """The resource and role of one operation, read the way its `provider_style` names things."""
    style = provider_style(op)
    if style == "google":
        return _google_shape(op)
    if style == "path":
        return _path_shape(op)
    return _name_shape(op, style)


def _name_shape(op: Operation, style: str) -> OperationShape:
    parts = camel_words(op.name)
    if not parts:
        return OperationShape(op, style, "", "action", note="operation name has no words")
    verb = parts[0].lower()
    noun_words = parts[1:] or ["Item"]
    last = noun_words[-1]
    is_plural = singular(last) != last and last.lower() not in _ATTRIBUTE_WORDS
    noun = "".join(noun_words[:-1]) + (singular(last) if last.lower() not in _ATTRIBUTE_WORDS else last)
    role = verb_role(verb)
    if role == "read" and is_plural:
        role = "list"
    note = "" if role != "action" else f"verb {parts[0]!r} is not create/read/list/update/delete"
    if last.lower() == "batch" and role != "action":
        role, note = "action", "batch operation over several records"
    partial = role == "update"
    return OperationShape(op, style, noun, role, partial=partial, note=note, verb=verb if role == "action" else "")


def _path_segments(path: str) -> list[str]:
    return [s for s in path.split("?")[0].strip("/").split("/") if s]


def _google_shape(op: Operation) -> OperationShape:
    parts = op.name.split(".")
    method = parts[-1] if parts else ""
    chain = parts[1:-1] if len(parts) > 2 else parts[:-1]
    noun = ".".join(chain) or op.name
    segments = _path_segments(op.http_path or "")
    # `{+name}` is reserved expansion of the parameter `name` (RFC 6570), not a parameter `+name`
    params = tuple(m.group(1).lstrip("+") for s in segments if (m := _PARAM.match(s)))
    role = _GOOGLE_ROLES.get(method, "action")
    item = params[-1] if role in ("read", "update", "delete") and params else None
    note = "" if role != "action" else f"method {method!r} is not insert/get/list/update/patch/delete"
    verb = ""
    if role == "action":
        verb = words(method)[0] if words(method) else ""
        # `…/{postId}/publish` or a custom method `v1/{+name}:cancel` names the record acted on
        last = segments[-1] if segments else ""
        custom = _CUSTOM_METHOD.match(last)
        if custom is not None:
            item = custom.group(1).lstrip("+")
        elif len(segments) >= 2 and _PARAM.match(segments[-2]) and not _PARAM.match(last) and params:
            item = params[-1]
    return OperationShape(op, "google", noun, role, item, params, partial=method == "patch", note=note, verb=verb)


def _path_shape(op: Operation) -> OperationShape:
    segments = _path_segments(op.http_path or "")
    params = tuple(m.group(1) for s in segments if (m := _PARAM.match(s)))
    literals = [s for s in segments if not _PARAM.match(s)]
    chain = "/".join(literals) or "/"
    item_level = bool(segments) and bool(_PARAM.match(segments[-1]))
    method = (op.http_method or "").upper()
    name_words = words(op.name)
    role: str
    if item_level:
        role = {"GET": "read", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(method, "action")
        if method == "POST" and name_words and verb_role(name_words[0]) == "update":
            role = "update"
    else:
        role = {"GET": "list", "POST": "create"}.get(method, "action")
        if role == "create" and name_words and verb_role(name_words[0]) in ("list", "read"):
            role = "action"  # POST /search and friends read, they do not create
        after_param = len(segments) >= 2 and bool(_PARAM.match(segments[-2]))
        if role == "create" and after_param and singular(segments[-1]) == segments[-1]:
            role = "action"  # POST /orders/{id}/cancel: a verb on a record, not a new collection
    item = params[-1] if item_level and params else None
    note = "" if role != "action" else f"{method} {op.http_path} is not CRUD on a collection"
    verb = ""
    if role == "action" and len(segments) >= 2 and _PARAM.match(segments[-2]) and len(literals) >= 2:
        verb = segments[-1].lower()
        if method in ("POST", "PUT", "PATCH") and verb in STATUS_VERBS:
            # POST /orders/{order_id}/cancel: a status verb on one order
            chain, item = "/".join(literals[:-1]), params[-1]
    partial = method == "PATCH" or (method == "POST" and role == "update")
    return OperationShape(op, "path", chain, _role(role), item, params, partial=partial, note=note, verb=verb)


def _role(name: str) -> OperationRole:
    return verb_role(name) if name not in ("read", "list", "action") else name  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------------------------------


def group_operations(ops: Sequence[Operation]) -> list[ResourceGroup]:
    """Group one service's operations by resource (see the module doc); groups sorted by noun."""
    shapes = [shape_of(op) for op in sorted(ops, key=lambda o: o.id)]
    shapes = [s for s in shapes if s.noun]
    by_noun: dict[str, ResourceGroup] = {}
    aws_like = [s for s in shapes if s.style in ("aws", "name")]
    assigned = _merge_names(aws_like)
    for i, shape in enumerate(shapes):
        noun = assigned.get(shape.operation.id, shape.noun)
        if noun != shape.noun and not shape.noun.endswith(noun):
            shapes[i] = shape = _as_attribute_operation(shape)
        group = by_noun.setdefault(noun, ResourceGroup(noun=noun, style=shape.style))
        group.shapes.append(shape)
    groups = [by_noun[n] for n in sorted(by_noun)]
    for group in groups:
        group.key_member = _key_member(group)
    owned = {g.key_member: g for g in groups if g.key_member and _owns(g, g.key_member)}
    for group in groups:  # a key another resource is named by is that resource's, not this one's
        owner = owned.get(group.key_member or "")
        if owner is not None and owner is not group:
            group.key_member = _key_member(group, exclude=frozenset({group.key_member or ""}))
    _link(groups)
    return groups


def _as_attribute_operation(shape: OperationShape) -> OperationShape:
    """An operation on an attribute of a record (`SetQueueAttributes`, `PutConfigurationSetDeliveryOptions`):
    writing it changes the record, deleting or listing it is not CRUD on the record."""
    if shape.role in ("create", "update"):
        return replace(shape, role="update", partial=True)
    if shape.role in ("delete", "list"):
        return replace(shape, role="action", note="changes an attribute of a record, not the record")
    return shape


def _merge_names(shapes: Sequence[OperationShape]) -> dict[str, str]:
    """AWS-style nouns: `QueueAttributes` joins `Queue`; a create on `EmailIdentity` joins `Identity`
    when `Identity` is listed or deleted."""
    nouns = {s.noun for s in shapes}
    listed = {s.noun for s in shapes if s.role in ("list", "delete")}
    out: dict[str, str] = {}
    for shape in shapes:
        parts = camel_words(shape.noun)
        target = shape.noun
        for cut in range(len(parts) - 1, 0, -1):
            head, tail = "".join(parts[:cut]), parts[cut:]
            if head in nouns and tail[-1].lower() in _ATTRIBUTE_WORDS:
                target = head
                break
        if target == shape.noun and shape.role == "create" and shape.noun not in listed:
            for cut in range(1, len(parts)):
                tail_noun = "".join(parts[cut:])
                if tail_noun in listed:
                    target = tail_noun
                    break
        out[shape.operation.id] = target
    return out


def _is_required_string(schema: dict[str, Any], member: str) -> bool:
    props = object_properties(schema)
    sub = props.get(member)
    return isinstance(sub, dict) and json_type(sub) in ("string", None) and member in schema.get("required", [])


def _owns(group: ResourceGroup, member: str) -> bool:
    noun_words = camel_words(group.noun)
    last = noun_words[-1] if noun_words else ""
    return member in {group.noun, last} | {group.noun + s for s in _KEY_SUFFIXES} | {last + s for s in _KEY_SUFFIXES}


def _key_member(group: ResourceGroup, exclude: frozenset[str] = frozenset()) -> str | None:
    items = [s.item_param for s in group.shapes if s.item_param and s.role != "action"]
    if items:
        return Counter(items).most_common(1)[0][0]
    if group.style not in ("aws", "name"):
        return None
    noun_words = camel_words(group.noun)
    last = noun_words[-1] if noun_words else ""
    own = {group.noun + s for s in _KEY_SUFFIXES} | {last + s for s in _KEY_SUFFIXES}
    for shape in group.shapes:
        if shape.role == "create":
            produced = sorted(set(object_properties(shape.operation.output_schema)) & own)
            if produced:
                return produced[0]
    targeted = [s for s in group.shapes if s.role in ("read", "update", "delete")]
    counts: Counter[str] = Counter()
    for shape in targeted:
        schema = shape.operation.input_schema
        for member in object_properties(schema):
            if _is_required_string(schema, member) and member not in exclude:
                counts[member] += 1
    if not counts:
        return None

    def preference(member: str) -> tuple[int, int, str]:
        if _owns(group, member):
            rank = 0
        elif member.startswith(last) and member.endswith(_KEY_SUFFIXES):
            rank = 1
        elif member.endswith(_KEY_SUFFIXES):
            rank = 2
        else:
            rank = 3
        return (rank, -counts[member], member)

    return min(counts, key=preference)


def _link(groups: list[ResourceGroup]) -> None:
    by_item = {g.key_member: g for g in groups if g.key_member and g.style == "google"}
    by_chain = {g.noun: g for g in groups if g.style == "path"}
    aws_keys = {g.key_member: g for g in groups if g.key_member and g.style in ("aws", "name")}
    for group in groups:
        parents: dict[str, str] = {}
        for shape in group.shapes:
            if group.style == "google":
                for param in shape.path_params:
                    parent = by_item.get(param)
                    if parent is not None and parent is not group and param != group.key_member:
                        parents.setdefault(parent.noun, param)
            elif group.style == "path":
                segments = _path_segments(shape.operation.http_path or "")
                literals: list[str] = []
                for i, seg in enumerate(segments):
                    match = _PARAM.match(seg)
                    if match is None:
                        literals.append(seg)
                        continue
                    chain = "/".join(literals)
                    parent = by_chain.get(chain)
                    if parent is not None and parent is not group and i < len(segments) - 1:
                        parents.setdefault(parent.noun, match.group(1))
            elif shape.role == "create":
                schema = shape.operation.input_schema
                for member in object_properties(schema):
                    parent = aws_keys.get(member)
                    if (parent is not None and parent is not group and member != group.key_member
                            and _is_required_string(schema, member)):
                        parents.setdefault(parent.noun, member)
        group.parents = sorted(parents.items())
        group.related = _named_links(group, groups)


def _named_links(group: ResourceGroup, groups: list[ResourceGroup]) -> list[str]:
    """Groups a create's body field is named after (`customer_id` → customers), for grouping only."""
    fields: set[str] = set()
    for shape in group.shapes:
        if shape.role == "create":
            props = object_properties(shape.operation.input_schema)
            body = props.get("body")
            fields |= {f.lower().replace("_", "") for f in (*props, *object_properties(body if isinstance(body, dict) else None))}
    related = []
    for other in groups:
        if other is not group:
            stem = singular(other.collection.rsplit("_", 1)[-1]) if other.collection else ""
            full = singular(other.collection).replace("_", "")
            if stem and ({f"{full}id", f"{stem}id"} & fields) and (other.key_member or other.style == "path"):
                related.append(other.noun)
    return sorted(related)
