"""Hostile text and the CLI runner shared by `test_hostile.py` and `test_hostile_models.py`.

- `HOSTILE`: Rich markup (`[/]`, `[bold]`, `[link=...]`), an emoji code and terminal control sequences
  (CSI, OSC with BEL, C1 CSI, backspace, NUL).
- `invoke` runs a command in-process with a wide, colourless terminal; `assert_clean` fails on a
  traceback, an unexpected exception or any control character in the output (Rich adds no colour when
  the output is not a terminal, so an escape byte would be the data's).
- `write_hostile_env` copies the bundled `shop` with `HOSTILE` in its description, policy, tool and
  parameter descriptions and customer names; `write_hostile_openapi` writes an OpenAPI document carrying
  it; `hostile_shop_tasks` are tasks on `shop` whose user text and expected answer are `HOSTILE`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.runtime import load_env, open_group
from envfactory.runtime.loader import bundled_envs_root
from envfactory.spec import (
    EnvRef,
    GoldCall,
    OutputContainsCheck,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    Turn,
)

HOSTILE = ("[/] [bold]b[/bold] [link=file:///etc/passwd]l[/link] :smile: \x1b[31mred\x1b[0m "
           "\x1b]0;pwned\x07 \x9b2J back\x08space nul\x00 [/]")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run `envfactory ARGS...` in this process (200 columns, no colour)."""
    return _runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})})


def assert_clean(result: Any, *, ok: bool = True) -> str:
    """The output of `result`, which must hold no traceback and no control character (and, with `ok`,
    come from a successful run)."""
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if ok:
        assert result.exit_code == 0, output
    bad = sorted({f"{ord(c):#04x}" for c in CONTROL.findall(output)})
    assert not bad, f"control characters {bad} reached the terminal:\n{output!r}"[:3000]
    return str(output)


def write_hostile_env(target: Path) -> Path:
    """The bundled `shop`, copied to `target` with `HOSTILE` in its texts and seed records."""
    shutil.copytree(bundled_envs_root() / "shop", target)
    spec = json.loads((target / "env.json").read_text(encoding="utf-8"))
    spec["meta"]["description"] += HOSTILE
    spec["meta"]["policy"] = HOSTILE
    for tool in spec["tools"]:
        tool["description"] += " " + HOSTILE
        for prop in tool["input_schema"].get("properties", {}).values():
            prop["description"] = prop.get("description", "") + " " + HOSTILE
    (target / "env.json").write_text(json.dumps(spec), encoding="utf-8")
    seed = target / "seeds" / "default.json"
    data = json.loads(seed.read_text(encoding="utf-8"))
    for record in data.get("customers", {}).values():
        record["name"] = record["name"] + " " + HOSTILE
    seed.write_text(json.dumps(data), encoding="utf-8")
    return target


def write_hostile_openapi(path: Path) -> Path:
    """An OpenAPI document whose title, summary, descriptions and schema texts are `HOSTILE`."""
    doc = {
        "openapi": "3.0.3",
        "info": {"title": f"Hostile {HOSTILE}", "version": "1.0", "description": HOSTILE},
        "paths": {"/widgets/{id}": {"get": {
            "operationId": "getWidget", "summary": f"Get a widget {HOSTILE}", "description": HOSTILE,
            "parameters": [{"name": "id", "in": "path", "required": True, "description": HOSTILE,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": HOSTILE, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"id": {"type": "string", "description": HOSTILE}}}}}}},
        }}},
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def hostile_shop_tasks() -> list[Task]:
    """A write task and a read-only task on the bundled `shop`, their user text and facts `HOSTILE`."""
    shop = load_env("shop")
    tasks = []
    for tool, arguments, read_only in [("shop__top_up_wallet", {"id": "cus_0002", "amount": 15}, False),
                                       ("shop__get_product", {"sku": "BK-001"}, True)]:
        group = open_group([shop], {"shop": shop.default_state()}, seed=1)
        result = group.call(tool, arguments)
        assert result.ok, result
        fields: dict[str, Any] = {
            "envs": [EnvRef(name="shop", version=shop.spec.version, content_hash=shop.spec.content_hash)],
            "initial_state": {"shop": shop.default_state()}, "seed": 1,
            "turns": [Turn(user=ScriptedUser(text=f"{HOSTILE} {tool}"),
                           gold_calls=[GoldCall(tool=tool, arguments=arguments, essential_arguments=list(arguments),
                                                result=result.output)])],
            "origin": TaskOrigin(source="synth", domain="commerce"),
        }
        if read_only:
            fields["reward"] = RewardSpec(final_state="not_scored")
            fields["checks"] = [OutputContainsCheck(text=HOSTILE)]
        else:
            fields["expected_final_state"] = {"shop": group.sessions["shop"].state_json()}
        tasks.append(Task.create(**fields))
    return tasks
