"""Agreement of our BFCL multi-turn checker with BFCL's own, on gold and corrupted trajectories.

Contract:
- `corrupt` builds one seeded corruption of an entry's gold turns (or None where the class has no
  place in the entry): `drop_call`, `alter_argument`, `reorder_calls`, `add_write` (see docs/eval.md)
  `held_out_early`: a copy of a held-out function's gold call made in the turn before the one that
  restores it (missing-function and composite entries only), where the model is not shown it; and
  `stringify_number`: one integer or float argument passed as its string (`5` -> `'5'`), which our
  schema refuses and BFCL's executor passes on.
- `official_check` calls BFCL's `multi_turn_checker` in-process with a fresh model name each time and
  deletes the instances it leaves in its module globals. It `eval`s call strings, so it is only ever
  given strings from benchmark data (gold calls and their corruptions), never model output.
- `agreement` runs both checkers on every expressible entry of a category and counts, per class, the
  cases, each side's passes and the cases where the verdicts agree; entries the adapter cannot express
  are counted as skipped with their reason (never scored).
- `python -m envfactory.eval.bfcl_agreement [CATEGORY...]` prints the table (docs/eval.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from envfactory.eval.bfcl import (
    CATEGORIES,
    BfclEntry,
    Call,
    Category,
    Execution,
    LoadedCategory,
    bfcl_environments,
    check,
    execute,
    gold_turns,
    load_tasks,
    parameter_order,
    render_call,
    require_bfcl,
)
from envfactory.eval.corruption import altered
from envfactory.runtime import Environment
from envfactory.spec import Task

__all__ = ["CORRUPTIONS", "Agreement", "agreement", "corrupt", "official_check"]

CORRUPTIONS = ("drop_call", "alter_argument", "reorder_calls", "add_write", "held_out_early", "stringify_number")


def _held_out_early(task: Task, turns: list[list[Call]], rng: random.Random) -> list[list[Call]] | None:
    places = []
    for index, turn in enumerate(task.turns):
        if index == 0 or turn.available_tools is None or task.turns[index - 1].available_tools is None:
            continue
        hidden_before = set(turn.available_tools) - set(task.turns[index - 1].available_tools or [])
        places += [(index, i) for i, call in enumerate(turns[index]) if call.name in hidden_before]
    if not places:
        return None
    t, i = rng.choice(places)
    out = [list(calls) for calls in turns]
    out[t - 1].append(turns[t][i])
    return out


def corrupt(kind: str, task: Task, turns: list[list[Call]], gold: Execution, seed: str) -> list[list[Call]] | None:
    """A seeded corruption of gold turns, or None when the class does not apply to this task."""
    rng = random.Random(f"{seed}:{kind}")
    positions = [(t, i) for t, calls in enumerate(turns) for i in range(len(calls))]
    out = [list(calls) for calls in turns]
    if kind == "drop_call":
        if not positions:
            return None
        t, i = rng.choice(positions)
        del out[t][i]
    elif kind == "alter_argument":
        candidates = [(t, i) for t, i in positions if turns[t][i].arguments]
        if not candidates:
            return None
        t, i = rng.choice(candidates)
        call = turns[t][i]
        key = rng.choice(sorted(call.arguments))
        out[t][i] = Call(call.name, {**call.arguments, key: altered(call.arguments[key])})
    elif kind == "reorder_calls":
        pairs = [(t, i) for t, calls in enumerate(turns) for i in range(len(calls) - 1)
                 if calls[i] != calls[i + 1]]
        if not pairs:
            return None
        t, i = rng.choice(pairs)
        out[t][i], out[t][i + 1] = out[t][i + 1], out[t][i]
    elif kind == "add_write":
        writes = [(t, i) for t, i in positions if gold.changed[t][i]]
        if not writes:
            return None
        t, i = rng.choice(writes)
        out[t].insert(i + 1, turns[t][i])  # the same state-changing call once more
    elif kind == "held_out_early":
        return _held_out_early(task, turns, rng)
    elif kind == "stringify_number":
        numbers = [(t, i, key) for t, i in positions for key, value in sorted(turns[t][i].arguments.items())
                   if isinstance(value, int | float) and not isinstance(value, bool)]
        if not numbers:
            return None
        t, i, key = rng.choice(numbers)
        call = turns[t][i]
        out[t][i] = Call(call.name, {**call.arguments, key: str(call.arguments[key])})
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")
    return out


# -- the official checker -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _clean_official_globals(prefix: str) -> Iterator[None]:
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    try:
        yield
    finally:
        for key in [k for k in vars(utils) if k.startswith(prefix)]:
            del vars(utils)[key]


def official_check(entry: BfclEntry, turns: Sequence[Sequence[str]]) -> dict[str, Any]:
    """BFCL's own multi-turn checker on call strings from benchmark data (never model output)."""
    require_bfcl()
    checker = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
    model_name = f"envfactory_agreement_{uuid.uuid4().hex}"
    with _clean_official_globals(model_name):
        decoded = [[list(calls)] if calls else [] for calls in turns]
        result: dict[str, Any] = checker.multi_turn_checker(
            decoded, entry.ground_truth, entry.raw, f"multi_turn_{entry.category}", model_name
        )
    return result


