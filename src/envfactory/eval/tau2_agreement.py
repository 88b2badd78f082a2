"""Agreement of our τ² checks with tau2's own evaluators, on gold and corrupted trajectories (issue 18).

Contract:
- `official_reward(case, steps)` runs tau2's `EnvironmentEvaluator` (DB and environment assertions),
  `ActionEvaluator` and `CommunicateEvaluator` in-process on a trajectory whose tool messages come from
  tau2's own execution (from the task's initial state, agent calls as `AssistantMessage`s, user calls as
  `UserMessage`s, each with its requestor), combined as `evaluate_simulation` combines them for
  `EvaluationType.ALL` (tau2's registry imports litellm, which we do not install). It returns the reward,
  each component and the tool messages' texts. Benchmark data only: tau2's `calculate` `eval`s.
- `corrupt(kind, steps, writes, seed)` builds one seeded corruption of gold steps, or None where the class
  has no place: `drop_call`, `alter_argument`, `reorder_calls`, `add_write`, `drop_message` (as before),
  `stringify_number` (one number argument passed as its string), `drop_argument` (one argument left
  out), `drop_user_call` (one of the user's gold actions left out) and `swap_requestor` (one of the
  user's gold actions made by the agent instead, which both sides refuse as an unknown tool).
- `agreement(cases, env)` counts per class the cases, each side's passes, the cases whose rewards agree,
  those whose components all agree, and those whose every tool output (result or error text) is
  tau2's text byte for byte; disagreements are listed by task id.
- `python -m envfactory.eval.tau2_agreement [DOMAIN...] [--every N]` prints the table (docs/eval.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envfactory.eval.corruption import altered
from envfactory.eval.tau2 import (
    DOMAINS,
    Replay,
    Step,
    Tau2Case,
    check,
    domain_module,
    gold_steps,
    load_cases,
    replay,
    require_tau2,
    tau2_environment,
)
from envfactory.runtime import Environment

__all__ = ["CORRUPTIONS", "Tau2Agreement", "agreement", "corrupt", "main", "official_reward"]

CORRUPTIONS = ("drop_call", "alter_argument", "reorder_calls", "add_write", "drop_message", "stringify_number",
               "drop_argument", "drop_user_call", "swap_requestor")


# -- the official evaluators ------------------------------------------------------------------------------
def _official_env(case: Tau2Case) -> Any:
    """tau2's environment of the case's domain with the task's initial state applied, as its evaluator sets it."""
    env = domain_module(case.domain).get_environment()
    initial = case.source.initial_state
    if initial is not None:
        env.set_state(initialization_data=initial.initialization_data,
                      initialization_actions=initial.initialization_actions, message_history=[])
    return env


def _official_messages(case: Tau2Case, steps: Sequence[Step]) -> list[Any]:
    message = importlib.import_module("tau2.data_model.message")
    env = _official_env(case)
    messages: list[Any] = []
    for index, step in enumerate(steps):
        if step.is_call:
            call = message.ToolCall(id=f"call_{index}", name=step.tool, arguments=step.arguments,
                                    requestor=step.requestor)
            if step.requestor == "user":
                messages.append(message.UserMessage(role="user", tool_calls=[call]))
            else:
                messages.append(message.AssistantMessage(role="assistant", tool_calls=[call]))
            messages.append(env.get_response(call))  # tau2's own execution (benchmark data only)
        else:
            messages.append(message.AssistantMessage(role="assistant", content=step.text))
    return messages


