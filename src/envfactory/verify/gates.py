"""Task gates (DESIGN §4): the checks a task must pass before it ships. Pure over the task and the
environments passed in; every replay starts from a fork of one group loaded with the task's initial
state, so gates never touch each other's state.

Gates, in the order they run (`gate_task` stops at the first that fails and names it):
- `gold_replay`: the gold calls, replayed from the initial state, all succeed, return the recorded
  results, and end in the expected final-state hashes (a read-only task: the initial hashes). With a
  gold-path trajectory, its calls are the gold calls and its per-call and final hashes are reproduced.
- `deterministic`: a second replay gives the same results and hashes.
- `gold_reward`: the gold replay, answered from what it returned, scores 1.
- `no_op`: an agent that calls nothing and says nothing scores 0.
- `initial_state`: the untouched initial state, scored without any answer, scores 0.
- `essential_calls`: the task has an essential call (a gold call with `essential_arguments`, and in a
  read-only task the answer call, the last one, which the facts come from); dropping
  any essential call, or altering any of its essential arguments (up to `max_alterations` per call),
  lowers the reward below the gold reward.
- `contamination` (`contamination_gate`, over many tasks at once): a task whose texts overlap a BFCL or
  τ² task at the thresholds of `verify.contamination` is flagged.

Episodes that need an answer (read-only tasks check facts in the agent's messages) are answered by
`answer_from_log`: an assistant message restating every successful result of the episode — the best
any agent can say from what its calls returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from envfactory.runtime import Environment, SessionGroup, open_group
from envfactory.spec import GoldCall, Message, Reward, Task, ToolCall, ToolResult, Trajectory
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import GateRecord
from envfactory.verify.contamination import ContaminationConfig, is_task_contaminated, score_tasks
from envfactory.verify.rewards import task_reward

GATES: tuple[str, ...] = (
    "gold_replay", "deterministic", "gold_reward", "no_op", "initial_state", "essential_calls", "contamination",
)
EPSILON = 1e-9


def _json(value: Any) -> bytes:
    """Sorted-key JSON for comparing values (not for hashing: `canonical_json` also refuses NaN, which
    results from a session never hold, at a cost that dominated the gates)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What `gate_task` found: `failed` names the first gate that failed (None: all passed); `records`
    has one `GateRecord` per gate run, in order, each saying what it measured (the failed one last)."""

    failed: str | None
    detail: str = ""
    gold_reward: Reward | None = None
    gates_run: tuple[str, ...] = ()
    records: tuple[GateRecord, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every gate that ran passed."""
        return self.failed is None


class _Fail(Exception):
    def __init__(self, gate: str, detail: str) -> None:
        super().__init__(detail)
        self.gate = gate
        self.detail = detail


def answer_from_log(log: Sequence[tuple[ToolCall, ToolResult]]) -> list[Message]:
    """One assistant message restating every successful result of an episode."""
    said = " ".join(_json(result.output).decode() for _, result in log if result.error is None)
    return [Message(role="assistant", content=said)]


def altered(value: Any) -> Any:
    """A different value of the same JSON kind (or a string where there was null)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return f"{value}-altered"
    if isinstance(value, list):
        return value[:-1] if value else ["altered"]
    if isinstance(value, dict):
        return {} if value else {"altered": True}
    return "altered"


class _Episodes:
    """Episodes of one task, each on a fresh fork of the task's initial group."""

    def __init__(self, task: Task, envs: Mapping[str, Environment]) -> None:
        missing = sorted({ref.name for ref in task.envs} - set(envs))
        if missing:
            raise ValueError(f"gates need the task's environments; missing: {missing}")
        self.task = task
        self.base = open_group([envs[ref.name] for ref in task.envs], task.initial_state, seed=task.seed,
                               naming=task.tool_naming)

    def run(self, calls: Sequence[GoldCall], hashes: list[str] | None = None) -> SessionGroup:
        group = self.base.fork()
        for call in calls:
            group.call(call.tool, call.arguments)
            if hashes is not None:
                hashes.append(group.hash())
        return group

    def reward(self, group: SessionGroup, messages: list[Message] | None) -> Reward:
        return task_reward(self.task, group, messages=messages)


def _check_replay(episodes: _Episodes, trajectory: Trajectory | None) -> SessionGroup:
    task = episodes.task
    gold = task.gold_calls()
    step_hashes: list[str] = []
    group = episodes.run(gold, step_hashes)
    for index, (call, result) in enumerate(group.log):
        if result.error is not None:
            raise _Fail("gold_replay", f"gold call {index} ({call.tool}) failed: {result.error.kind}")
        recorded = gold[index].result
        if recorded is not None and _json(recorded) != _json(result.output):
            raise _Fail("gold_replay", f"gold call {index} ({call.tool}) returned something else than recorded")
    expected = dict(task.expected_final_hash) if not task.read_only else episodes.base.hashes()
    if group.hashes() != expected:
        raise _Fail("gold_replay", "the gold replay does not end in the expected final-state hashes")
    if trajectory is not None:
        calls = [(c.tool, _json(c.arguments)) for c in trajectory.tool_calls()]
        if calls != [(g.tool, _json(g.arguments)) for g in gold]:
            raise _Fail("gold_replay", "the gold-path trajectory's calls are not the gold calls")
        if trajectory.state_hashes != step_hashes or trajectory.final_state_hashes != group.hashes():
            raise _Fail("gold_replay", "the gold-path trajectory's state hashes are not reproduced")
    return group


