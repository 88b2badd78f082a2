"""Reading field names and descriptions: which entity a field refers to and which attribute of it.

Contract:
- `words(name)` splits camelCase, PascalCase, acronyms, snake_case, kebab-case and dotted names into
  lowercase singular words: `KMSKeyArn` → (kms, key, arn), `iCalUID` → (i, cal, uid), `logGroups` →
  (log, group).
- An attribute is the kind of handle a value is (`id`, `arn`, `url`, `uri`, `name`, `token`, ...) or
  `value` when the name carries none. `Ref(entity, attribute)` says "the <attribute> of a <entity>".
- `name_ref` reads a name; `description_refs` reads prose ("The ARN or name of the secret",
  "Specify the key ID or key ARN", "Task list identifier", "Identifies the KMS key"), giving every
  (entity, attribute) pair the text says is accepted.
- `entities_compatible` decides whether two entity word tuples name the same kind of thing: equal
  when joined ("tasklist" = "task list"), or one is the tail of the other ("execution role" ⊇ "role")
  within a service, or across services when the extra words only qualify it.
Pure functions over strings; no state (the word tables are read-only mappings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from envfactory.spec import inflection

_CAMEL = re.compile(r"[A-Z]+\d*(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")

# The graph's reading of identifier words where it differs from `spec.inflection.singular` (which the
# build's names keep): handles in plural (`ids` → `id`, `apis` → `api`) are singular here, and a few
# words ending in `s` are not plurals.
_INVARIANT = frozenset({"alias", "always", "canvas", "cors", "https", "iops", "perhaps", "whereas"})
_IRREGULAR = MappingProxyType({"ids": "id", "uris": "uri", "settings": "setting", "apis": "api"})

# The last word of a name → the attribute class it denotes.
ATTRIBUTE_WORDS: MappingProxyType[str, str] = MappingProxyType({
    "id": "id", "identifier": "id", "uuid": "id", "uid": "id", "guid": "id", "sid": "id", "gid": "id",
    "arn": "arn",
    "url": "url", "link": "url", "href": "url", "uri": "uri",
    "name": "name",
    "token": "token", "handle": "handle", "etag": "etag",
    "digest": "digest", "hash": "digest", "checksum": "digest", "md5": "digest", "sha256": "digest",
    "email": "email", "emailaddress": "email",
    "phone": "phone", "phonenumber": "phone",
    "version": "version",
    "title": "title", "summary": "title", "label": "label",
    "body": "content", "content": "content", "text": "content", "payload": "content", "message": "content",
    "range": "range", "prefix": "prefix", "key": "key", "region": "region",
    "signature": "signature", "mac": "mac", "algorithm": "algorithm",
    "manifest": "manifest", "document": "document", "policy": "document",
    "status": "status", "state": "status", "type": "type", "kind": "type", "description": "description",
    "time": "time", "date": "time", "timestamp": "time", "count": "count", "size": "count", "total": "count",
    "number": "number",
})
# Attributes that identify something a system generated (never typed in by a user).
GENERATED = frozenset({"id", "arn", "url", "uri", "token", "handle", "etag", "digest", "signature", "mac"})
# Attributes whose values can point at another object (these make data-flow edges).
REFERENCE = frozenset({"id", "arn", "url", "uri", "name", "token", "handle", "email", "phone", "version", "key",
                       "prefix", "range", "region", "algorithm", "manifest", "signature", "mac", "label"})

# Entity words that say nothing about which entity (a field of these is resolved from its context).
GENERIC_ENTITY = frozenset({
    "resource", "item", "object", "entity", "target", "source", "destination", "value", "data", "result", "response",
    "request", "detail", "info", "summary", "config", "configuration", "metadata", "entry", "element", "record",
    "output", "input", "body", "list", "description", "spec", "specification", "attribute", "parameter", "field",
    "reference", "resourcearn", "it", "one", "this", "that", "such", "other",
})
# Product and service names that qualify an entity ("KMS key", "DynamoDB resource").
SERVICE_WORDS = frozenset({
    "lambda", "kms", "sqs", "sns", "iam", "s3", "aws", "amazon", "google", "cloudwatch", "dynamodb", "ecr", "gmail",
    "ses", "ec2",
})
# Generic words that still name a role something plays (a rule's targets, a filter's destination):
# kept when read, but an input naming only these takes any ARN (see `match`).
_ROLES = frozenset({"target", "source", "destination", "resource", "attribute", "parameter", "field", "reference",
                    "entity", "object"})
# Words that say nothing at all: a field read as one of these is resolved from its context.
_VAGUE = GENERIC_ENTITY - _ROLES

# Words that qualify an entity without changing its kind ("execution role" is a role).
QUALIFIERS = frozenset({
    "execution", "default", "source", "target", "destination", "primary", "new", "existing", "parent", "current",
    "previous", "next", "replica", "dead", "letter", "managed", "associated", "specified", "recurring", "shared",
    "linked", "ignore",
}) | SERVICE_WORDS
_CONTAINER_NOISE = frozenset({
    "metadata", "description", "detail", "summary", "list", "info", "configuration", "config", "result", "output",
    "response", "data", "set", "collection", "status", "properties", "property", "spec", "entry", "compact",
    "paged", "meta", "jo", "dto",
})
PAGINATION = frozenset({
    "nexttoken", "nextpagetoken", "pagetoken", "marker", "nextmarker", "continuationtoken", "nextcontinuationtoken",
    "startingtoken", "synctoken", "nextsynctoken", "maxresults", "maxitems", "limit", "pagesize", "maxkeys",
    "startafter", "lastevaluatedkey", "exclusivestartkey", "lastevaluatedtablename", "exclusivestarttablename",
    "nextkeymarker", "nextversionidmarker", "keymarker", "versionidmarker", "maxrecords", "resultsizeestimate",
})
_STOP = frozenset({
    "the", "a", "an", "of", "or", "and", "to", "for", "from", "in", "on", "with", "by", "its", "your", "their",
    "this", "that", "which", "whose", "you", "is", "are", "be", "use", "specify", "enter", "unique", "valid",
    "partial", "full", "same", "different", "each", "any", "all", "one", "more", "following", "optional",
    "required", "given", "specific", "specified", "existing", "new", "friendly", "immutable", "opaque", "api",
    "also", "can", "provide", "when", "if", "as", "at", "such", "e", "g", "eg", "ie", "i",
})


_CALLER_CHOSEN = re.compile(
    r"memorable|unique within (?:a|the) request|to communicate the result|idempoten|client token|"
    r"such as a random uuid|a random uuid|that you choose|you assign|you define|caller-provided|chosen by the caller"
)
_CALLER_NAMES = frozenset({"clienttoken", "clientrequesttoken", "idempotencytoken", "requestid", "clientrequestid"})


def caller_chosen(name: str, description: str) -> bool:
    """An identifier the caller makes up (batch entry ids, client tokens), not a reference to anything."""
    return compact(words(name)) in _CALLER_NAMES or bool(_CALLER_CHOSEN.search(description.lower()[:600]))


def singular(word: str) -> str:
    """A lower-case word's singular as the graph reads identifiers: `_IRREGULAR` and `_INVARIANT` first,
    words ending in `ics`/`sis` as they are, else `spec.inflection.singular`."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _INVARIANT or word.endswith(("ics", "sis")):
        return word
    return inflection.singular(word)