def official_reward(case: Tau2Case, steps: Sequence[Step]) -> dict[str, Any]:
    """tau2's own evaluators on `steps` (see the module docstring): `reward`, `db`, `env_assertion`,
    `action`, `communicate` (floats) and `outputs` (the tool messages' texts, in order)."""
    require_tau2(evaluators=True)
    env_eval = importlib.import_module("tau2.evaluator.evaluator_env").EnvironmentEvaluator
    action_eval = importlib.import_module("tau2.evaluator.evaluator_action").ActionEvaluator
    comm_eval = importlib.import_module("tau2.evaluator.evaluator_communicate").CommunicateEvaluator
    messages = _official_messages(case, steps)
    constructor = domain_module(case.domain).get_environment
    env_info = env_eval.calculate_reward(environment_constructor=constructor, task=case.source,
                                         full_trajectory=messages)
    action_info = action_eval.calculate_reward(task=case.source, full_trajectory=messages)
    comm_info = comm_eval.calculate_reward(task=case.source, full_trajectory=messages)
    total = 1.0
    if case.reward_basis & {"DB", "ENV_ASSERTION"}:
        total *= env_info.reward
    if "ACTION" in case.reward_basis:
        total *= action_info.reward
    if "COMMUNICATE" in case.reward_basis:
        total *= comm_info.reward
    assertions = env_info.env_assertions or []
    return {"reward": total, "db": float(env_info.db_check.db_reward if env_info.db_check else 1.0),
            "env_assertion": float(all(a.met for a in assertions)),
            "action": action_info.reward, "communicate": comm_info.reward,
            "outputs": [m.content for m in messages if getattr(m, "role", "") == "tool"]}


# -- corruptions ------------------------------------------------------------------------------------------
def _numbers(arguments: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in arguments.items() if isinstance(v, int | float) and not isinstance(v, bool))


def corrupt(kind: str, steps: list[Step], writes: set[str], seed: str) -> list[Step] | None:  # long: one branch per class
    """A seeded corruption of gold steps, or None when the class does not apply."""
    rng = random.Random(f"{seed}:{kind}")
    calls = [i for i, s in enumerate(steps) if s.is_call]
    out = list(steps)
    if kind in ("drop_call", "drop_user_call"):
        candidates = [i for i in calls if kind == "drop_call" or steps[i].requestor == "user"]
        if not candidates:
            return None
        del out[rng.choice(candidates)]
    elif kind in ("alter_argument", "stringify_number", "drop_argument"):
        pick = _numbers if kind == "stringify_number" else (lambda a: sorted(a))
        candidates = [i for i in calls if pick(steps[i].arguments)]
        if not candidates:
            return None
        i = rng.choice(candidates)
        key = rng.choice(pick(steps[i].arguments))
        args = dict(steps[i].arguments)
        if kind == "drop_argument":
            del args[key]
        else:
            args[key] = altered(args[key]) if kind == "alter_argument" else str(args[key])
        out[i] = Step(steps[i].tool, args, requestor=steps[i].requestor)
    elif kind == "reorder_calls":
        pairs = [i for i in calls[:-1] if i + 1 in calls and steps[i] != steps[i + 1]]
        if not pairs:
            return None
        i = rng.choice(pairs)
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "add_write":
        candidates = [i for i in calls if steps[i].tool in writes]
        if not candidates:
            return None
        i = rng.choice(candidates)
        out.insert(i + 1, steps[i])
    elif kind == "drop_message":
        texts = [i for i, s in enumerate(steps) if not s.is_call]
        if not texts:
            return None
        del out[rng.choice(texts)]
    elif kind == "swap_requestor":
        candidates = [i for i in calls if steps[i].requestor == "user"]
        if not candidates:
            return None
        i = rng.choice(candidates)
        out[i] = Step(steps[i].tool, dict(steps[i].arguments), requestor="assistant")
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")
    return out


# -- agreement ----------------------------------------------------------------------------------------------
@dataclass
class Tau2Agreement:
    """Running tally of how often our τ² rewards agree with the official evaluator's, overall, per
    component and per tool output, with the cases that disagree."""
    cases: int = 0
    ours_pass: int = 0
    official_pass: int = 0
    agree: int = 0
    agree_components: int = 0
    agree_outputs: int = 0
    not_applicable: int = 0
    disagreements: list[str] = field(default_factory=list)
    component_mismatches: Counter[str] = field(default_factory=Counter)
    output_mismatches: list[str] = field(default_factory=list)