def _check_deterministic(episodes: _Episodes, first: SessionGroup) -> None:
    again = episodes.run(episodes.task.gold_calls())
    same = again.hashes() == first.hashes() and all(
        _json(a.output) == _json(b.output)
        for (_, a), (_, b) in zip(again.log, first.log, strict=True))
    if not same:
        raise _Fail("deterministic", "two replays of the gold calls differ")


def _check_essential(episodes: _Episodes, gold_total: float, max_alterations: int) -> str:
    gold = episodes.task.gold_calls()
    essential = [i for i, call in enumerate(gold) if call.essential_arguments
                 or (episodes.task.read_only and i == len(gold) - 1)]
    if not essential:
        raise _Fail("essential_calls", "no gold call is essential")
    altered_count = 0
    for index in essential:
        call = gold[index]
        dropped = episodes.run([*gold[:index], *gold[index + 1:]])
        if episodes.reward(dropped, answer_from_log(dropped.log)).total >= gold_total - EPSILON:
            raise _Fail("essential_calls", f"dropping gold call {index} ({call.tool}) does not lower the reward")
        for name in call.essential_arguments[:max_alterations]:
            altered_count += 1
            changed = call.model_copy(update={"arguments": {**call.arguments, name: altered(call.arguments.get(name))}})
            group = episodes.run([*gold[:index], changed, *gold[index + 1:]])
            if episodes.reward(group, answer_from_log(group.log)).total >= gold_total - EPSILON:
                raise _Fail("essential_calls",
                            f"altering {name} of gold call {index} ({call.tool}) does not lower the reward")
    return (f"dropping any of {len(essential)} essential call(s), or altering any of {altered_count} "
            f"essential argument(s), lowers the reward below {gold_total:.4f}")


def gate_task(task: Task, envs: Mapping[str, Environment], *, trajectory: Trajectory | None = None,
              max_alterations: int = 3) -> GateOutcome:
    """Run every per-task gate (all but contamination) in order; see the module docstring."""
    episodes = _Episodes(task, envs)
    records: list[GateRecord] = []
    gold_reward: Reward | None = None

    def passed(gate: str, detail: str) -> None:
        records.append(GateRecord(gate=gate, passed=True, detail=detail))

    try:
        replay = _check_replay(episodes, trajectory)
        passed("gold_replay", _replay_detail(task, trajectory))
        _check_deterministic(episodes, replay)
        passed("deterministic", "a second replay of the gold calls gives the same results and hashes")
        messages = trajectory.messages if trajectory is not None else answer_from_log(replay.log)
        gold_reward = episodes.reward(replay, [m for m in messages if m.role == "assistant"])
        if abs(gold_reward.total - 1.0) > EPSILON:
            raise _Fail("gold_reward", f"the gold path scores {gold_reward.total:.4f}, not 1")
        passed("gold_reward", f"the gold path scores {gold_reward.total:.4f}")
        no_op = episodes.reward(episodes.base.fork(), []).total
        if no_op > EPSILON:
            raise _Fail("no_op", f"a no-op agent scores {no_op:.4f}")
        passed("no_op", f"a no-op agent scores {no_op:.4f}")
        untouched = episodes.reward(episodes.base.fork(), None).total
        if untouched > EPSILON:
            raise _Fail("initial_state", f"the untouched initial state scores {untouched:.4f}")
        passed("initial_state", f"the untouched initial state scores {untouched:.4f}")
        passed("essential_calls", _check_essential(episodes, gold_reward.total, max_alterations))
    except _Fail as failure:
        records.append(GateRecord(gate=failure.gate, passed=False, detail=failure.detail))
        return GateOutcome(failed=failure.gate, detail=failure.detail, gold_reward=gold_reward,
                           gates_run=tuple(r.gate for r in records), records=tuple(records))
    finally:
        episodes.base.close()
    return GateOutcome(failed=None, gold_reward=gold_reward, gates_run=tuple(r.gate for r in records),
                       records=tuple(records))


def _replay_detail(task: Task, trajectory: Trajectory | None) -> str:
    """What the passed gold replay showed."""
    end = "the initial hashes (read-only)" if task.read_only else "the expected final-state hashes"
    detail = f"{len(task.gold_calls())} gold call(s) replayed: all succeed, return what was recorded, end in {end}"
    if trajectory is not None:
        detail += "; the gold-path trajectory's calls and per-call hashes are reproduced"
    return detail


def contamination_gate(tasks: Sequence[Task], benchmark_tasks: Sequence[BenchmarkTask], *,
                       config: ContaminationConfig | None = None) -> dict[str, str]:
    """Task id → why it is contaminated, for the tasks whose texts overlap a benchmark task (lexical
    n-gram containment; `verify.contamination` thresholds). Tasks not in the result passed."""
    if not tasks:
        return {}
    if not benchmark_tasks:
        raise ValueError("the contamination gate needs the benchmarks' tasks (BFCL and τ²)")
    flagged = {}
    for report in score_tasks(tasks, benchmark_tasks, config=config):
        if is_task_contaminated(report, config):
            match = report.ngram or report.embedding
            where = f" ({match.benchmark_task}, {match.score:.3f})" if match is not None else ""
            flagged[report.task] = f"overlaps a benchmark task{where}"
    return flagged
