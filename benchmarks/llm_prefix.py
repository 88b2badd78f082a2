"""The prefix-cache figures of `benchmarks/llm.py --prefix-reuse` (see its docstring).

Each task's episode runs three times in a row — cache off, on, evicting (`modes` may leave out the
evicting run, which takes about as long as the cache-off one) — with the same seed, and optionally a
fourth time `warm`: the cache is cleared, another task of the same suite runs first (untimed), then the
episode — what every episode after the first one of an evaluation run meets, since a suite's tasks share
the agent's instructions, policy and tool catalogue. The first three start cold; through
`ManagedClient` (no response cache) over a timing wrapper of each `LocalProvider`. Model time is the
wall time inside the provider's `chat`. The runs must be identical; the figures say whether they were.
Each task's rows are printed as soon as its runs finish, so an interrupted run still leaves figures.
"""

from __future__ import annotations

import gzip
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envfactory.agent import AgentSettings, UserSettings
from envfactory.eval.run import EvalConfig, EvalItem, SuiteSelection, run_attempt, select_tasks
from envfactory.llm import ChatRequest, ChatResponse, LocalConfig, LocalProvider, ManagedClient
from envfactory.runtime import load_env
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import EnvRef, ScriptedUser, Task, Turn
from envfactory.verify.rewards import task_reward

MODES = ("plain", "off", "on", "evicting", "warm")
# "plain" is the cache off with llama-cpp-python's own grammar sampling (`LocalConfig.lazy_grammar=False`):
# the provider as it was before issue 16, so its rows show what the cache and the one-token grammar
# check give together; every other mode checks greedy grammar steps against the chosen token only.
CACHE_BYTES = {"plain": 0, "off": 0, "on": 1 << 30, "evicting": 48 << 20, "warm": 1 << 30}


@dataclass
class _Step:
    seconds: float
    prompt_tokens: int
    evaluated_tokens: int
    answer: bytes
    token_ids: tuple[int, ...]


