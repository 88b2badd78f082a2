"""English noun inflection for identifiers: one `singular` and one `plural` for every layer.

The engine is the `inflect` library; the project's own choices are data (the tables below), applied
before it. The rules in front of the engine fit API vocabulary, where many words are acronyms or
names rather than English nouns:
- `singular(word)`: a word in `SINGULAR_EXCEPTIONS` takes the listed singular (capitalised when the
  word is); a word of three letters or fewer, one not ending in `s`, or one ending in `ss`, `us` or
  `is` is already singular; any other word is `inflect`'s singular noun, or itself when `inflect`
  finds none.
- `plural(word)`: a word in `PLURAL_EXCEPTIONS` takes the listed plural; the empty string, a word that
  is already plural (`singular` changes it) or an uncountable one (`UNCOUNTABLE`) stays; a word
  ending in `s`, `x`, `z`, `ch` or `sh` takes `es`, one ending in `o` takes `s` (`sso` → `ssos`); any
  other word is `inflect`'s plural.
- Case: the result keeps the word's spelling up to where it changes; a new plural ending is lower
  case (`ARN` → `ARNs`), a new singular ending is upper-case where the old one was (`POLICIES` →
  `POLICY`).
- Both functions are pure, total on any string and cached. The shipped library's vocabulary gives the
  same results as the rules `build.naming` used before this module (tests/spec/test_inflection.py
  checks every noun of its environments' tools and collections).
"""

from __future__ import annotations

from functools import lru_cache

import inflect

__all__ = ["PLURAL_EXCEPTIONS", "SINGULAR_EXCEPTIONS", "UNCOUNTABLE", "plural", "singular"]

SINGULAR_EXCEPTIONS: dict[str, str] = {
    # irregular plurals APIs use
    "people": "person", "children": "child", "indices": "index",
    # plurals `inflect` leaves alone or reads as Latin, where the project keeps the word
    "data": "data", "media": "media", "metadata": "metadata", "criteria": "criteria", "corpora": "corpora",
    "news": "news", "series": "series", "settings": "settings",
    # the stems the shipped library was built with (`-es` stripped after `z` and `s`), kept so that
    # rebuilding it reproduces it
    "bonuses": "bonuse", "sizes": "siz", "synchronizes": "synchroniz",
}
"""Plural (lower case) → singular, applied before any rule."""

PLURAL_EXCEPTIONS: dict[str, str] = {
    # regular `-s` plurals the shipped library was built with, where `inflect` knows an irregular one
    "person": "persons", "child": "childs", "self": "selfs", "life": "lifes", "behalf": "behalfs",
    "money": "moneys", "ceeaf": "ceeafs", "information": "informations", "i": "is", "me": "mes", "you": "yous",
}
"""Singular (lower case) → plural, applied before any rule."""

UNCOUNTABLE = frozenset({"data", "media", "news", "series", "settings", "info", "metadata"})
"""Nouns whose plural is the word itself."""

_engine = inflect.engine()


@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    """A plural English noun's singular (`queues` → `queue`, `policies` → `policy`); a singular noun
    is returned as it is (see the module docstring for the rules)."""
    lower = word.lower()
    if lower in SINGULAR_EXCEPTIONS:
        return _restore_case(word, SINGULAR_EXCEPTIONS[lower])
    if len(lower) <= 3 or not lower.endswith("s") or lower.endswith(("ss", "us", "is")):
        return word
    found = _engine.singular_noun(lower)
    return _respell(word, found, upper_ending=True) if isinstance(found, str) and found else word


@lru_cache(maxsize=65536)
def plural(word: str) -> str:
    """The plural of a singular noun (`queue` → `queues`, `policy` → `policies`); a plural or
    uncountable noun is returned as it is (see the module docstring for the rules)."""
    lower = word.lower()
    if lower in PLURAL_EXCEPTIONS:
        return _respell(word, PLURAL_EXCEPTIONS[lower])
    if not lower or lower in UNCOUNTABLE or (lower.endswith("s") and singular(lower) != lower):
        return word
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if lower.endswith("o"):
        return word + "s"
    return _respell(word, _engine.plural_noun(lower))


def _restore_case(original: str, replacement: str) -> str:
    return replacement.capitalize() if original[:1].isupper() else replacement


def _respell(original: str, inflected: str, *, upper_ending: bool = False) -> str:
    """`inflected` (worked out on the lower-cased word) in the spelling of `original`: the common start
    keeps the original's letters; the new ending is lower-case, or, with `upper_ending`, upper-case
    where the ending it replaces was."""
    lower = original.lower()
    keep = 0
    while keep < min(len(lower), len(inflected)) and lower[keep] == inflected[keep]:
        keep += 1
    ending = inflected[keep:]
    if upper_ending and original[keep:].isupper():
        ending = ending.upper()
    return original[:keep] + ending
