"""`envfactory schema`: the JSON Schemas of every artifact model (`envfactory.spec.ARTIFACT_MODELS`).

Without `--out`, it lists the models. With `--out DIR`, it writes `<name>.schema.json` per model in
canonical formatting (sorted keys, two-space indent, trailing newline), so that regenerated schemas
diff cleanly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from envfactory.cli._output import console, emit_json, pretty_json, write_atomic
from envfactory.spec import ARTIFACT_MODELS, SpecModel, sha256_hex

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def artifact_schema(model: type[SpecModel]) -> dict[str, Any]:
    """The JSON Schema of one artifact model, with its dialect declared."""
    schema = model.model_json_schema(by_alias=True)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def _summary(model: type[SpecModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _version(model: type[SpecModel]) -> int | None:
    field = model.model_fields.get("schema_version")
    return field.default if field is not None and isinstance(field.default, int) else None


def schema(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write one <name>.schema.json per model into this directory.",
                     file_okay=False, dir_okay=True, writable=True),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Export the JSON Schemas of every artifact (env specs, tools, snapshots, tasks, ...)."""
    rows: list[dict[str, Any]] = []
    for name, model in ARTIFACT_MODELS.items():
        row: dict[str, Any] = {
            "name": name, "model": model.__name__, "schema_version": _version(model), "summary": _summary(model),
        }
        if out is not None:
            path = out / f"{name}.schema.json"
            data = pretty_json(artifact_schema(model))
            write_atomic(path, data)
            row["path"] = str(path)
            row["sha256"] = sha256_hex(data)
        rows.append(row)
    if as_json:
        emit_json(rows)
        return
    title = f"wrote {len(rows)} JSON Schemas to {out}" if out is not None else "artifact models"
    table = Table(title=title, title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("model")
    table.add_column("v", justify="right")
    table.add_column("file" if out is not None else "summary", overflow="fold")
    for row in rows:
        last = Path(row["path"]).name if out is not None else row["summary"]
        table.add_row(row["name"], row["model"], str(row["schema_version"] or ""), last)
    console().print(table)
