"""Local Markdown/HTML docs: operations only from clearly structured endpoint references."""

from __future__ import annotations

from pathlib import Path

from envfactory.resources import Catalog, DocsSource

STRUCTURED = """# Parcel Lockers API

Rent a locker, drop a parcel, let someone pick it up.

## `reserve_locker` — POST /lockers/{site}/reservations

Reserve a free locker at a site for up to 72 hours.

| Name | Type | Required | Description |
|------|------|----------|-------------|
| site | string | yes | Site code, e.g. `AMS-3` |
| size | string | yes | S, M or L |
| hours | integer | no | How long to hold it (default 24) |

Request:

```json
{"site": "AMS-3", "size": "M", "hours": 12}
```

Response:

```json
{"reservation_id": "r_19", "locker": "M-07", "code": "4821"}
```

## GET /lockers/{site}

List lockers at a site with their state.
"""

PROSE = """# Onboarding notes

Our couriers start at 7. Bring the handheld scanner back to the depot at the end of a shift.
There is coffee in the kitchen. GET /api is not an endpoint heading here, just prose.
"""


def test_structured_markdown_gives_operations(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "lockers.md").write_text(STRUCTURED, encoding="utf-8")
    (tmp_path / "docs" / "onboarding.md").write_text(PROSE, encoding="utf-8")
    with Catalog([DocsSource(tmp_path / "docs")], tmp_path / "cache") as catalog:
        services = {s.service: s for s in catalog.services()}
        assert services["lockers"].title == "Parcel Lockers API" and services["lockers"].operations == 2
        reserve = catalog.operation("docs:lockers:-:reserve_locker")
        assert (reserve.http_method, reserve.http_path) == ("POST", "/lockers/{site}/reservations")
        assert reserve.input_schema["required"] == ["site", "size"]
        assert reserve.input_schema["properties"]["hours"]["type"] == "integer"
        assert reserve.examples[0].input == {"site": "AMS-3", "size": "M", "hours": 12}
        assert reserve.examples[0].output == {"reservation_id": "r_19", "locker": "M-07", "code": "4821"}
        assert catalog.operation("docs:lockers:-:GET /lockers/{site}").description.startswith("List lockers")
        # prose stays documentation: no operations guessed
        onboarding = catalog.resource(services["onboarding"].id)
        assert onboarding.operations == [] and "handheld scanner" in onboarding.docs


def test_html_docs(tmp_path: Path) -> None:
    page = tmp_path / "api.html"
    page.write_text("<html><body><h1>Weather</h1><h2>GET /forecast/{city}</h2><p>Five-day forecast &amp; alerts.</p>"
                    "<script>steal()</script></body></html>", encoding="utf-8")
    with Catalog([DocsSource(page)], tmp_path / "cache") as catalog:
        [service] = catalog.services()
        op = catalog.operation(f"{service.id}:GET /forecast/{{city}}")
        assert op.description == "Five-day forecast & alerts."
        assert "steal" not in catalog.resource(service.id).docs


def test_empty_directory_is_skipped(tmp_path: Path) -> None:
    with Catalog([DocsSource(tmp_path)], tmp_path / "cache") as catalog:
        assert catalog.services() == []
        assert catalog.skipped()[0].reason == "no Markdown or HTML files here"