@dataclass
class _Timed:
    """`LLMClient` that times a provider's calls and keeps each request, answer and generated tokens."""

    provider: LocalProvider
    steps: list[_Step] = field(default_factory=list)
    requests: list[ChatRequest] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        return self.provider.model_id

    def chat(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        response = self.provider.chat(request)
        seconds = time.perf_counter() - start
        usage = response.usage
        evaluated = usage.prompt_tokens if usage.evaluated_tokens is None else usage.evaluated_tokens
        self.steps.append(_Step(seconds, usage.prompt_tokens, evaluated, response.to_json_bytes(),
                                self.provider.last_token_ids))
        self.requests.append(request)
        print(f"  call {len(self.steps)}: {seconds:.1f} s, {usage.prompt_tokens} prompt tokens, {evaluated} evaluated",
              file=sys.stderr, flush=True)
        return response


def _library_item() -> EvalItem:
    env = load_env("tracker")
    state = env.default_state()
    first, second = sorted(state["collections"]["tasks"])[:2]
    task = Task.create(
        envs=[EnvRef(name="tracker", version=env.spec.meta.version)], initial_state={},
        turns=[Turn(user=ScriptedUser(text=f"What is the status of task {first}?")),
               Turn(user=ScriptedUser(text=f"Set task {first} to in_review.")),
               Turn(user=ScriptedUser(text=f"And show me task {second}."))],
    )

    def score(task: Task, episode: Any, group: Any) -> tuple[bool, Any, str]:
        reward = task_reward(task, group, messages=episode.trajectory.messages)
        return reward.total >= 1.0, reward, ""

    return EvalItem("tasks", task, [env], score)


def _row(name: str, value: float, unit: str, baseline: float | None, base_name: str = "cache off") -> dict[str, Any]:
    ratio = (baseline / value if value else float("nan")) if baseline is not None else None
    return {"figure": name, "value": value, "unit": unit, "baseline": base_name if baseline is not None else "",
            "baseline_value": baseline, "ratio": ratio, "higher_is_better": False}


SUITES = ("bfcl", "tau2", "library")


def bench_prefix_reuse(models_dir: Path, key: str, record: Path | None,
                       suites: tuple[str, ...] = SUITES, modes: tuple[str, ...] = MODES) -> list[dict[str, Any]]:
    """Rows for `benchmarks/llm.py` (ratio = cache-off time / cache-on time: higher is better); `suites`
    picks among one BFCL base task, one τ² airline task and the library task; `modes` must hold "off"
    and "on" ("plain", "evicting" and "warm" are optional)."""
    if not {"off", "on"} <= set(modes) <= set(MODES):
        raise ValueError(f"modes must hold off and on, and only {MODES}: {modes}")
    modes = tuple(mode for mode in MODES if mode in modes)
    providers = {mode: LocalProvider(LocalConfig(model=key, models_dir=models_dir, prefix_cache_bytes=CACHE_BYTES[mode],
                                                 lazy_grammar=mode != "plain"))
                 for mode in modes}
    for provider in providers.values():
        provider.load()
    per_suite = 2 if "warm" in modes else 1  # the second task of a suite warms the cache for the first
    selections = [SuiteSelection(suite="bfcl_base", count=per_suite)] * ("bfcl" in suites)
    selections += [SuiteSelection(suite="tau2_airline", count=per_suite)] * ("tau2" in suites)
    config = EvalConfig(suites=selections or [SuiteSelection(suite="bfcl_base", count=1)],
                        model=providers["on"].model_id, agent=AgentSettings(), user=UserSettings())
    rows: list[dict[str, Any]] = []
    recorded: list[ChatRequest] = []
    with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp, SandboxPool(max_workers=2) as pool:
        selected = select_tasks(config, sandbox=pool, workdir=Path(tmp)) if selections else []
        items = [(selected[i], selected[i + 1] if per_suite == 2 else None) for i in range(0, len(selected), per_suite)]
        items += [(_library_item(), None)] * ("library" in suites)
        for item, warmup in items:
            run_modes = tuple(mode for mode in modes if mode != "warm" or warmup is not None)
            timed = {mode: _Timed(providers[mode]) for mode in run_modes}
            results = {}
            for mode in run_modes:  # one after the other, the same episode: load changes hit all alike
                cache = providers[mode].kv_cache
                if cache is not None:
                    cache.clear()  # every episode starts cold ...
                if mode == "warm" and warmup is not None:  # ... unless another of the suite's tasks ran first
                    warming = _Timed(providers[mode])
                    run_attempt(config, ManagedClient(warming), _user(warming), warmup, 0)
                results[mode] = run_attempt(config, ManagedClient(timed[mode]), _user(timed[mode]), item, 0)
            task_rows = _task_rows(item.suite, timed, results)
            rows += task_rows
            for row in task_rows:
                ratio = "" if row["ratio"] is None else f"  ({row['baseline']} {row['baseline_value']:.1f}, {row['ratio']:.2f}x)"
                print(f"{row['figure']}: {row['value']:.1f} {row['unit']}{ratio}", flush=True)
            recorded += timed["on"].requests
    for provider in providers.values():
        provider.close()
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_bytes(gzip.compress(b"".join(r.to_json_bytes() + b"\n" for r in recorded), mtime=0))
        print(f"recorded {len(recorded)} requests into {record}")
    return rows


def _user(timed: _Timed) -> Any:
    from envfactory.agent import UserSimulator

    return UserSimulator(ManagedClient(timed), UserSettings())


def _task_rows(suite: str, timed: dict[str, _Timed], results: dict[str, Any]) -> list[dict[str, Any]]:
    off, on = timed["off"].steps, timed["on"].steps
    answers = [[(s.answer, s.token_ids) for s in timed[mode].steps] for mode in timed]
    same = all(run == answers[0] for run in answers)
    trajectories = {results[mode].trajectory.to_json_bytes() for mode in timed}
    steps = len(off)

    def total(steps_: list[_Step]) -> float:
        return sum(s.seconds for s in steps_)

    label = f"{suite} ({steps} model calls)"
    evicting = [_row(f"{label}: model s/episode, evicting", total(timed["evicting"].steps), "s", total(off))] \
        if "evicting" in timed else []
    warm = [_row(f"{label}: model s/episode, warm cache", total(timed["warm"].steps), "s", total(off)),
            _row(f"{label}: prompt tokens evaluated/step, warm", statistics.fmean(s.evaluated_tokens for s in
                                                                              timed["warm"].steps), "tok",
                 statistics.fmean(s.evaluated_tokens for s in off))] if "warm" in timed else []
    plain = []
    if "plain" in timed:
        base = total(timed["plain"].steps)
        plain = [_row(f"{label}: model s/episode, cache off, one-token grammar check", total(off), "s", base, "plain"),
                 _row(f"{label}: model s/episode, cache on + check", total(on), "s", base, "plain")]
        plain += [_row(f"{label}: model s/episode, warm cache + check", total(timed["warm"].steps), "s", base, "plain")] \
            if "warm" in timed else []
    return [
        *plain,
        _row(f"{label}: model s/episode, cache on", total(on), "s", total(off)),
        *evicting,
        *warm,
        _row(f"{label}: model s/step, cache on", statistics.fmean(s.seconds for s in on), "s",
             statistics.fmean(s.seconds for s in off)),
        _row(f"{label}: prompt tokens evaluated/step, on", statistics.fmean(s.evaluated_tokens for s in on), "tok",
             statistics.fmean(s.evaluated_tokens for s in off)),
        _row(f"{label}: prompt tokens/step", statistics.fmean(s.prompt_tokens for s in off), "tok", None),
        _row(f"{label}: outputs identical in the {len(timed)} runs", float(same and len(trajectories) == 1), "bool", None),
        _row(f"{label}: passed (cache on)", float(results["on"].passed), "bool", None),
    ]