def _tally(row: Tau2Agreement, case: Tau2Case, env: Environment, steps: list[Step], gold: Replay) -> None:
    ours = check(case, env, steps, gold)
    theirs = official_reward(case, steps)
    row.cases += 1
    row.ours_pass += ours.reward == 1.0
    row.official_pass += theirs["reward"] == 1.0
    if ours.reward == theirs["reward"]:
        row.agree += 1
    else:
        row.disagreements.append(f"{case.domain}:{case.source.id}")
    mine = {"db": ours.db, "env_assertion": ours.env_assertion, "action": ours.action, "communicate": ours.communicate}
    differing = [name for name, ok in mine.items() if float(ok) != theirs[name]]
    row.agree_components += not differing
    row.component_mismatches.update(differing)
    if list(ours.outputs) == theirs["outputs"]:
        row.agree_outputs += 1
    else:
        row.output_mismatches.append(f"{case.domain}:{case.source.id}")


def agreement(cases: Sequence[Tau2Case], env: Environment, kinds: Sequence[str] = CORRUPTIONS,
              on_case: Callable[[int, dict[str, Tau2Agreement]], None] | None = None) -> dict[str, Tau2Agreement]:
    """Our checks vs tau2's evaluators on each case's gold steps and seeded corruptions of them;
    `on_case(done, table)` after each case (progress)."""
    writes = {t.name for t in env.spec.tools if t.effect == "write"}
    table = {kind: Tau2Agreement() for kind in ("gold", *kinds)}
    for done, case in enumerate(cases, 1):
        gold_list = gold_steps(case)
        gold = replay(case, env, gold_list)
        variants = [("gold", gold_list)] + [(k, corrupt(k, gold_list, writes, case.task.id)) for k in kinds]
        for kind, steps in variants:
            if steps is None:
                table[kind].not_applicable += 1
            else:
                _tally(table[kind], case, env, steps, gold)
        if on_case is not None:
            on_case(done, table)
    return table


def _print_table(domain: str, table: dict[str, Tau2Agreement]) -> None:
    for kind, row in table.items():
        share = f"{100 * row.agree / row.cases:.1f}%" if row.cases else "-"
        print(f"| {domain} | {kind} | {row.cases} | {row.not_applicable} | {row.ours_pass} | {row.official_pass} | "
              f"{row.agree} ({share}) | {row.agree_components} | {row.agree_outputs} |", flush=True)
        if row.component_mismatches:
            print(f"|   components differing: {dict(sorted(row.component_mismatches.items()))} |", flush=True)
        for label, ids in (("reward disagreements", row.disagreements), ("output mismatches", row.output_mismatches)):
            if ids:
                print(f"|   {label}: {', '.join(ids)} |", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the agreement table for the given domains (all three by default)."""
    parser = argparse.ArgumentParser(description="τ²-bench: our checks vs tau2's own evaluators")
    parser.add_argument("domains", nargs="*", help=f"any of {', '.join(DOMAINS)} (default: all)")
    parser.add_argument("--every", type=int, default=1, help="every N-th task only (default: all tasks)")
    parser.add_argument("--progress", type=int, default=0, help="print the table so far every N tasks (to stderr)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.domains) - set(DOMAINS))
    if unknown:
        parser.error(f"unknown τ² domains {unknown}; expected some of {list(DOMAINS)}")
    print("| domain | class | cases | n/a | pass (ours) | pass (official) | agree (reward) | components agree "
          "| outputs agree |")
    print("|---|---|---|---|---|---|---|---|---|")
    for domain in args.domains or DOMAINS:
        started = time.perf_counter()

        def progress(done: int, table: dict[str, Tau2Agreement], domain: str = domain, started: float = started) -> None:
            if args.progress and done % args.progress == 0:
                with contextlib.redirect_stdout(sys.stderr):
                    print(f"-- {domain}: {done} tasks, {time.perf_counter() - started:.0f} s")
                    _print_table(domain, table)

        _print_table(domain, agreement(load_cases(domain)[::args.every], tau2_environment(domain), on_case=progress))
        print(f"({domain}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
