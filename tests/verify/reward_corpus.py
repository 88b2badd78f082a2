"""The recorded reward corpus: episodes over the bundled environments (shop, tracker, calendar) and the
rewards they were given, so that a change to the reward code shows every score it moves.

Each `RecordedEpisode` holds exactly what `score_episode` reads (task, initial and final states and
hashes, call log, write tools, volatile fields, messages) and the `Reward` recorded for it. The episodes
are built by running scripted calls in the runtime: gold solutions, no-ops, dropped, altered, reordered
and repeated gold calls, extra and failing writes, malformed calls, reads, read-only tasks with and
without an answer, hash-only tasks.

`python tests/verify/reward_corpus.py --write` re-records `fixtures/reward_corpus.jsonl.gz` with the
current reward code; do that only in a commit that explains why scores changed.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.spec import (
    CallMadeCheck,
    Check,
    EnvRef,
    GoldCall,
    JSONValue,
    Message,
    OutputContainsCheck,
    Reward,
    ScriptedUser,
    SpecModel,
    StateEqualsCheck,
    Task,
    ToolCall,
    ToolResult,
    Turn,
)
from envfactory.verify.rewards import score_episode, volatile_fields

CORPUS = Path(__file__).parent / "fixtures" / "reward_corpus.jsonl.gz"

Call = tuple[str, Any]


class RecordedEpisode(SpecModel):
    """One scored episode: the inputs of `score_episode` and the reward recorded for them."""

    schema_version: Literal[1] = 1
    label: str
    task: Task
    initial_states: dict[str, JSONValue]
    final_states: dict[str, JSONValue]
    final_hashes: dict[str, str]
    log: list[tuple[ToolCall, ToolResult]]
    write_tools: list[str]
    volatile: dict[str, list[str]]
    messages: list[Message] | None = None
    reward: Reward

    def rescore(self, score: Callable[..., Reward] = score_episode) -> Reward:
        """The reward the current code gives this episode."""
        from envfactory.verify.rewards import RewardConfig

        config = RewardConfig(volatile={env: frozenset(fields) for env, fields in self.volatile.items()})
        return score(self.task, self.initial_states, self.final_states, self.final_hashes, self.log,
                     frozenset(self.write_tools), messages=self.messages, config=config)


ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
# Per environment: gold calls, a read, a valid write the task did not ask for, a write that fails.
SCRIPTS: dict[str, dict[str, Any]] = {
    "shop": {
        "gold": [("create_order", {"customer_id": "cus_0001", "items": [{"product_id": "HM-010", "quantity": 2}],
                                   "shipping_address": ADDRESS}),
                 ("pay_order", {"id": "ord_00002"}),
                 ("top_up_wallet", {"id": "cus_0002", "amount": 15})],
        "altered": ("top_up_wallet", {"id": "cus_0002", "amount": 16}),
        "read": ("get_customer", {"id": "cus_0001"}),
        "extra": ("restock_product", {"sku": "BK-002", "quantity": 1}),
        "failing": ("pay_order", {"id": "ord_09999"}),
        "check": ("/collections/orders/ord_00002/status", "paid"),
        "fact": ("get_customer", {"id": "cus_0002"}, "Grace"),
    },
    "tracker": {
        "gold": [("assign_task", {"id": "tsk_0002", "assignee_id": "usr_003"}),
                 ("set_task_status", {"id": "tsk_0002", "status": "in_progress"}),
                 ("add_comment", {"task_id": "tsk_0002", "author_id": "usr_003", "body": "Taking this one."})],
        "altered": ("add_comment", {"task_id": "tsk_0002", "author_id": "usr_003", "body": "Taking it."}),
        "read": ("get_task", {"id": "tsk_0001"}),
        "extra": ("add_comment", {"task_id": "tsk_0001", "author_id": "usr_001", "body": "Any news?"}),
        "failing": ("set_task_status", {"id": "tsk_9999", "status": "done"}),
        "check": ("/collections/tasks/tsk_0002/status", "in_progress"),
        "fact": ("get_task", {"id": "tsk_0001"}, "Upgrade database to v16"),
    },
    "calendar": {
        "gold": [("respond_to_event", {"event_id": "evt_0002", "user_id": "usr_001", "response": "accepted"}),
                 ("create_event", {"calendar_id": "cal_001", "title": "Design review",
                                   "start": "2026-02-02T10:00:00Z", "end": "2026-02-02T11:00:00Z",
                                   "attendee_ids": ["usr_002"]})],
        "altered": ("create_event", {"calendar_id": "cal_001", "title": "Design review",
                                     "start": "2026-02-02T10:00:00Z", "end": "2026-02-02T12:00:00Z",
                                     "attendee_ids": ["usr_002"]}),
        "read": ("get_event", {"event_id": "evt_0001"}),
        "extra": ("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002", "response": "declined"}),
        "failing": ("cancel_event", {"event_id": "evt_9999"}),
        "check": ("/events/evt_0002/title", "Compiler design review"),
        "fact": ("get_event", {"event_id": "evt_0001"}, "Weekly team sync"),
    },
}


def _q(env: str, call: Call) -> Call:
    return f"{env}__{call[0]}", call[1]


def _run(env: Environment, calls: Sequence[Call], seed: int = 1) -> SessionGroup:
    group = open_group([env], seed=seed)
    for tool, args in calls:
        group.call(tool, args)
    return group


def _task(env: Environment, gold: Sequence[Call], checks: Sequence[Check], *, expect: str = "state") -> Task:
    name = env.spec.meta.name
    done = _run(env, gold)
    final: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    if expect == "state":
        final = {name: done.sessions[name].state_json()}
    elif expect == "hash":
        hashes = {name: done.sessions[name].hash()}
    return Task.create(
        envs=[EnvRef(name=name, version=env.spec.meta.version, content_hash=env.spec.content_hash)],
        initial_state={name: env.default_state()}, seed=1,
        turns=[Turn(user=ScriptedUser(text=f"A {name} task."), gold_calls=[GoldCall(tool=t, arguments=a) for t, a in gold])],
        expected_final_state=final, expected_final_hash=hashes, checks=list(checks),
    )


def _episode(label: str, env: Environment, task: Task, calls: Sequence[Call], messages: list[Message] | None,
             score: Callable[..., Reward]) -> RecordedEpisode:
    name = env.spec.meta.name
    group = _run(env, calls)
    volatile = volatile_fields(env)
    write_tools = sorted(t.name for t in group.tools if (r := group.route(t.name)) is not None
                         and group.sessions[r[0]].env.tools[r[1]].writes)
    draft = RecordedEpisode.model_construct(
        label=label, task=task, initial_states={name: env.default_state()},
        final_states={name: group.sessions[name].state_json()}, final_hashes={name: group.sessions[name].hash()},
        log=list(group.log), write_tools=write_tools, volatile={name: sorted(volatile)}, messages=messages,
    )
    reward = draft.rescore(score)
    return RecordedEpisode.model_validate({**draft.__dict__, "reward": reward})


def _said(text: str) -> list[Message]:
    return [Message(role="user", content="Please help."), Message(role="assistant", content=text)]


def build_corpus(score: Callable[..., Reward] = score_episode) -> list[RecordedEpisode]:
    """Every episode of the corpus, scored by `score`, in a fixed order."""
    episodes: list[RecordedEpisode] = []
    for name, script in SCRIPTS.items():
        env = load_env(name)
        gold = [_q(name, c) for c in script["gold"]]
        read, extra, failing = _q(name, script["read"]), _q(name, script["extra"]), _q(name, script["failing"])
        pointer, value = script["check"]
        checks: list[Check] = [StateEqualsCheck(env=name, pointer=pointer, expected=value),
                               CallMadeCheck(tool=gold[-1][0], arguments=gold[-1][1])]
        task = _task(env, gold, checks)
        variants: dict[str, list[Call]] = {
            "gold": gold, "no_op": [], "reads_only": [read, read], "altered": [*gold[:-1], _q(name, script["altered"])],
            "extra_write": [*gold, extra], "three_extra_writes": [*gold, extra, extra, extra],
            "malformed_first": [(gold[0][0], "{oops"), (f"{name}__nope", {}), *gold],
            "reads_first": [read, *gold], "reversed": gold[::-1], "gold_twice": [*gold, *gold],
            "failing_writes": [*gold, failing, failing, failing], "only_failing": [failing],
        }
        for index in range(len(gold)):
            variants[f"dropped_{index}"] = [c for i, c in enumerate(gold) if i != index]
        for label, calls in variants.items():
            episodes.append(_episode(f"{name}/{label}", env, task, calls, None, score))
        told = task.model_copy(update={"checks": [*checks, OutputContainsCheck(text="done")], "id": ""})
        episodes.append(_episode(f"{name}/gold_told", env, told, gold, _said("All done."), score))
        episodes.append(_episode(f"{name}/gold_silent", env, told, gold, _said("Okay."), score))
        hashed = _task(env, gold, [], expect="hash")
        for label, calls in {"gold": gold, "no_op": [], "dropped": gold[1:]}.items():
            episodes.append(_episode(f"{name}/hash_{label}", env, hashed, calls, None, score))
        tool, args, fact = script["fact"]
        lookup = _q(name, (tool, args))
        reading = _task(env, [lookup], [OutputContainsCheck(text=fact)])
        for label, (calls, messages) in {
            "no_op": ([], None), "no_op_silent": ([], _said("I cannot tell.")), "read": ([lookup], None),
            "read_answered": ([lookup], _said(f"It is {fact}.")), "read_wrong": ([lookup], _said("No idea.")),
            "answered_without_reading": ([], _said(f"It is {fact}.")), "read_and_write": ([lookup, extra], None),
        }.items():
            episodes.append(_episode(f"{name}/read_only_{label}", env, reading, calls, messages, score))
    return episodes


def load_corpus() -> list[RecordedEpisode]:
    """The recorded corpus."""
    lines = gzip.decompress(CORPUS.read_bytes()).splitlines()
    return [RecordedEpisode.model_validate_json(line) for line in lines if line.strip()]


def write_corpus(episodes: Sequence[RecordedEpisode]) -> None:
    """Re-record the corpus file (gzip is written with mtime 0, so equal content gives equal bytes)."""
    data = b"".join(e.model_dump_json().encode() + b"\n" for e in episodes)
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    CORPUS.write_bytes(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/verify/reward_corpus.py --write")
    corpus = build_corpus()
    write_corpus(corpus)
    for episode in corpus:
        print(f"{episode.label:40} {episode.reward.total:.6f}")
