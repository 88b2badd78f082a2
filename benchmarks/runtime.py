"""Runtime speed: call latency, fork and hash of the declarative engine, plus python-toolkit figures.

Run: `python benchmarks/runtime.py [--quick] [--json OUT]`. Every figure is printed next to a baseline
measured in the same run and their ratio:
- call: `shop.create_order` (6 parameters, two nested; input validation, stock/price lookups, wallet rule,
  stock effects, record constraints, output, call log) against the same call made with pure-Python
  `jsonschema` validation of input and output (when `jsonschema` is importable) — the cost our compiled
  validators avoid;
- fork of a ~1 MB state: `Session.fork()` against `copy.deepcopy` of the state;
- hash after one write on a ~10 MB state (>= 10k records): `Session.hash()` against sha256 of the
  sorted-key JSON of the whole state.
Targets (issue #2): call p50 <= 20 us, fork <= 1 ms, hash after a write <= 1 ms.
- sandboxed calls (issue #3): the calendar toolkit loaded untrusted from a copy of its directory, run in
  a sandbox worker, against the same calls in-process in the same run. Target: sandboxed call p50 <= 500 us.
- authored tools of a hybrid environment (issue #6): a notes environment with 200 records whose
  `rename_note`/`count_notes` are authored python (sandboxed, the state shipped to the worker and
  revalidated on every write) against its declarative `patch_note`/`get_note` in the same run.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from envfactory.runtime import load_env, open_session

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
ORDER_ARGS = {
    "customer_id": "cus_0001",
    "items": [{"product_id": "EL-100", "quantity": 1}],
    "shipping_address": ADDRESS,
    "currency": "EUR",
    "note": "leave at the door",
    "gift_wrap": True,
}


def percentile_us(samples_ns: list[int], q: float) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def timed(fn: Callable[[], Any], repeat: int) -> list[int]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return samples


def shop_state(orders: int, customers: int, products: int) -> dict[str, Any]:
    """A large, valid shop state (records of realistic size)."""
    cats = ["books", "electronics", "home", "toys", "grocery"]
    state: dict[str, Any] = {"collections": {"customers": {}, "products": {}, "orders": {}, "payments": {}}}
    cols = state["collections"]
    for i in range(1, customers + 1):
        key = f"cus_{i:04d}"
        cols["customers"][key] = {"id": key, "name": f"Customer number {i}", "email": f"c{i}@example.com",
                                  "wallet_balance": 1_000_000.0, "active": True}
    for i in range(1, products + 1):
        sku = f"SKU-{i:05d}"
        cols["products"][sku] = {"sku": sku, "title": f"Product {i} with a descriptive title", "price": 10.0 + i % 90,
                                 "stock": 1_000_000, "category": cats[i % 5]}
    for i in range(1, orders + 1):
        key = f"ord_{i:05d}"
        items = [{"product_id": f"SKU-{(i * 7 + j) % products + 1:05d}", "quantity": 1 + j} for j in range(3)]
        cols["orders"][key] = {"id": key, "customer_id": f"cus_{i % customers + 1:04d}", "items": items,
                               "shipping_address": {**ADDRESS, "line1": f"{i} Long Street Name Apartment {i % 50}"},
                               "total": 123.45, "currency": "USD", "status": "pending",
                               "note": "Please deliver between nine and five; ring twice. " * 2,
                               "created_at": "2025-12-01T10:00:00Z"}
    state["counters"] = {"customers": customers, "products": 0, "orders": orders, "payments": 0}
    return state


def size_mb(state: Any) -> float:
    return len(orjson.dumps(state)) / 1e6


def bench_call(repeat: int) -> dict[str, float]:
    env = load_env("shop")
    session = open_session(env, seed=1)
    for _ in range(20):
        session.call("restock_product", {"sku": "EL-100", "quantity": 10000})
    assert session.call("create_order", ORDER_ARGS).ok
    samples = timed(lambda: session.call("create_order", ORDER_ARGS), repeat)
    result = {"call_p50_us": percentile_us(samples, 0.5), "call_p99_us": percentile_us(samples, 0.99)}
    read = timed(lambda: session.call("get_customer", {"id": "cus_0001"}), repeat)
    result["read_call_p50_us"] = percentile_us(read, 0.5)
    try:
        import jsonschema  # optional baseline: pure-Python validation, as most peers do
    except ImportError:
        return result
    tool = env.spec.tool("create_order")
    assert tool is not None
    in_v = jsonschema.Draft202012Validator(tool.input_schema)
    out_v = jsonschema.Draft202012Validator(tool.output_schema)

    def pure_python_call() -> None:
        in_v.validate(ORDER_ARGS)
        out = session.call("create_order", ORDER_ARGS).output
        out_v.validate(out)

    base = timed(pure_python_call, repeat)
    result["baseline_pure_python_validation_p50_us"] = percentile_us(base, 0.5)
    return result


def bench_fork(repeat: int) -> dict[str, float]:
    env = load_env("shop")
    state = shop_state(orders=1900, customers=200, products=300)
    session = open_session(env, state, seed=1)
    json_state = session.state_json()
    fork = timed(session.fork, repeat)
    deep = timed(lambda: copy.deepcopy(json_state), max(20, repeat // 20))

    def fork_then_write() -> None:
        child = session.fork()
        child.call("create_order", ORDER_ARGS)

    first_write = timed(fork_then_write, max(50, repeat // 10))
    return {
        "fork_state_mb": size_mb(json_state),
        "fork_p50_us": percentile_us(fork, 0.5),
        "baseline_deepcopy_p50_us": percentile_us(deep, 0.5),
        "fork_plus_first_write_p50_us": percentile_us(first_write, 0.5),
    }


def bench_hash(repeat: int) -> dict[str, float]:
    env = load_env("shop")
    state = shop_state(orders=19000, customers=1000, products=1000)
    started = time.perf_counter()
    session = open_session(env, state, seed=1)
    load_s = time.perf_counter() - started
    json_state = session.state_json()
    records = sum(len(c) for c in json_state["collections"].values())
    samples = []
    for i in range(repeat):
        session.call("top_up_wallet", {"id": f"cus_{i % 1000 + 1:04d}", "amount": 1})
        start = time.perf_counter_ns()
        session.hash()
        samples.append(time.perf_counter_ns() - start)
    full = timed(lambda: hashlib.sha256(json.dumps(json_state, sort_keys=True).encode()).hexdigest(), 5)
    fast_full = timed(lambda: hashlib.sha256(orjson.dumps(json_state, option=orjson.OPT_SORT_KEYS)).hexdigest(), 5)
    return {
        "hash_state_mb": size_mb(json_state),
        "hash_records": float(records),
        "state_load_ms": load_s * 1000,
        "hash_after_write_p50_us": percentile_us(samples, 0.5),
        "baseline_sha256_sorted_json_p50_us": percentile_us(full, 0.5),
        "baseline_sha256_sorted_orjson_p50_us": percentile_us(fast_full, 0.5),
    }


def bench_python_toolkit(repeat: int) -> dict[str, float]:
    try:
        env = load_env("calendar")
    except Exception as exc:  # the python reference env is optional for this script
        print(f"(python toolkit figures skipped: {exc})", file=sys.stderr)
        return {}
    session = open_session(env, seed=1)
    state = session.state_json()
    fork = timed(session.fork, repeat)
    hashes = timed(session.hash, repeat)
    deep = timed(lambda: copy.deepcopy(state), repeat)
    read = timed(lambda: session.call("get_event", {"event_id": "evt_0001"}), repeat)
    responses = ["accepted", "declined", "tentative"]
    turn = iter(range(10**9))

    def respond() -> None:
        result = session.call("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002",
                                                   "response": responses[next(turn) % 3]})
        assert result.ok, result

    write = timed(respond, repeat)
    return {
        "python_read_call_p50_us": percentile_us(read, 0.5),
        "python_write_call_p50_us": percentile_us(write, 0.5),
        "python_fork_p50_us": percentile_us(fork, 0.5),
        "python_hash_p50_us": percentile_us(hashes, 0.5),
        "python_baseline_deepcopy_p50_us": percentile_us(deep, 0.5),
    }


def bench_sandbox(repeat: int) -> dict[str, float]:
    """Sandboxed calendar calls (untrusted copy, one worker) against the same calls in-process."""
    try:
        from envfactory.runtime.loader import bundled_envs_root
        from envfactory.runtime.sandbox import SandboxPool
    except ImportError as exc:
        print(f"(sandbox figures skipped: {exc})", file=sys.stderr)
        return {}
    responses = ["accepted", "declined", "tentative"]
    read_args = {"event_id": "evt_0001"}
    with tempfile.TemporaryDirectory() as tmp, SandboxPool(max_workers=1) as pool:
        copy_dir = Path(tmp) / "calendar"
        shutil.copytree(bundled_envs_root() / "calendar", copy_dir)
        started = time.perf_counter()
        try:
            boxed_env = load_env(copy_dir, sandbox=pool)
        except Exception as exc:  # no usable sandbox on this machine: say so, keep the other figures
            print(f"(sandbox figures skipped: {exc})", file=sys.stderr)
            return {}
        start_ms = (time.perf_counter() - started) * 1000
        boxed = open_session(boxed_env, seed=1)
        local = open_session(load_env("calendar"), seed=1)
        figures: dict[str, float] = {"sandbox_worker_start_ms": start_ms}
        for name, session in (("sandbox", boxed), ("sandbox_inprocess", local)):
            turn = iter(range(10**9))

            def respond(session: Any = session, turn: Any = turn) -> None:
                result = session.call("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002",
                                                           "response": responses[next(turn) % 3]})
                assert result.ok, result

            for _ in range(50):  # warm up both paths
                session.call("get_event", read_args)
            read = timed(lambda session=session: session.call("get_event", read_args), repeat)
            write = timed(respond, repeat)
            figures[f"{name}_read_call_p50_us"] = percentile_us(read, 0.5)
            figures[f"{name}_read_call_p99_us"] = percentile_us(read, 0.99)
            figures[f"{name}_write_call_p50_us"] = percentile_us(write, 0.5)
        assert boxed.hash() == local.hash()  # same calls, same seed: same state across the boundary
        figures["sandbox_fork_p50_us"] = percentile_us(timed(boxed.fork, repeat), 0.5)
        figures["sandbox_snapshot_p50_us"] = percentile_us(timed(boxed.snapshot, max(20, repeat // 10)), 0.5)
        figures["sandbox_inprocess_snapshot_p50_us"] = percentile_us(timed(local.snapshot, max(20, repeat // 10)), 0.5)
        return figures


_HYBRID_BODY = '''
class AuthoredTools(AuthoredBase):
    @tool(effect="write")
    def rename_note(self, id: str, text: str) -> dict[str, Any]:
        """Give a note a new text.

        Args:
            id: the note.
            text: its new text.
        """
        note = self.record("notes", id)
        if note is None:
            raise self.not_found(f"no note {id}")
        note["text"] = text
        self.put("notes", note)
        return note

    @tool(effect="read")
    def count_notes(self) -> dict[str, Any]:
        """How many notes there are."""
        return {"count": len(self.records("notes"))}
'''


def bench_hybrid(repeat: int) -> dict[str, float]:
    """Authored (sandboxed) calls of a hybrid environment against declarative calls of the same env."""
    try:
        from envfactory.runtime.declarative.compile import compile_source
        from envfactory.runtime.hybrid import authored_module
        from envfactory.runtime.sandbox import SandboxPool
        from envfactory.spec import (
            AuthoredCode,
            DeclarativeEnvSource,
            EnvSpec,
            HybridImplementation,
            ToolSpec,
        )
    except ImportError as exc:
        print(f"(hybrid figures skipped: {exc})", file=sys.stderr)
        return {}
    record = {"type": "object", "properties": {"id": {"type": "string"}, "text": {"type": "string"}},
              "required": ["id", "text"], "additionalProperties": False}
    key_arg = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": False}
    source = DeclarativeEnvSource.model_validate({
        "meta": {"name": "notes_bench"},
        "collections": {"notes": {"id_prefix": "n_", "id_width": 4, "record_schema": record}},
        "tools": [
            {"name": "get_note", "description": "Get a note.", "input_schema": key_arg,
             "operation": {"kind": "get", "collection": "notes"}},
            {"name": "patch_note", "description": "Change a note.", "operation": {"kind": "patch", "collection": "notes"},
             "input_schema": {**key_arg, "properties": {"id": {"type": "string"}, "text": {"type": "string"}}}},
        ],
    })
    declarative = compile_source(source)
    model = declarative.implementation.model  # type: ignore[union-attr]
    rename = ToolSpec(name="rename_note", description="Give a note a new text.", effect="write", idempotent=False,
                      input_schema={"type": "object", "properties": {"id": {"type": "string"}, "text": {"type": "string"}},
                                    "required": ["id", "text"], "additionalProperties": False},
                      output_schema=record)
    count = ToolSpec(name="count_notes", description="How many notes there are.", effect="read", idempotent=True,
                     input_schema={"type": "object", "properties": {}, "additionalProperties": False},
                     output_schema={"type": "object", "properties": {"count": {"type": "integer"}}})
    spec = EnvSpec(meta=declarative.meta, state_schema=declarative.state_schema,
                   tools=[*declarative.tools, rename, count],
                   implementation=HybridImplementation(model=model, authored=AuthoredCode(
                       class_name="AuthoredTools", source=authored_module(model, _HYBRID_BODY),
                       tools=["rename_note", "count_notes"]))).seal()
    state = {"collections": {"notes": {f"n_{i:04d}": {"id": f"n_{i:04d}", "text": f"note {i}"} for i in range(1, 201)}},
             "counters": {"notes": 200}}
    with tempfile.TemporaryDirectory() as tmp, SandboxPool(max_workers=1) as pool:
        directory = Path(tmp) / "notes_bench"
        directory.mkdir()
        (directory / "spec.json").write_bytes(spec.to_json_bytes())
        try:
            env = load_env(directory, sandbox=pool)
        except Exception as exc:  # no usable sandbox on this machine: say so, keep the other figures
            print(f"(hybrid figures skipped: {exc})", file=sys.stderr)
            return {}
        session = open_session(env, state, seed=1)
        turn = iter(range(10**9))
        calls = {
            "hybrid_authored_read": lambda: session.call("count_notes", {}),
            "hybrid_declarative_read": lambda: session.call("get_note", {"id": "n_0007"}),
            "hybrid_authored_write": lambda: session.call("rename_note", {"id": "n_0007", "text": f"t{next(turn)}"}),
            "hybrid_declarative_write": lambda: session.call("patch_note", {"id": "n_0007", "text": f"t{next(turn)}"}),
        }
        figures: dict[str, float] = {}
        for name, call in calls.items():
            for _ in range(20):
                assert call().ok
            figures[f"{name}_p50_us"] = percentile_us(timed(call, repeat), 0.5)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    repeat = 300 if args.quick else 3000
    gc.collect()
    figures: dict[str, float] = {}
    figures |= bench_call(repeat)
    figures |= bench_fork(repeat)
    figures |= bench_hash(max(100, repeat // 10))
    figures |= bench_python_toolkit(max(100, repeat // 10))
    figures |= bench_sandbox(max(300, repeat // 3))
    figures |= bench_hybrid(max(100, repeat // 10))

    def line(name: str, value: float, baseline: float | None, target: str) -> None:
        ratio = f"{baseline / value:8.1f}x faster than baseline" if baseline else ""
        print(f"{name:<42} {value:10.1f} us  {target:<12} {ratio}")

    print(f"\nenvfactory runtime benchmark (python {sys.version.split()[0]})")
    print(f"{'figure':<42} {'value':>13}  {'target':<12} ratio")
    line("call p50 (shop.create_order)", figures["call_p50_us"], figures.get("baseline_pure_python_validation_p50_us"), "<= 20 us")
    line("call p99 (shop.create_order)", figures["call_p99_us"], None, "")
    line("read call p50 (shop.get_customer)", figures["read_call_p50_us"], None, "")
    line(f"fork p50 ({figures['fork_state_mb']:.1f} MB state)", figures["fork_p50_us"], figures["baseline_deepcopy_p50_us"], "<= 1000 us")
    line("fork + first write p50", figures["fork_plus_first_write_p50_us"], figures["baseline_deepcopy_p50_us"], "")
    line(f"hash after write p50 ({figures['hash_state_mb']:.1f} MB, {int(figures['hash_records'])} rec)",
         figures["hash_after_write_p50_us"], figures["baseline_sha256_sorted_json_p50_us"], "<= 1000 us")
    print(f"{'  baseline: sha256 of sorted orjson':<42} {figures['baseline_sha256_sorted_orjson_p50_us']:10.1f} us")
    if "python_fork_p50_us" in figures:
        line("python toolkit (calendar) fork p50", figures["python_fork_p50_us"], figures["python_baseline_deepcopy_p50_us"], "")
        line("python toolkit (calendar) hash p50", figures["python_hash_p50_us"], None, "")
        line("python toolkit read call p50 (get_event)", figures["python_read_call_p50_us"], None, "")
        line("python toolkit write call p50 (respond_to_event)", figures["python_write_call_p50_us"], None, "")
    if "sandbox_read_call_p50_us" in figures:

        def versus(name: str, value: float, in_process: float, target: str) -> None:
            print(f"{name:<42} {value:10.1f} us  {target:<12} {value / in_process:8.1f}x the in-process call")

        versus("sandboxed read call p50 (calendar.get_event)", figures["sandbox_read_call_p50_us"],
               figures["sandbox_inprocess_read_call_p50_us"], "<= 500 us")
        versus("sandboxed read call p99", figures["sandbox_read_call_p99_us"],
               figures["sandbox_inprocess_read_call_p99_us"], "")
        versus("sandboxed write call p50 (respond_to_event)", figures["sandbox_write_call_p50_us"],
               figures["sandbox_inprocess_write_call_p50_us"], "<= 500 us")
        versus("sandboxed snapshot p50", figures["sandbox_snapshot_p50_us"],
               figures["sandbox_inprocess_snapshot_p50_us"], "")
        print(f"{'sandboxed fork p50 (no copy: states are immutable)':<42} {figures['sandbox_fork_p50_us']:10.1f} us")
        print(f"{'sandbox worker start (confine, import, spec)':<42} {figures['sandbox_worker_start_ms']:10.1f} ms")
    if "hybrid_authored_read_p50_us" in figures:
        for kind in ("read", "write"):
            authored, declarative = figures[f"hybrid_authored_{kind}_p50_us"], figures[f"hybrid_declarative_{kind}_p50_us"]
            print(f"{'hybrid authored ' + kind + ' p50 (200 records)':<42} {authored:10.1f} us  {'':<12} "
                  f"{authored / declarative:8.1f}x the declarative {kind} of the same env ({declarative:.1f} us)")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(figures, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
