"""The documented pattern set that reads rules from spec prose (issue 19; docs/behaviour.md "Prose rules").

Contract:
- `PATTERNS` is the whole set: each `RulePattern` has an id, the `RuleKind` it decides, a regular
  expression over one sentence (case-insensitive) and the number group holding the limit where the kind
  has one. `GUARDS` are expressions that veto a kind for a sentence (a unique *identifier* is not a
  uniqueness rule; "returns up to 100" is a page size, not a limit on records).
- `match_sentence(sentence)` returns `(kind, pattern id, limit)` for each kind some pattern decides and no
  guard vetoes, in `PATTERNS` order, at most one per kind. Pure and deterministic. A model may propose
  sentences or rules; only these patterns decide, so a rule always names the pattern that made it.
- `split_sentences(text)` cuts prose into sentences the way the labelled set was cut (a sentence ends at
  `.`, `!` or `?` followed by a capital letter, or at a line break), whitespace collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from envfactory.spec.rules import RuleKind

__all__ = ["GUARDS", "PATTERNS", "RulePattern", "match_sentence", "split_sentences"]

_NUM = r"(\d[\d,]*)"
_STATE_WORDS = (r"(already|currently|active|inactive|registered|non-drafts?|drafts?|published|submitted|archived|"
                r"closed|completed|running|pending|approved|locked|live)")
_VERBS = r"(deleted|removed|cancell?ed|updated|modified|used|invoiced|exported|edited|archived|submitted)"


@dataclass(frozen=True)
class RulePattern:
    """One pattern of the set: `kind` is decided when `regex` matches a sentence."""
    id: str
    kind: RuleKind
    regex: re.Pattern[str]
    limit_group: int = 0  # the group holding the limit (0: none)


def _p(pid: str, kind: RuleKind, regex: str, limit_group: int = 0) -> RulePattern:
    return RulePattern(pid, kind, re.compile(regex, re.IGNORECASE), limit_group)


PATTERNS: tuple[RulePattern, ...] = (
    # uniqueness
    _p("unique.must_be", "unique", r"\b(must|should|has to|have to|needs? to|shall|required to) be unique\b"),
    _p("unique.within", "unique", r"^(must be |is |are )?unique (within|across|per|in|among|for each)\b"),
    _p("unique.duplicate_error", "unique",
       r"\b(40\d|error|fails?|rejected|not allowed)\b.*\bduplicate\b|\bduplicate\b.*\b(not allowed|rejected|fails?|error)\b"),
    _p("unique.already_exists", "unique", r"\b(with the same|same)\b.*\balready exists\b"),
    _p("unique.returns_already_exists", "unique", r"\b(return|returns|error|fails?)\b.{0,40}\b(ALREADY_EXISTS|already exists)\b"),
    # deleting a record that still holds children
    _p("empty.only_when", "delete_requires_empty",
       r"\b(delete|remove|terminate)s?\b.*\bonly (when|if)\b.*\b(empty|(does not|doesn't|do not) (contain|have|hold)|has no|have no)\b"),
    _p("empty.only_be_deleted", "delete_requires_empty",
       r"\bonly be (deleted|removed)\b.*\b(when|if|once)\b.*\b(empty|has no|contains no|(does not|doesn't) (contain|have))\b"),
    _p("empty.only_delete", "delete_requires_empty",
       r"\bonly (delete|remove)\b.*\bwhen\b.*\b(empty|(does not|doesn't) (contain|have)|has no)\b"),
    _p("empty.must_be_empty", "delete_requires_empty",
       r"\bmust be empty (before|to be|prior to)\b.*\b(delet|remov)|\b(delet|remov)\w*\b.*\bmust (first )?be empty\b"),
    _p("empty.cannot_delete_non_empty", "delete_requires_empty",
       r"\bcannot (be )?(deleted?|removed?)\b.*\b(not empty|non-empty|still (contains?|has))\b"),
    # how many records or items
    _p("count.max_of", "max_count",
       r"\b(maximum of|up to|no more than|at most|not more than)\s+" + _NUM + r"\s+(?!characters?\b|chars?\b|bytes?\b|"
       r"seconds?\b|minutes?\b|hours?\b|days?\b|digits?\b)([a-z][\w-]*)", 2),
    # string length
    _p("length.max", "max_length",
       r"\b(no more than|up to|at most|maximum of|maximum length of|not exceed|less than or equal to|max(imum)?)\s+"
       + _NUM + r"\s+(characters?|chars?|bytes?)\b", 3),
    _p("length.max_after", "max_length", _NUM + r"\s+(characters?|chars?)\s+(or less|or fewer|maximum|max)\b", 1),
    _p("length.between", "max_length", r"\bbetween\s+\d+\s+and\s+" + _NUM + r"\b.{0,40}\b(characters?|chars?)\b", 1),
    _p("length.min_between", "min_length", r"\bbetween\s+" + _NUM + r"\s+and\s+\d+\b.{0,40}\b(characters?|chars?)\b", 1),
    _p("length.min", "min_length", r"\b(at least|minimum of|minimum length of)\s+" + _NUM + r"\s+(characters?|chars?)\b", 2),
    # fields that cannot change
    _p("immutable.cannot_change", "immutable", r"\bcannot be (changed|modified|updated|edited|disabled)\b"),
    _p("immutable.word", "immutable", r"\b(is|are) immutable\b|\bimmutable (once|after)\b|\ban immutable\b"),
    _p("immutable.you_cannot_change", "immutable", r"\byou (cannot|can't|can not) (change|modify|update) the\b"),
    _p("immutable.once_set", "immutable", r"\bonce (set|created)\b.*\bcannot\b"),
    # operations allowed only in some states
    _p("state.only_in", "requires_state", r"\bcan only be \w+ (in|when|while|if)\b.*\b(state|status)\b"),
    _p("state.cannot_verb_in", "requires_state",
       r"\b(cannot|can't|can not) \w+\b.{0,40}\b(in|while in) (the |an? )?[`'\"]?\w+[`'\"]? (state|status)\b"),
    _p("state.must_be_in", "requires_state",
       r"\bmust be (in (an? |the )?)?[`'\"]?\w+[`'\"]? (status|state)\b|\bmust be (active|inactive|enabled|stopped|"
       r"running|open|closed|approved)\b"),
    _p("state.cannot_when", "requires_state", r"\b" + _STATE_WORDS + r"\b.*\bcannot be " + _VERBS + r"\b"),
    _p("state.cannot_on", "requires_state",
       r"\bcannot be " + _VERBS + r"\b.{0,40}\b(on|in|when|while|if|ie\.?)\b.{0,30}\b" + _STATE_WORDS + r"\b"),
)

_GUARD_TEXT: tuple[tuple[RuleKind, str], ...] = (
    ("unique", r"\bnot (necessarily |need to be |required to be )?unique\b|\bneed not be unique\b|"
               r"\b(do|does) not (need|have) to be unique\b"),
    ("unique", r"\bidempoten|\bclient ?token\b|\brequest token\b"),
    ("max_count", r"\b(return|returns|returned|retrieve|per page|page|at a time|results?)\b"),
    ("requires_state", r"\bcannot be (undone|combined)\b|\bcannot be (used|specified|combined) (with|along with|together)\b"),
    ("immutable", r"\b(live|active|running|published|archived|locked|registered)\b( \w+){0,2} cannot be (changed|modified|updated)\b"),
)
GUARDS: tuple[tuple[RuleKind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(regex, re.IGNORECASE)) for kind, regex in _GUARD_TEXT)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (module contract)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])|\n+", text or "")
    return [s for s in (" ".join(p.split()) for p in parts) if s]


def match_sentence(sentence: str) -> list[tuple[RuleKind, str, int | None]]:
    """Each rule kind the patterns decide for `sentence`, with the deciding pattern and the limit."""
    vetoed = {kind for kind, guard in GUARDS if guard.search(sentence)}
    found: dict[str, tuple[RuleKind, str, int | None]] = {}
    for pattern in PATTERNS:
        if pattern.kind in found or pattern.kind in vetoed:
            continue
        hit = pattern.regex.search(sentence)
        if hit is None:
            continue
        limit = int(hit.group(pattern.limit_group).replace(",", "")) if pattern.limit_group else None
        found[pattern.kind] = (pattern.kind, pattern.id, limit)
    return list(found.values())
