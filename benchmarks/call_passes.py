"""Where one tool call's time goes: the whole call against each pass it makes over its arguments/output.

Run: `python benchmarks/call_passes.py [--repeat N] [--json OUT]`. For four calls (the declarative
`shop.create_order` write and `shop.get_customer` read, the python-toolkit `calendar.respond_to_event`
write and `calendar.get_event` read), all in one process and one run, it prints the p50 of:
- `Session.call` and `SessionGroup.call` (one environment, plain names) of the same call, and the
  session call followed by the two pydantic `model_copy`s the group made per call before (its
  result and call are now built with `trusted_construct`: same fields, same bytes);
- each pass the session path makes, timed alone on the same arguments: the JSON copy of the arguments
  (orjson round trip), the compiled input-schema check, for python toolkits the pydantic conversion of
  the arguments (`_CompiledTool.convert`: the conversion into the parameters' python types, which
  pydantic cannot do without re-reading the types; see `runtime.toolkit`'s contract; for a tool whose
  arguments are plain, `str`/`bool`/string literals, the identity without a pydantic pass, timed against
  that pass and the session call with it, same run), and the
  compiled output-schema check (skipped by the session when the backend says the output is validated,
  as the declarative engine does for records).
The passes' share of the call is what a single validation pass could save at most (issue 15,
deliverable 5). Figures are noisy on a loaded machine: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from envfactory.runtime import load_env, open_group, open_session

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ORDER_ARGS = {"customer_id": "cus_0001", "items": [{"product_id": "EL-100", "quantity": 1}],
              "shipping_address": ADDRESS, "currency": "EUR", "note": "leave at the door", "gift_wrap": True}
RESPONSES = ("accepted", "declined", "tentative")


def p50_us(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000


def calendar_args() -> Callable[[], dict[str, Any]]:
    turn = iter(range(10**9))
    return lambda: {"event_id": "evt_0001", "user_id": "usr_002", "response": RESPONSES[next(turn) % 3]}


def _group_call_before(session: Any, tool: str, args: dict[str, Any]) -> tuple[Any, Any]:
    """What `SessionGroup.call` did per call before it built its result and call with
    `trusted_construct`: the session call, then two pydantic `model_copy(update=...)`s."""
    result = session.call(tool, args).model_copy(update={"tool": tool, "step": 0})
    return result, session.last_call().model_copy(update={"tool": tool})


def passes(env_name: str, tool: str, make_args: Callable[[], dict[str, Any]], repeat: int,
           prepare: Callable[[Any], None] = lambda session: None) -> dict[str, float]:
    env = load_env(env_name)
    session = open_session(env, seed=1)
    prepare(session)
    group = open_group([env], {env.name: session.state_json()}, seed=1, naming="plain")
    args = make_args()
    result = session.call(tool, args)
    assert result.ok, result
    compiled = env.tools[tool]
    figures = {
        "session_call": p50_us(lambda: session.call(tool, make_args()), repeat),
        "group_call": p50_us(lambda: group.call(tool, make_args()), repeat),
        "group_call_before": p50_us(lambda: _group_call_before(session, tool, make_args()), repeat),
        "pass_json_copy": p50_us(lambda: orjson.loads(orjson.dumps(args)), repeat),
        "pass_input_check": p50_us(lambda: compiled.input.check(args), repeat),
        "pass_output_check": p50_us(lambda: compiled.output.check(result.output), repeat),
    }
    python_tools = getattr(env.backend, "_tools", None)  # a python toolkit's compiled tools
    if isinstance(python_tools, dict) and tool in python_tools:
        plain = python_tools[tool]
        pydantic_path = dataclasses.replace(plain, plain=False)
        figures["pass_convert"] = p50_us(lambda: plain.convert(args), repeat)
        if plain.plain:  # the same call with the pydantic pass it now skips: the baseline, same run, alternated
            figures["pass_pydantic_convert"] = p50_us(lambda: pydantic_path.convert(args), repeat)
            timed: dict[str, list[float]] = {"plain": [], "pydantic": []}
            try:
                for turn in range(6):
                    for name in ("plain", "pydantic") if turn % 2 == 0 else ("pydantic", "plain"):
                        python_tools[tool] = plain if name == "plain" else pydantic_path
                        timed[name].append(p50_us(lambda: session.call(tool, make_args()), repeat))
            finally:
                python_tools[tool] = plain
            figures["session_call_plain"] = statistics.median(timed["plain"])
            figures["session_call_with_pydantic"] = statistics.median(timed["pydantic"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()

    def restock(session: Any) -> None:
        for _ in range(20):
            session.call("restock_product", {"sku": "EL-100", "quantity": 1_000_000})

    figures = {
        "shop.create_order": passes("shop", "create_order", lambda: ORDER_ARGS, options.repeat, restock),
        "shop.get_customer": passes("shop", "get_customer", lambda: {"id": "cus_0001"}, options.repeat),
        "calendar.respond_to_event": passes("calendar", "respond_to_event", calendar_args(), options.repeat),
        "calendar.get_event": passes("calendar", "get_event", lambda: {"event_id": "evt_0001"}, options.repeat),
    }
    for call, rows in figures.items():
        whole = rows["session_call"]
        print(f"{call}: session call p50 {whole:.1f} us, group call p50 {rows['group_call']:.1f} us "
              f"(the group's former copies over the session call: {rows['group_call_before']:.1f} us)")
        if "session_call_with_pydantic" in rows:
            before, after = rows["session_call_with_pydantic"], rows["session_call_plain"]
            print(f"  arguments plain: session call p50 {after:.1f} us without the pydantic pass, {before:.1f} us "
                  f"with it (alternated, median of 6 each; without / with: {after / before:.2f})")
        for name, value in rows.items():
            if name.startswith("pass_"):
                print(f"  {name[5:]:<18} {value:8.2f} us  ({value / whole:5.1%} of the session call)")
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        print(f"wrote {options.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
