"""Realistic fake values for seed records, drawn from Faker and chosen by a field's name, format and
description.

Contract:
- `FakeValues(env_name, slug_names=...)` makes values for one environment; `record(collection, i)`
  gives the `RecordFaker` of the i-th record of a collection. Its values are a pure function of
  (environment name, collection, i, field name, schema) and the installed Faker version (pinned in
  `pyproject.toml`): the same inputs always give the same value, and two environments give different
  people, companies and texts (the generator is seeded with the environment's name).
- A record has one persona (a person, a company and its domain): its name, email, username and URLs
  agree with each other, as in a real account.
- `RecordFaker.value(field, schema)` returns a value of the schema's type, or None when it cannot
  make one (an unsupported shape). Values are not validated here (`build.seeds_faker` checks each against
  the field's schema, and tries `RecordFaker.alternatives` for constrained strings).
- Enum and state values are chosen by the caller (`build.seeds_faker`), which rotates through all of them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faker import Faker

from envfactory.build.naming import snake
from envfactory.spec.inflection import singular
from envfactory.spec.schema_tools import json_type, object_properties

_EPOCH = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
_SPAN_SECONDS = 540 * 24 * 3600  # values fall between January 2025 and mid 2026
_MAX_DEPTH = 3
# Machine formats real services use for the region and account parts of identifiers.
_AWS_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "ap-northeast-1")
_PERSON_NOUNS = frozenset({"user", "member", "contact", "customer", "employee", "person", "people", "driver", "payee",
                           "actor", "student", "teacher", "guardian", "participant", "attendee", "recipient",
                           "author", "owner", "assignee", "requester", "creator", "sender", "agent", "admin",
                           "subscriber", "patient", "candidate", "cardholder", "holder", "teammate", "guest",
                           "traveler", "traveller", "passenger", "buyer", "seller", "reviewer", "signer", "speaker"})
_COMPANY_NOUNS = frozenset({"company", "organization", "organisation", "org", "vendor", "merchant", "business",
                            "partner", "supplier", "institution", "client", "brand", "publisher", "employer",
                            "advertiser", "tenant", "bank", "carrier", "agency", "legal", "trading"})
_FILE_NOUNS = frozenset({"file", "document", "photo", "image", "attachment", "upload", "artifact", "video", "asset"})
_PROSE = frozenset({"description", "notes", "note", "comment", "comments", "body", "content", "message", "text",
                    "bio", "details", "detail", "reason", "instructions", "purpose", "memo", "remarks", "feedback",
                    "answer", "question", "review", "about", "explanation", "narrative", "justification", "excerpt"})
_NAME_MODIFIERS = frozenset({"display", "full", "short", "long", "friendly", "given", "legal", "official", "public",
                             "preferred", "nick", "common", "canonical", "human", "readable", "unique"})
_TITLES = frozenset({"title", "subject", "headline", "caption", "summary", "topic", "heading", "tagline"})
_TIMESTAMPS = frozenset({"time", "timestamp", "at", "created", "updated", "modified", "deleted", "expires", "expiry",
                         "expiration", "completed", "published", "started", "ended", "submitted", "scheduled",
                         "datetime", "since", "until", "due", "deadline"})
_ALWAYS = re.compile(r"""(?:always|value is|fixed value|will be|set to)\s*[:"'`]+\s*([A-Za-z0-9_#./:-]{2,64})""", re.I)
_SLUG = re.compile(r"[^a-z0-9]+")
_CAPITALS = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")
_NOT_KINDS = frozenset({"URL", "URI", "API", "UTC", "ISO", "RFC", "IDS", "THE", "AND", "NOT", "MUST", "SHOULD", "MAY",
                        "NULL", "TRUE", "FALSE", "HTTP", "HTTPS", "JSON", "XML", "GMT", "ARN", "UUID"})