def words(name: str) -> tuple[str, ...]:
    """Lowercase singular words of an identifier (see the module docstring)."""
    out: list[str] = []
    for part in _SEPARATORS.split(name):
        if not part:
            continue
        for token in _CAMEL.findall(part):
            out.append(singular(token.lower()))
    return tuple(out)


def compact(tokens: tuple[str, ...]) -> str:
    """Words joined without separators (`(task, list)` -> `tasklist`)."""
    return "".join(tokens)


@dataclass(frozen=True, slots=True)
class Ref:
    """`attribute` of an `entity` (entity words may be empty when the text does not say)."""

    entity: tuple[str, ...]
    attribute: str

    @property
    def key(self) -> str:
        """The entity words joined into one comparable key (`compact`)."""
        return compact(self.entity)


def _strip_entity(tokens: tuple[str, ...]) -> tuple[str, ...]:
    kept = tuple(t for t in tokens if t not in _STOP and not t.isdigit())
    return kept


_PROSE_NOISE = frozenset({
    "retrieve", "call", "see", "obtain", "return", "identify", "identifie", "specify", "get", "find", "use", "using",
    "via", "like", "called", "named", "supported", "currently", "only", "must", "may", "amazon", "resource",
    "delete", "create", "update", "describe", "remove", "add", "modify", "change", "set", "recommend", "complete",
    "rather", "than", "we", "instead", "either", "both", "whole", "entire", "actual", "corresponding",
    "globally", "universally", "created", "generated", "character", "digit", "byte",  # "the created resource"
})


