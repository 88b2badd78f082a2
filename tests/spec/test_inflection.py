"""`spec.inflection`: one singular/plural for every layer, `inflect` behind the project's rules.

The fixture holds `build/naming.py`'s results from before the move on every word of the shipped
library's tools and collections, so a rebuild of the library singularises and pluralises alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.spec.inflection import plural, singular

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "inflection" / "library_nouns.tsv"


def _rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, one, many, many_of_one = line.split("\t")
            rows.append((word, one, many, many_of_one))
    return rows


def test_the_library_vocabulary_inflects_as_build_naming_did() -> None:
    rows = _rows()
    assert len(rows) > 3000  # the fixture is the library's vocabulary, not a sample
    wrong = [
        (word, (one, many, many_of_one), (singular(word), plural(word), plural(singular(word))))
        for word, one, many, many_of_one in rows
        if (singular(word), plural(word), plural(singular(word))) != (one, many, many_of_one)
    ]
    assert wrong == []


@pytest.mark.parametrize(("word", "expected"), [
    ("queues", "queue"), ("policies", "policy"), ("POLICIES", "POLICY"), ("Boxes", "Box"),
    ("buses", "bus"), ("statuses", "status"), ("analyses", "analysis"), ("series", "series"),
    ("people", "person"), ("People", "Person"), ("data", "data"), ("status", "status"), ("ids", "ids"),
])
def test_singular(word: str, expected: str) -> None:
    assert singular(word) == expected


@pytest.mark.parametrize(("word", "expected"), [
    ("queue", "queues"), ("policy", "policies"), ("box", "boxes"), ("bus", "buses"), ("status", "statuses"),
    ("queues", "queues"), ("data", "data"), ("ARN", "ARNs"), ("sso", "ssos"), ("person", "persons"),
    ("leaf", "leaves"),
])
def test_plural(word: str, expected: str) -> None:
    assert plural(word) == expected


def test_total_on_any_string() -> None:
    for word in ("", "s", "ß", "…", "Ünïcödes", "a b", "123s", "ies"):
        assert isinstance(singular(word), str) and isinstance(plural(word), str)