def _digest(*parts: object) -> int:
    """A stable 64-bit number for `parts` (Python's `hash` of a string changes between runs)."""
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def slugify(text: str) -> str:
    """`Persevering bottom-line Ltd.` → `persevering-bottom-line-ltd`."""
    return _SLUG.sub("-", text.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class Persona:
    """The person and company behind one record."""

    first: str
    last: str
    company: str
    domain: str

    @property
    def full_name(self) -> str:
        """`First Last`."""
        return f"{self.first} {self.last}"

    @property
    def email(self) -> str:
        """`first.last@domain`, ASCII letters only in the local part."""
        local = ".".join(slugify(p).replace("-", "") for p in (self.first, self.last))
        return f"{local}@{self.domain}"


class FakeValues:
    """Value factory of one environment (see the module doc)."""

    def __init__(self, env_name: str, *, slug_names: bool = False) -> None:
        """Values for the environment `env_name`; `slug_names` makes names identifier-like."""
        self.env_name = env_name
        self.slug_names = slug_names  # identifier-like names (`orders-intake-queue`), as AWS resources use
        self._faker = Faker("en_US")
        self.account = str(_digest(env_name, "account") % 900_000_000_000 + 100_000_000_000)

    def record(self, collection: str, i: int) -> RecordFaker:
        """The value maker of the i-th record (1-based) of `collection`."""
        fake = self._faker
        fake.seed_instance(_digest(self.env_name, collection, i))
        first, last = fake.first_name(), fake.last_name()
        company = fake.company()
        domain = f"{slugify(company.split(',')[0].split(' and ')[0])[:24].strip('-')}.{fake.tld()}"
        return RecordFaker(self, collection, i, Persona(first, last, company, domain))


class RecordFaker:
    """The values of one record: every call reseeds from (environment, collection, i, field)."""

    def __init__(self, owner: FakeValues, collection: str, i: int, persona: Persona) -> None:
        """The i-th record of `collection` in `owner`'s environment, made by `persona`."""
        self.owner, self.collection, self.i, self.persona = owner, collection, i, persona
        self.noun = singular(snake(collection).split("_")[-1] or "item")
        self.descriptions: dict[str, str] = {}  # field → its schema's description, as strings are made

    def _fake(self, field: str, salt: str = "") -> Faker:
        fake = self.owner._faker
        fake.seed_instance(_digest(self.owner.env_name, self.collection, self.i, field, salt))
        return fake

    def value(self, field: str, schema: Any, depth: int = 0) -> Any:
        """A realistic value for `field` under `schema`, or None (see the module doc)."""
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[_digest(self.collection, field, self.i) % len(enum)]
        kind = json_type(schema)
        if kind == "string" or (kind is None and not object_properties(schema) and "items" not in schema):
            return self.string(field, schema)
        if kind == "integer":
            return self.integer(field, schema)
        if kind == "number":
            return self.number(field, schema)
        if kind == "boolean":
            return (self.i + _digest(field)) % 2 == 0
        if kind == "array" or "items" in schema:
            return self.array(field, schema, depth)
        if kind == "object" or object_properties(schema):
            return self.object(field, schema, depth)
        return None

    def object(self, field: str, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Every property that can be made (nested objects to a small depth)."""
        out: dict[str, Any] = {}
        props = object_properties(schema)
        required = set(schema.get("required") or [])
        for name, sub in props.items():
            if depth + 1 > _MAX_DEPTH - 1 and name not in required:
                continue
            value = self.value(name, sub, depth + 1)
            if value is not None:
                out[name] = value
        return out

    def array(self, field: str, schema: dict[str, Any], depth: int) -> list[Any]:
        """One to three items (within minItems/maxItems), distinct when the items are enum values."""
        items = schema.get("items")
        if not isinstance(items, dict):
            return []
        low = schema.get("minItems", 1) if isinstance(schema.get("minItems"), int) else 1
        high = schema.get("maxItems", 3) if isinstance(schema.get("maxItems"), int) else 3
        count = max(low, min(high, 1 + _digest(self.collection, field, self.i, "n") % 3))
        name = singular(field) if field.endswith("s") else field
        out: list[Any] = []
        for k in range(count):
            sub = RecordFaker(self.owner, self.collection, self.i * 100 + k, self.persona)
            value = sub.value(name, items, depth + 1)
            if value is None:
                return []
            if value not in out:
                out.append(value)
        return out

    def integer(self, field: str, schema: dict[str, Any]) -> int:
        """An integer in a range that suits the name (counts, years, ports, amounts), within the schema's bounds."""
        words = snake(field).split("_")
        low, high = _int_range(words, self.i)
        value = self._fake(field).random_int(low, high)
        return int(_clamp(value, schema, integer=True))

    def number(self, field: str, schema: dict[str, Any]) -> float:
        """A number that suits the name (coordinates, prices, rates), within the schema's bounds."""
        words = set(snake(field).split("_"))
        fake = self._fake(field)
        if words & {"lat", "latitude"}:
            value = float(fake.latitude())
        elif words & {"lng", "lon", "long", "longitude"}:
            value = float(fake.longitude())
        elif words & {"rate", "ratio", "fraction", "probability", "score", "weight"}:
            value = round(fake.random_int(1, 99) / 100, 2)
        elif words & {"percent", "percentage", "pct"}:
            value = round(fake.random_int(0, 1000) / 10, 1)
        else:
            value = round(fake.random_int(500, 250_000) / 100, 2)
        return float(_clamp(value, schema, integer=False))

    def alternatives(self, field: str, schema: dict[str, Any]) -> list[str]:
        """Other plausible strings for a constrained field (a `pattern`, a length), tried in order."""
        fake = self._fake(field, "alt")
        return [fake.hexify("^" * 12), str(fake.random_number(digits=12, fix_len=True)), fake.uuid4(),
                slugify(fake.catch_phrase()), fake.bothify("??-####").upper(), fake.lexify("?" * 8).lower(),
                str(fake.random_int(1, 999))]

    def string(self, field: str, schema: dict[str, Any]) -> str:
        """A string by format, then by what the description says it always is, then by name (a 12-character
        field of an AWS-like service is an account number)."""
        fmt = schema.get("format")
        self.descriptions[field] = str(schema.get("description") or "")
        value = self._by_format(field, fmt) if isinstance(fmt, str) else None
        if value is None and self.owner.slug_names and schema.get("minLength") == schema.get("maxLength") == 12:
            value = self.owner.account
        if value is None:
            always = _ALWAYS.search(str(schema.get("description") or ""))
            value = always.group(1).rstrip(".") if always else self._by_name(field)
        return _fit_length(value, schema)

    def timestamp(self, field: str) -> datetime:
        """A moment between January 2025 and mid 2026 (whole seconds, UTC)."""
        return _EPOCH + timedelta(seconds=self._fake(field, "ts").random_int(0, _SPAN_SECONDS))

    def _by_format(self, field: str, fmt: str) -> str | None:
        fake = self._fake(field, fmt)
        if fmt in ("date-time", "google-datetime"):
            return self.timestamp(field).strftime("%Y-%m-%dT%H:%M:%SZ")
        simple: dict[str, Any] = {
            "date": lambda: self.timestamp(field).date().isoformat(),
            "time": lambda: self.timestamp(field).strftime("%H:%M:%S"),
            "email": lambda: self.persona.email, "idn-email": lambda: self.persona.email,
            "uri": lambda: self.url(field), "url": lambda: self.url(field), "iri": lambda: self.url(field),
            "uri-reference": lambda: f"/{self.noun}s/{fake.hexify('^' * 8)}",
            "uuid": fake.uuid4, "ipv4": fake.ipv4_public, "ipv6": fake.ipv6, "hostname": lambda: self.persona.domain,
            "byte": lambda: base64.b64encode(fake.binary(length=12)).decode(),
            "duration": lambda: f"PT{fake.random_int(5, 240)}M", "google-duration": lambda: f"{fake.random_int(60, 86400)}s",
            "password": lambda: fake.password(length=14), "int64": lambda: str(fake.random_int(1000, 9_999_999)),
            "int32": lambda: str(fake.random_int(1, 99_999)), "uint64": lambda: str(fake.random_int(1000, 9_999_999)),
            "double": lambda: f"{fake.random_int(100, 99_999) / 100:.2f}",
            "float": lambda: f"{fake.random_int(100, 99_999) / 100:.2f}",
        }
        maker = simple.get(fmt)
        return str(maker()) if maker is not None else None

    def url(self, field: str) -> str:
        """An https URL on the record's company domain."""
        fake = self._fake(field, "url")
        words = snake(field).split("_")
        if words[0] in ("image", "photo", "avatar", "picture", "thumbnail", "icon", "logo"):
            return f"https://cdn.{self.persona.domain}/{words[0]}s/{fake.hexify('^' * 10)}.jpg"
        return f"https://{self.persona.domain}/{self.noun}s/{slugify(fake.catch_phrase())}"

    def name(self, words: list[str]) -> str:
        """The name of a thing of this record: a person's, a company's, a file's or a product-like one."""
        fake = self._fake("_".join(words), "name")
        nouns = {singular(w) for w in words[:-1] if w not in _NAME_MODIFIERS} or {self.noun}
        if nouns & _PERSON_NOUNS or words[0] == "full":
            return self.persona.full_name
        if nouns & _COMPANY_NOUNS:
            return self.persona.company
        if nouns & _FILE_NOUNS:
            return fake.file_name()
        if nouns & {"city", "town"}:
            return fake.city()
        if nouns & {"country"}:
            return fake.country()
        if nouns & {"street"}:
            return fake.street_name()
        if nouns & {"host", "domain", "dns"}:
            return self.persona.domain
        phrase = fake.catch_phrase()
        return slugify(phrase) if self.owner.slug_names else phrase

    def _by_name(self, field: str) -> str:  # long: one table of name rules, read top to bottom
        words = snake(field).split("_") or [field.lower()]
        last, every = words[-1], set(words)
        fake = self._fake(field)
        persona = self.persona
        if every & {"email", "mail"}:
            return persona.email
        if every & {"url", "uri", "link", "href", "website", "homepage", "endpoint", "callback", "webhook"} or \
                field in ("self", "html", "related"):  # JSON:API and HAL links
            return self.url(field)
        if last == "arn":
            resource = words[-2] if len(words) > 1 else self.noun  # `deviceArn` names a device
            return f"arn:aws:{slugify(self.owner.env_name.split('_')[0])}:{self.region()}:{self.owner.account}:" \
                   f"{resource}/{fake.hexify('^' * 12)}"
        if every & {"phone", "mobile", "fax", "msisdn", "telephone", "tel"}:
            return f"+1{fake.random_int(201, 989)}{fake.random_number(digits=7, fix_len=True)}"
        if every & {"first", "given", "forename"} and last in ("name", "names"):
            return persona.first
        if every & {"last", "family", "surname"} and (last in ("name", "names") or last == "surname"):
            return persona.last
        if every & {"username", "login", "handle", "nickname", "screen"}:
            return f"{slugify(persona.first)}{slugify(persona.last)[:1]}{fake.random_int(1, 99)}"
        if last in ("name", "names") or field.lower() in ("displayname", "fullname"):
            return self.name(words)
        if last in _TITLES:
            return fake.sentence(nb_words=4, variable_nb_words=False).rstrip(".")
        if last in ("label", "labels", "tag", "tags"):
            return f"{fake.word(part_of_speech='adjective')}-{fake.word(part_of_speech='noun')}"
        if every & _PROSE:
            return fake.paragraph(nb_sentences=2)
        if last in _TIMESTAMPS or last.endswith("time") or (last == "date" and every & {"create", "update", "last"}):
            return self.timestamp(field).strftime("%Y-%m-%dT%H:%M:%SZ")
        if last in ("date", "day", "birthday", "dob", "birthdate"):
            return self.timestamp(field).date().isoformat()
        return self._by_topic(field, words, fake)

    def _by_topic(self, field: str, words: list[str], fake: Faker) -> str:  # long: one table of name rules
        last, every = words[-1], set(words)
        persona = self.persona
        table: list[tuple[bool, Any]] = [
            (bool(every & {"address", "street", "line1", "address1"}), fake.street_address),
            (bool(every & {"line2", "address2", "suite", "apartment"}), fake.secondary_address),
            (bool(every & {"city", "locality", "town"}), fake.city),
            (bool(every & {"postal", "zip", "postcode", "zipcode"}), fake.postcode),
            (last == "region" and self.owner.slug_names, self.region),
            (bool(every & {"province", "region", "county"}) and last != "id", fake.state),
            (bool(every & {"country"}) and bool(every & {"code", "iso"}), fake.country_code),
            (bool(every & {"country"}), fake.country),
            (bool(every & {"currency"}), fake.currency_code),
            (bool(every & {"locale"}), lambda: fake.locale().replace("_", "-")),
            (bool(every & {"language", "lang"}), fake.language_code),
            (bool(every & {"timezone", "tz"}) or ("time" in every and "zone" in every), fake.timezone),
            (bool(every & {"color", "colour"}), fake.hex_color),
            (bool(every & {"ip"}), fake.ipv4_public),
            (bool(every & {"mac"}), fake.mac_address),
            (bool(every & {"domain", "hostname", "host"}), lambda: persona.domain),
            (bool(every & {"company", "organization", "organisation", "employer", "merchant", "vendor"}),
             lambda: persona.company),
            (bool(every & {"job", "occupation", "position"}), fake.job),
            (bool(every & {"version"}), lambda: f"{fake.random_int(1, 4)}.{fake.random_int(0, 12)}.{fake.random_int(0, 30)}"),
            (bool(every & {"iban"}), fake.iban),
            (bool(every & {"bic", "swift"}), fake.swift),
            (bool(every & {"card"}) and bool(every & {"number", "pan"}), fake.credit_card_number),
            (bool(every & {"routing", "aba"}), fake.aba),
            (bool(every & {"mime", "media"}) or ("content" in every and "type" in every), fake.mime_type),
            (bool(every & {"path", "folder", "directory", "prefix"}), fake.file_path),
            (bool(every & {"agent"}) and "user" in every, fake.user_agent),
            (bool(every & {"token", "secret", "hash", "etag", "checksum", "signature", "fingerprint", "sha", "digest"}),
             fake.sha1),
            (bool(every & {"password", "passphrase"}), lambda: fake.password(length=14)),
            (bool(every & {"amount", "price", "cost", "total", "balance", "fee", "value", "subtotal", "tax"}),
             lambda: f"{fake.random_int(500, 250_000) / 100:.2f}"),
            (bool(every & {"sku", "code", "number", "reference", "ref", "serial"}),
             lambda: fake.bothify("??-#####").upper()),
            (last in ("status", "state"), lambda: fake.random_element(("active", "pending", "inactive"))),
            (last == "kind" and not self.owner.slug_names,
             lambda: f"{self.owner.env_name.split('_')[0]}#{self.noun}"),  # Google's type tags: `books#annotation`
            (last in ("kind", "type", "category", "subcategory", "class"),
             lambda: self.kind(field, fake)),
            (last in ("id", "ids", "key", "uid", "guid", "identifier") or last.endswith("id"), lambda: self.token(words)),
        ]
        for applies, make in table:
            if applies:
                return str(make())
        return fake.sentence(nb_words=3, variable_nb_words=False).rstrip(".")

    def kind(self, field: str, fake: Faker) -> str:
        """A type or category: one the field's description names in capitals (`AVRO`, `PROTOBUF`), else a word."""
        described = [w for w in _CAPITALS.findall(self.descriptions.get(field, "")) if w not in _NOT_KINDS]
        if described:
            return str(described[(self.i - 1) % len(described)])
        return str(fake.word(part_of_speech="noun"))

    def token(self, words: list[str]) -> str:
        """An opaque identifier with a short prefix from the field's words (`layer-5f3a91c2d0e4`)."""
        stem = [w for w in words if w not in ("id", "ids", "key", "uid", "guid", "identifier")]
        word = stem[-1] if stem else self.noun
        prefix = (word if len(word) <= 10 else word[:3]) or "id"
        return f"{prefix}-{self._fake('_'.join(words), 'token').hexify('^' * 12)}"

    def region(self) -> str:
        """A cloud region name."""
        return _AWS_REGIONS[_digest(self.owner.env_name, "region") % len(_AWS_REGIONS)]


def _int_range(words: list[str], i: int) -> tuple[int, int]:
    every = set(words)
    ranges: list[tuple[set[str], tuple[int, int]]] = [
        ({"age"}, (18, 80)), ({"year"}, (2015, 2026)), ({"month"}, (1, 12)), ({"day"}, (1, 28)),
        ({"hour"}, (0, 23)), ({"minute", "second", "seconds"}, (0, 59)), ({"port"}, (1024, 65535)),
        ({"percent", "percentage"}, (0, 100)),
        ({"priority", "rank", "order", "position", "index", "sequence", "level"}, (i, i)),
        ({"ttl", "timeout", "duration", "interval", "delay", "period"}, (30, 3600)),
        ({"count", "total", "quantity", "qty", "size", "length", "capacity", "limit", "max", "min", "number"}, (1, 40)),
        ({"amount", "price", "cost", "cents", "balance", "fee"}, (100, 50_000)),
    ]
    for names, bounds in ranges:
        if every & names:
            return bounds
    return (1, 1000)


def _clamp(value: float, schema: dict[str, Any], *, integer: bool) -> float:
    """`value` moved into the schema's minimum/maximum (exclusive bounds by one step) and multipleOf."""
    step = 1 if integer else 0.01
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        low = ex_low + step
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        high = ex_high - step
    if isinstance(low, int | float) and value < low:
        value = low
    if isinstance(high, int | float) and value > high:
        value = high
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = round(value / multiple) * multiple
    return int(value) if integer else value


def _fit_length(value: str, schema: dict[str, Any]) -> str:
    """`value` cut to maxLength (at a word where one fits) and padded to minLength with digits."""
    high = schema.get("maxLength")
    if isinstance(high, int) and len(value) > high:
        cut = value[:high]
        space = cut.rfind(" ")
        value = cut[:space].rstrip(" ,.;") if space > high // 2 else cut
    low = schema.get("minLength")
    if isinstance(low, int) and len(value) < low:
        value = value + "0" * (low - len(value))
    return value
