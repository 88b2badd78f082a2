"""`envfactory resources list|search|show|setup` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from envfactory.cli.app import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"
runner = CliRunner()


def invoke(tmp_path: Path, *args: str) -> Any:
    return runner.invoke(app, ["resources", *args, "--cache-dir", str(tmp_path / "cache")])


def own(*paths: Path) -> list[str]:
    args = ["--no-defaults"]
    for path in paths:
        args += ["--openapi", str(path)]
    return args


def test_list_json_is_one_row_per_service(tmp_path: Path) -> None:
    result = invoke(tmp_path, "list", "--json", *own(FIXTURES / "bookshop.openapi.json", FIXTURES / "petstore.swagger2.json"))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == ["cornerbookshop.example:bookshop.openapi:2.1.0",
                                       "clinic.example.org:petstore.swagger2:1.4"]
    assert rows[0]["operations"] == 5 and rows[0]["domains"] == ["commerce"] and rows[0]["licence"] == "MIT"


def test_list_filters_and_skipped(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"swagger": "1.2"}', encoding="utf-8")
    args = own(FIXTURES / "bookshop.openapi.json", bad)
    result = invoke(tmp_path, "list", *args)
    assert result.exit_code == 0, result.output
    assert "cornerbookshop.example:bookshop.openapi:2.1.0" in result.stdout
    assert "1 item(s) skipped" in result.output
    skipped = json.loads(invoke(tmp_path, "list", "--skipped", "--json", *args).stdout)
    assert skipped == [{"source": f"openapi:{bad.resolve()}", "item": str(bad.resolve()),
                        "reason": "bad.json: not an OpenAPI 3 or Swagger 2.0 document (openapi/swagger field '1.2')"}]
    assert json.loads(invoke(tmp_path, "list", "--json", "--domain", "finance", *args).stdout) == []
    unknown = invoke(tmp_path, "list", "--domain", "gardening", *args)
    assert unknown.exit_code == 1 and "unknown domain 'gardening'" in unknown.output


def test_search_and_show(tmp_path: Path) -> None:
    args = own(FIXTURES / "bookshop.openapi.json")
    hits = json.loads(invoke(tmp_path, "search", "cancel an order", "--json", *args).stdout)
    assert hits[0]["id"] == "cornerbookshop.example:bookshop.openapi:2.1.0:cancelOrder" and hits[0]["rank"] == 1
    table = invoke(tmp_path, "search", "cancel an order", *args)
    assert table.exit_code == 0 and "cancelOrder" in table.stdout
    service = invoke(tmp_path, "show", "cornerbookshop.example", *args)
    assert service.exit_code == 0, service.output
    assert "createOrder" in service.stdout and "Corner Bookshop API" in service.stdout
    op = json.loads(invoke(tmp_path, "show", "cornerbookshop.example:bookshop.openapi:createOrder", "--json", *args).stdout)
    assert op["name"] == "createOrder" and op["input_schema"]["required"] == ["body"]
    text = invoke(tmp_path, "show", "cornerbookshop.example:bookshop.openapi:createOrder", *args)
    assert "409" in text.stdout and "body" in text.stdout


def test_unknown_ids_are_clean_errors(tmp_path: Path) -> None:
    result = invoke(tmp_path, "show", "nowhere:at:all", *own(FIXTURES / "bookshop.openapi.json"))
    assert result.exit_code == 1
    assert "error: no service 'nowhere:at:all' in the catalog" in result.output
    assert "Traceback" not in result.output


def test_default_catalog_lists_aws_and_google(default_catalog_cache: Path) -> None:
    result = runner.invoke(app, ["resources", "list", "--json", "--provider", "aws", "--domain", "office",
                                 "--cache-dir", str(default_catalog_cache)])
    assert result.exit_code == 0, result.output
    ids = {row["service"] for row in json.loads(result.stdout)}
    assert {"ses", "sesv2", "workmail"} <= ids


def test_setup_rejects_unknown_steps(tmp_path: Path) -> None:
    result = invoke(tmp_path, "setup", "--only", "everything-please")
    assert result.exit_code == 1
    assert "unknown set-up step(s) everything-please" in result.output


def test_mcp_option_needs_a_command(tmp_path: Path) -> None:
    result = invoke(tmp_path, "list", "--no-defaults", "--mcp", "lonely")
    assert result.exit_code == 1 and "expected NAME=COMMAND" in result.output