_PURE_ATTRIBUTES = frozenset({"id", "identifier", "arn", "url", "uri", "name", "uuid", "uid", "guid", "link", "href"})


def _prose_entity(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Entity words read from prose: no stop words, prose verbs, attribute words or single letters."""
    return tuple(t for t in _strip_entity(tokens)
                 if len(t) > 1 and t not in _PROSE_NOISE and t not in _PURE_ATTRIBUTES)


def name_ref(name: str) -> Ref:
    """Read `(entity, attribute)` from a field name alone: `TopicArn` → (topic, arn); `tasklist` →
    (tasklist, value); `MD5OfMessageBody` → (message body, digest); `id` → ((), id)."""
    tokens = words(name)
    if not tokens:
        return Ref((), "value")
    if "of" in tokens[1:]:
        cut = tokens.index("of", 1)
        head, tail = tokens[:cut], tokens[cut + 1:]
        attr = ATTRIBUTE_WORDS.get(compact(head), ATTRIBUTE_WORDS.get(head[-1], "value"))
        return Ref(_strip_entity(tail), attr)
    joined2 = compact(tokens[-2:]) if len(tokens) >= 2 else ""
    if joined2 in ("emailaddress", "phonenumber"):
        return Ref(_strip_entity(tokens[:-2]), ATTRIBUTE_WORDS[joined2])
    last = tokens[-1]
    if last in ATTRIBUTE_WORDS:
        entity = _strip_entity(tokens[:-1])
        if not entity and tokens[:-1] and ATTRIBUTE_WORDS[last] in ("key", "token"):
            entity = tokens[:-1]  # `apiKey`: a credential, not the key of the resource in context
        return Ref(entity, ATTRIBUTE_WORDS[last])
    return Ref(_strip_entity(tokens), "value")


_GLUED_ID = re.compile(r"^[a-z]{3,}id$")
_ID_PROSE = re.compile(r"\bids?\b|\bidentifier", re.IGNORECASE)


def glued_id(name: str, description: str) -> Ref | None:
    """An all-lowercase name with `id` glued on (`listid`, `contactid`) whose description speaks of an ID:
    the id of that entity."""
    if not _GLUED_ID.match(name) or not _ID_PROSE.search(description[:300]):
        return None
    entity = _strip_entity((singular(name[:-2]),))
    return Ref(entity, "id") if entity else None


# Where an identifier belongs to another system: `external_app_user_id`, `remoteId`, "an ID used to associate the
# customer profile with an entity in another system". Such a value is typed `foreign` and feeds nothing.
_FOREIGN_WORDS = frozenset({"external", "remote"})
_FOREIGN_PROSE = re.compile(r"\b(?:in|from|of) (?:an(?:other)?|the) (?:external|other|another|third[- ]party) system|"
                            r"\bin another system\b|\bexternal system\b")


def foreign_reference(name: str, description: str) -> bool:
    """An identifier issued by some other system (see `_FOREIGN_WORDS`), which no input of this one takes."""
    tokens = words(name)
    return bool(tokens and tokens[0] in _FOREIGN_WORDS) or bool(_FOREIGN_PROSE.search(description.lower()[:400]))


# Pagination cursors: an output that hands back the next page's position, and an input that takes it. A list
# operation's cursor output feeds its own cursor input (the one self-edge the graph has).
_CURSOR_OUTPUTS = frozenset({"cursor", "nextcursor", "nexttoken", "nextpagetoken", "nextmarker", "nextpagecursor",
                             "nextcontinuationtoken", "nextpage", "nextoffset", "nextsynctoken"})
_CURSOR_INPUTS = frozenset({"cursor", "nexttoken", "nextpagetoken", "pagetoken", "marker", "startingtoken",
                            "continuationtoken", "after", "startcursor", "pagecursor", "synctoken", "offset"})


def cursor_output(path: str) -> bool:
    """A next-page position in a list operation's output: `cursor`, `NextToken`, `meta.cursors.next`, ..."""
    segments = [compact(words(s.removesuffix("[]"))) for s in path.split(".")]
    last = segments[-1]
    if last in _CURSOR_OUTPUTS:
        return True
    return (last == "next" and any("cursor" in s for s in segments[:-1])) or (last == "offset" and "nextpage" in segments)


def cursor_input(name: str) -> bool:
    """An input that takes a next-page position (`cursor`, `pageToken`, `marker`, an offset token)."""
    return compact(words(name)) in _CURSOR_INPUTS


_MENTION = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def mentioned_fields(description: str) -> frozenset[str]:
    """Field names a description quotes in backticks ("Can also be the `unique_name` of the Conversation")."""
    return frozenset(_MENTION.findall(description[:700]))


_ATTR_PHRASE = r"(?:key id|key arn|id|ids|identifier|identifiers|arn|arns|amazon resource name(?:s)?(?: \(arns?\))?|name|names|url|urls|uri|email address|email)"
_PATTERN_OF = re.compile(
    rf"\b((?:{_ATTR_PHRASE})(?:\s*(?:,|or|and|and/or)\s*(?:the\s+)?(?:{_ATTR_PHRASE}))*)\s+(?:of|for|that identifies|associated with|identifying)\s+"
    r"(?:the\s+|an?\s+|this\s+|your\s+|each\s+)?([a-z0-9' -]{2,80})"
)
_PATTERN_IDENTIFIES = re.compile(r"\b(?:identifies|specifies|names)\s+(?:the|an?)\s+([a-z0-9' -]{2,60})")
_PATTERN_SUFFIX = re.compile(rf"\b((?:[a-z][a-z0-9]*\s+){{1,3}})({_ATTR_PHRASE})\b")
_ENTITY_STOP = re.compile(
    r"\b(?:that|which|whose|to|for|from|in|on|with|where|when|you|is|are|was|were|will|must|should|can|"
    r"containing|associated|used|using|being|as|by|and|or|if|whom|who|within|inside|under|across|between|per|"
    r"at|into|about|after|before|whose)\b|[.,;:()]"
)


def _attr_of(phrase: str) -> list[str]:
    found: list[str] = []
    for part in re.split(r"\s*(?:,|\bor\b|\band\b|and/or)\s*", phrase):
        part = part.strip().removeprefix("the ").strip()
        if not part:
            continue
        if part.startswith(("amazon resource name", "arn")) or part.endswith("arn"):
            found.append("arn")
        elif part.startswith("email"):
            found.append("email")
        elif part.endswith(("id", "ids", "identifier", "identifiers")):
            found.append("id")
        elif part.startswith("name"):
            found.append("name")
        elif part.startswith(("url", "uri")):
            found.append("url" if part.startswith("url") else "uri")
    return found


def _entity_phrase(text: str) -> tuple[str, ...]:
    text = text.strip()
    stop = _ENTITY_STOP.search(text)
    if stop:
        text = text[: stop.start()]
    if "'s " in text:
        text = text.rsplit("'s ", 1)[1]
    tokens = tuple(singular(w) for w in re.findall(r"[a-z0-9]+", text)[:4])
    return _prose_entity(tokens)


def _entity_alternatives(text: str) -> tuple[tuple[str, ...], ...]:
    """The entities of "the ID of the file or shared drive": the first, and the one after `or` when nothing
    else ends the phrase before it."""
    first = _entity_phrase(text)
    head, sep, tail = text.partition(" or ")
    if not sep or _ENTITY_STOP.search(head):
        return (first,)
    second = _entity_phrase(re.sub(r"^(?:the|an?)\s+", "", tail.strip()))
    return (first, second) if second and second != first else (first,)


_NOTATION = re.compile(r"\b([a-z][a-z0-9]*) notation\b")


def notations(description: str) -> frozenset[str]:
    """The notations a description says its value is written in ("in A1 notation" → {a1})."""
    return frozenset(_NOTATION.findall(description.lower()[:700]))


def alternative_refs(description: str) -> tuple[Ref, ...]:
    """The references a description offers as an alternative to its first entity ("the ID of the file or
    shared drive" → shared drive id): an input named after the first takes these too."""
    text = description.lower()[:700].replace("\n", " ")
    found: list[Ref] = []
    for match in _PATTERN_OF.finditer(text):
        for entity in _entity_alternatives(match.group(2))[1:]:
            if not set(entity) <= _VAGUE:
                found.extend(Ref(entity, attr) for attr in _attr_of(match.group(1)))
    return tuple(found)


def description_refs(description: str) -> tuple[Ref, ...]:
    """Every (entity, attribute) the prose says the value is (see the module docstring)."""
    text = description.lower()[:700].replace("\n", " ")
    plain = text.replace("'s ", " ")
    found: list[Ref] = []
    for match in _PATTERN_OF.finditer(text):
        for entity in _entity_alternatives(match.group(2)):
            if entity and not set(entity) <= _VAGUE:
                for attr in _attr_of(match.group(1)):
                    found.append(Ref(entity, attr))
    for match in _PATTERN_IDENTIFIES.finditer(text[:200]):
        entity = _entity_phrase(match.group(1))
        if entity and not set(entity) <= _VAGUE:
            found.append(Ref(entity, "id"))
    for match in _PATTERN_SUFFIX.finditer(plain):
        entity = _prose_entity(tuple(singular(w) for w in match.group(1).split()))
        if entity and not set(entity) <= _VAGUE:
            for attr in _attr_of(match.group(2)):
                found.append(Ref(entity, attr))
    unique: dict[tuple[tuple[str, ...], str], Ref] = {}
    for ref in found:
        unique.setdefault((ref.entity, ref.attribute), ref)
    return tuple(unique.values())


def container_entity(name: str) -> tuple[str, ...]:
    """The entity a container field names: `KeyMetadata` → (key,), `BackupSummaries` → (backup,),
    `logGroups` → (log, group); empty for generic containers (`Configuration`, `items`)."""
    tokens = words(name)
    if "with" in tokens[1:]:  # `EntityIdWithTime`, `PagedListResponseWithTime`: what comes before "with"
        tokens = tokens[: tokens.index("with", 1)]
    while tokens and tokens[-1] in _CONTAINER_NOISE:
        tokens = tokens[:-1]
    if tokens and tokens[-1] in _ID_WORDS:  # `UnifiedId`: the shape of an id, not a resource
        return ()
    tokens = _strip_entity(tokens)
    if not tokens or set(tokens) <= _VAGUE:
        return ()
    return tokens


_ID_WORDS = frozenset({"id", "ids", "identifier", "identifiers"})


def definition_subject(name: str) -> tuple[str, ...]:
    """The entity an operation's response definition is about: `container_entity` without the leading
    verbs of a response wrapper (`GetTicketResponse` → (ticket,), `CreateCommentResponse` → (comment,))."""
    tokens = container_entity(name)
    while len(tokens) > 1 and tokens[0] in _VERBS:
        tokens = tokens[1:]
    return tokens


_VERBS = frozenset({
    "create", "get", "describe", "list", "delete", "update", "put", "start", "stop", "cancel", "add", "remove",
    "tag", "untag", "batch", "associate", "disassociate", "enable", "disable", "set", "send", "receive",
    "publish", "subscribe", "unsubscribe", "confirm", "attach", "detach", "import", "export", "restore", "rotate",
    "replicate", "register", "deregister", "modify", "change", "purge", "insert", "patch", "move", "clear", "watch",
    "search", "query", "scan", "find", "fetch", "read", "write", "upload", "download", "copy", "run", "invoke",
    "execute", "generate", "test", "validate", "verify", "check", "reset", "schedule", "initiate", "complete",
    "open", "close", "pay", "ship", "deliver", "refund", "archive", "assign", "top", "up", "respond", "reschedule",
    "trash", "untrash", "empty", "hide", "unhide", "approve", "decline", "resolve", "reassign", "comment",
    "transfer", "ownership", "quick", "instances", "by", "for", "all", "new", "my", "retrieve", "call", "see",
    "obtain", "return", "identify", "identifies", "specify", "show",
})


_METHOD_PATH = re.compile(r"^(?:get|post|put|patch|delete|head|options)-(/.*)$", re.IGNORECASE)


def operation_entity(operation: str) -> tuple[str, ...]:
    """The entity an operation acts on: `CreateQueue` → (queue,), `tasks.tasklists.insert` → (tasklist,),
    `get_order` → (order,), `ListDeadLetterSourceQueues` → (dead, letter, source, queue); an operation named
    by its method and path (`POST-/contacts/lists`, `DELETE-/contacts/{contactid}`) acts on the last literal
    segment, with the literal segment right before it (contact list; contact); words from "by" on name a
    lookup key, not the entity (`getUserById` → (user,))."""
    by_path = _METHOD_PATH.match(operation)
    if by_path:
        segments = [p for p in by_path.group(1).split("/") if p and not re.fullmatch(r"v\d+|api", p)]
        last = max((n for n, p in enumerate(segments) if not p.startswith("{")), default=-1)
        if last >= 0:
            first = last - 1 if last >= 1 and not segments[last - 1].startswith("{") else last
            return _strip_entity(tuple(t for p in segments[first:last + 1] for t in words(p)))
    if operation.count(".") >= 2:  # Google-style method ids: service.resource[.sub].method
        parts = [p for p in operation.split(".") if p]
        if len(parts) >= 2:
            return words(parts[-2])[-2:] if words(parts[-2]) else ()
    named = words(operation)
    if "by" in named[1:]:  # `getUserById`, `listDevicesByOwner`: the entity comes before "by"
        named = named[: named.index("by", 1)]
    tokens = [t for t in named if t not in _VERBS]
    return _strip_entity(tuple(tokens))


# Short forms that name the same thing as the long form (`config property` = "configuration property").
_ABBREVIATIONS = MappingProxyType({"config": "configuration", "repo": "repository", "org": "organization",
                                   "env": "environment", "info": "information", "dir": "directory"})


def lookup_entity(operation: str) -> tuple[str, ...]:
    """The entity whose identifier an operation's bare inputs (`id`) take when its name says what it looks
    up "for" (`getSectionsForSchool` → (school,), `getStudentForContact` → (contact,)); empty otherwise."""
    if _METHOD_PATH.match(operation) or operation.count(".") >= 2:
        return ()
    named = words(operation)
    if "for" not in named[1:]:
        return ()
    after = named[named.index("for", 1) + 1:]
    if "by" in after:
        after = after[: after.index("by")]
    entity = _strip_entity(tuple(t for t in after if t not in _VERBS))
    return entity if not set(entity) <= GENERIC_ENTITY | QUALIFIERS else ()  # `ListTagsForResource`: no entity


def entities_compatible(a: tuple[str, ...], b: tuple[str, ...], *, same_service: bool) -> float:
    """1.0 when `a` and `b` name the same entity (a short form of a word as the word itself), 0.75 for a
    qualified match, 0.0 otherwise."""
    if not a or not b:
        return 0.0
    a = tuple(_ABBREVIATIONS.get(t, t) for t in a)
    b = tuple(_ABBREVIATIONS.get(t, t) for t in b)
    if compact(a) == compact(b):
        return 1.0
    short, long = (a, b) if len(a) < len(b) else (b, a)
    acronym = short[0][:-1] if len(short) == 1 and len(short[0]) > 2 and short[0].endswith("s") else short[0]
    if len(short) == 1 and 2 <= len(acronym) <= 4 and len(long) >= len(acronym):
        spelled = long[-len(acronym):]  # an acronym: `vm` (`vms`) for "(base) virtual machine"
        if "".join(t[0] for t in spelled) == acronym:
            if spelled == long:
                return 1.0
            short = spelled
    if len(short) == len(long):
        return 0.0
    if long[-len(short):] == short:
        extra = long[: len(long) - len(short)]
        if same_service or set(extra) <= QUALIFIERS:
            return 0.75
    return 0.0


def attributes_compatible(out_attr: str, in_attr: str) -> bool:
    """Whether an output attribute can fill an input asking for another one (today: only the same
    attribute)."""
    return out_attr == in_attr