# -- agreement -----------------------------------------------------------------------------------------------
@dataclass
class Agreement:
    """Per class (`gold` or a corruption): cases run, verdicts of each checker, cases where they agree,
    entries where the class has no place, and entries skipped as unexpressible."""

    cases: int = 0
    ours_valid: int = 0
    official_valid: int = 0
    agree: int = 0
    not_applicable: int = 0
    skipped: int = 0
    disagreements: list[str] = field(default_factory=list)


def agreement(
    loaded: LoadedCategory, envs: dict[str, Environment], kinds: Sequence[str] = CORRUPTIONS, *,
    official_compat: bool = True,
) -> dict[str, Agreement]:
    """Our checker vs BFCL's on every expressible entry's gold calls and on each seeded corruption.

    Gold is replayed with the original call strings on BFCL's side and with the parsed calls on ours;
    corruptions are built on parsed calls and rendered back to strings for BFCL. `official_compat` is
    passed to our `execute` on both sides (it takes effect with `bfcl_environments(official_compat=True)`
    environments; held-out functions run either way).
    """
    table = {kind: Agreement(skipped=len(loaded.skipped)) for kind in ("gold", *kinds)}
    for entry, task in zip(loaded.entries, loaded.tasks, strict=True):
        gold_calls = gold_turns(task)
        gold = execute(task, envs, gold_calls, track_changes=True, official_compat=official_compat)
        variants: list[tuple[str, list[list[Call]] | None, list[list[str]] | None]] = [
            ("gold", gold_calls, entry.ground_truth)
        ]
        variants += [(kind, corrupt(kind, task, gold_calls, gold, entry.id), None) for kind in kinds]
        for kind, turns, strings in variants:
            row = table[kind]
            if turns is None:
                row.not_applicable += 1
                continue
            mine = execute(task, envs, turns, official_compat=official_compat)
            ours = check(task, mine, gold, turns).valid
            theirs = bool(official_check(entry, strings or [[render_call(c) for c in t] for t in turns])["valid"])
            row.cases += 1
            row.ours_valid += ours
            row.official_valid += theirs
            if ours == theirs:
                row.agree += 1
            else:
                row.disagreements.append(entry.id)
    return table


def _print_table(category: str, table: dict[str, Agreement]) -> None:
    for kind, row in table.items():
        share = f"{100 * row.agree / row.cases:.1f}%" if row.cases else "-"
        print(f"| {category} | {kind} | {row.cases} | {row.not_applicable} | {row.skipped} | {row.ours_valid} | "
              f"{row.official_valid} | {row.agree} ({share}) |")
        if row.disagreements:
            print(f"|   disagreements: {', '.join(row.disagreements)} |")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the agreement table for the given categories (all five by default), in-process backends."""
    parser = argparse.ArgumentParser(description="BFCL multi-turn: our checker vs the official one")
    parser.add_argument("categories", nargs="*", help=f"any of {', '.join(CATEGORIES)} (default: all)")
    parser.add_argument("--strict", action="store_true", help="our runtime without official-compat behaviour")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.categories) - set(CATEGORIES))
    if unknown:
        parser.error(f"unknown BFCL categories {unknown}; expected some of {list(CATEGORIES)}")
    order = parameter_order()
    # In-process on purpose: benchmark data only (gold calls and their corruptions).
    envs = bfcl_environments(trusted=True, official_compat=not args.strict)
    print("| category | class | cases | n/a | skipped | pass (ours) | pass (official) | agree |")
    print("|---|---|---|---|---|---|---|---|")
    for category in args.categories or CATEGORIES:
        chosen: Category = category
        loaded = load_tasks(chosen, order)
        _print_table(category, agreement(loaded, envs, official_compat=not args.strict))
        for entry_id, reason in loaded.skipped.items():
            print(f"skipped {entry_id}: {reason}")


if __name__ == "__main__":
    main()
