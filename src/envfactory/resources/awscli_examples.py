"""Human-written AWS CLI example pages (the `awscli` wheel's `awscli/examples/<service>/<command>.rst`),
read straight from the wheel file that `envfactory resources setup` downloads — never installed,
never extracted.

Each page holds one or more examples: a bold title, a `aws <service> <command> --option value ...`
command, files it refers to (`file://item.json` with the file's content shown), and the output. An
example becomes an `OperationExample` whose input maps the command's options back to the API's member
names (`--queue-name` → `QueueName`) with values typed by the input shape, and whose output is the
JSON shown (or the text, when it is not JSON).
"""

from __future__ import annotations

import re
import shlex
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from envfactory.resources._text import clean_text
from envfactory.spec import JSONValue, OperationExample

_TITLE = re.compile(r"^\*\*(?P<title>.+?)\*\*\s*$")
_FILE_NAME = re.compile(r"``(?P<a>[^`]+\.json)``|\((?P<b>[^()\s]+\.json)\)")
EXAMPLES_PREFIX = "awscli/examples/"
PAGE_LIMIT = 200_000
_CLI_NAMES: Mapping[str, str] = MappingProxyType({"s3": "s3api", "config": "configservice", "codedeploy": "deploy"})


def cli_service_name(service: str) -> str:
    """The CLI's directory name for a botocore service (the CLI calls the S3 API `s3api`)."""
    return _CLI_NAMES.get(service, service)


class AwsCliExamples:
    """Example pages inside one awscli wheel; the zip directory is read once, pages on demand."""

    def __init__(self, wheel: Path) -> None:
        """Examples from `wheel`; the file is opened on the first `page` call."""
        self.wheel = wheel
        self._zip: zipfile.ZipFile | None = None
        self._names: frozenset[str] = frozenset()

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.wheel)
            self._names = frozenset(n for n in self._zip.namelist() if n.startswith(EXAMPLES_PREFIX))
        return self._zip

    def close(self) -> None:
        """Close the wheel (idempotent; a later `page` reopens it)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def page(self, service: str, command: str) -> str | None:
        """The example page of one `aws <service> <command>` as text, or None when the wheel has none (or it
        is over `PAGE_LIMIT` bytes)."""
        archive = self._open()
        name = f"{EXAMPLES_PREFIX}{cli_service_name(service)}/{command}.rst"
        if name not in self._names:
            return None
        info = archive.getinfo(name)
        if info.file_size > PAGE_LIMIT:
            return None
        return archive.read(info).decode("utf-8", errors="replace")

    def examples(
        self, service: str, command: str, members: Mapping[str, tuple[str, str]]
    ) -> list[OperationExample]:
        """Examples of `aws <service> <command>`. `members` maps each option (`queue-name`) to the
        member name and its shape type (`("QueueName", "string")`)."""
        text = self.page(service, command)
        if text is None:
            return []
        source = f"awscli:{cli_service_name(service)}/{command}.rst"
        return parse_page(text, members, source)


def _literal_blocks(lines: list[str]) -> list[tuple[str, str]]:
    """(lead-in paragraph, dedented literal block) pairs of an rst fragment."""
    blocks: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            lead = line.rstrip()[:-2].strip()
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            body: list[str] = []
            while j < len(lines) and (not lines[j].strip() or lines[j][:1] in " \t"):
                body.append(lines[j])
                j += 1
            while body and not body[-1].strip():
                body.pop()
            indent = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            blocks.append((lead, "\n".join(b[indent:] for b in body)))
            i = j
        else:
            i += 1
    return blocks


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _typed(value: str, shape_type: str, files: Mapping[str, Any]) -> JSONValue:
    if value.startswith("file://"):
        name = value.removeprefix("file://").rsplit("/", 1)[-1]
        found: JSONValue = files.get(name, value)
        return found
    if value[:1] in "{[":
        parsed: JSONValue = _json_or_none(value)
        if parsed is not None:
            return parsed
    try:
        if shape_type in ("integer", "long"):
            return int(value)
        if shape_type in ("float", "double"):
            return float(value)
    except ValueError:
        return value
    if shape_type == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def parse_command(
    command: str, members: Mapping[str, tuple[str, str]], files: Mapping[str, Any]
) -> dict[str, JSONValue] | None:
    """The API input of one `aws ...` command line, or None when it does not parse."""
    try:
        words = shlex.split(command.replace("\\\n", " "), comments=False)
    except ValueError:
        return None
    if len(words) < 3 or words[0] != "aws":
        return None
    args: dict[str, JSONValue] = {}
    i = 3
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("--"):
            continue
        option = word[2:]
        values: list[str] = []
        while i < len(words) and not words[i].startswith("--"):
            values.append(words[i])
            i += 1
        negated = option.startswith("no-") and option[3:] in members
        key = option[3:] if negated else option
        if key not in members:
            continue  # global CLI options (--region, --output, --cli-input-json) are not API input
        member, shape_type = members[key]
        if not values:
            args[member] = not negated
        elif shape_type == "list":
            args[member] = [_typed(v, "string", files) for v in values]
        else:
            args[member] = _typed(" ".join(values), shape_type, files)
    return args


def parse_page(text: str, members: Mapping[str, tuple[str, str]], source: str) -> list[OperationExample]:
    """Every example of one page, in page order."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _TITLE.match(line)
        if match is not None:
            sections.append((match["title"], []))
        elif sections:
            sections[-1][1].append(line)
        else:
            sections.append(("", [line]))
    examples: list[OperationExample] = []
    for title, lines in sections:
        files: dict[str, Any] = {}
        command: str | None = None
        output: JSONValue = None
        for lead, block in _literal_blocks(lines):
            if block.lstrip().startswith("aws ") and command is None:
                command = block.strip()
                continue
            name_match = _FILE_NAME.search(lead)
            if name_match is not None:
                parsed = _json_or_none(block)
                if parsed is not None:
                    files[name_match["a"] or name_match["b"]] = parsed
                continue
            if lead.lower().startswith("output") and output is None:
                parsed = _json_or_none(block)
                output = parsed if parsed is not None else clean_text(block, 4000)
        if command is None:
            continue
        arguments = parse_command(command, members, files)
        if arguments is None:
            continue
        examples.append(OperationExample(
            title=clean_text(title, 300), input=arguments, output=output, source=source,
        ))
    return examples
