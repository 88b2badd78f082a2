"""From a realised chain to a Task v2 and its gold-path trajectory (DESIGN §6).

Contract:
- Gold calls are the executed calls with their recorded results. Per call, `ignored_arguments` masks
  what only pages or sorts a listing and `essential_arguments` names what identifies a record or
  changes state (`ToolFacts.essential`). In a read-only task only the *answer call* (the last one) is
  essential: the calls before it find what to look up, and any route to the same facts is fine.
- A task that writes carries the expected final state and hash of every environment. A read-only task
  carries none (`reward.final_state = not_scored`); it is scored on `output_contains` checks built from
  facts in the answer call's result that the query does not state and no earlier result showed, with
  call matching weighted 0 — so a no-op, an empty answer or an answer without the facts scores 0.
- The user text is a *template* stating the goal from the gold trace (`queries.source = template`):
  every argument value literally, those an earlier call produces marked "(from the result of step k)".
  The second synthesis stage replaces it with natural queries.
- The gold-path trajectory's assistant calls are the gold calls and its tool messages the recorded
  results; its producer is `gold-path` / `template-user`, which marks its user text as a template.
"""

from __future__ import annotations

import re
from typing import Any

from envfactory.spec import (
    ChainProvenance,
    EnvRef,
    GoldCall,
    Message,
    OutputContainsCheck,
    Producer,
    Reward,
    RewardSpec,
    ScriptedUser,
    Task,
    TaskOrigin,
    TaskQueries,
    TerminationReason,
    Trajectory,
    Turn,
    canonical_json,
    content_hash,
)
from envfactory.synth.envs import ToolFacts
from envfactory.synth.realise import Dropped, GoldStep, Realised

MAX_FACTS = 3
GOLD_PATH_MODEL = "gold-path"
TEMPLATE_USER = "template-user"
_PREFERRED = ("name", "title", "status", "state", "email", "description", "type", "amount", "total")
_UNSAFE_FACT = re.compile(r"[\"\\\n\r\t]")


def _words(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return re.sub(r"[_\-.]+", " ", spaced).strip().lower()


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return canonical_json(value).decode()


def _argument_text(step: GoldStep, names: list[str], step_numbers: dict[int, int]) -> str:
    parts = []
    for name in names:
        source = step.sources.get(name, "user")
        if source.startswith("step:"):
            number = step_numbers.get(step.global_step + int(source.split(":", 1)[1]), 0)
            parts.append(f"{_words(name)} {_value_text(step.arguments[name])} (from the result of step {number})")
        else:
            parts.append(f"{_words(name)} {_value_text(step.arguments[name])}")
    return ", ".join(parts)


def step_clause(step: GoldStep, facts: ToolFacts, step_numbers: dict[int, int]) -> str:
    """One step of the template: what the call does, in words, with the values the user knows."""
    names = sorted(n for n in step.arguments if n not in facts.masked)
    thing = _words(facts.collection or step.tool)
    key = [n for n in names if n == facts.key_arg]
    rest = [n for n in names if n != facts.key_arg]
    which = f" ({_argument_text(step, key, step_numbers)})" if key else ""
    detail = _argument_text(step, rest, step_numbers)
    if facts.kind == "create":
        return f"create a {thing} with {detail or 'default values'}"
    if facts.kind in ("update", "patch"):
        change = f" setting {detail}" if detail else ""
        return f"{_words(step.tool)}: the {thing}{which}{change}"
    if facts.kind == "delete":
        return f"delete the {thing}{which}" + (f" ({detail})" if detail else "")
    if facts.kind == "get":
        return f"look up the {thing}{which}" + (f" ({detail})" if detail else "")
    if facts.kind == "list":
        return f"list the {thing} records" + (f" with {detail}" if detail else "")
    return f"{_words(step.tool)}" + (f" with {detail}" if detail else "")


def template_text(realised: Realised, facts: list[tuple[str, Any]]) -> str:
    """The template user text of a realised chain (see the module contract)."""
    step_numbers = {index: index + 1 for index in range(len(realised.steps))}
    multi = len(realised.plan.parts) > 1
    clauses = []
    for number, step in enumerate(realised.steps, start=1):
        where = f"in {_words(step.env)}, " if multi else ""
        clauses.append(f"{number}. {where}{step_clause(step, _facts(realised, step), step_numbers)}")
    text = "Please do the following, in order: " + "; ".join(clauses) + "."
    if facts:
        asked = ", ".join(dict.fromkeys(_words(path.rsplit(".", 1)[-1].split("[", 1)[0]) for path, _ in facts))
        text += f" Then tell me the {asked} you found."
    return text


_ASKED = re.compile(r" Then tell me the (.+) you found\.$")


def asked_fields(template: str) -> str:
    """The fields a read-only task's template text asks for, in words ('title, status'); '' when the text
    is not such a template."""
    found = _ASKED.search(template)
    return found.group(1) if found else ""


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key], f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, f"{path}[{index}]")]
    return [(path, value)]


def _fact_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value) if abs(value) >= 10 else None
    if isinstance(value, str) and 3 <= len(value) <= 60 and not _UNSAFE_FACT.search(value):
        return value
    return None


def answer_facts(realised: Realised, query_text: str) -> list[tuple[str, str]]:
    """Up to `MAX_FACTS` (path, text) facts of the answer call's result that neither the query nor an
    earlier result states."""
    *earlier, answer = realised.steps
    seen = " ".join(canonical_json(s.result.output).decode().lower() for s in earlier)
    said = (query_text + " " + canonical_json(answer.arguments).decode()).lower()
    candidates: list[tuple[int, str, str]] = []
    for path, value in _leaves(answer.result.output):
        text = _fact_text(value)
        if text is None or text.lower() in said or text.lower() in seen:
            continue
        field = path.rsplit(".", 1)[-1].split("[", 1)[0].lower()
        rank = _PREFERRED.index(field) if field in _PREFERRED else len(_PREFERRED)
        candidates.append((rank, path, text))
    chosen: list[tuple[str, str]] = []
    for _, path, text in sorted(candidates):
        if all(text.lower() != other.lower() for _, other in chosen):
            chosen.append((path, text))
        if len(chosen) == MAX_FACTS:
            break
    return chosen


def _facts(realised: Realised, step: GoldStep) -> ToolFacts:
    return next(p.senv for p in realised.plan.parts if p.senv.name == step.env).facts[step.tool]


def _gold_calls(realised: Realised, read_only: bool) -> list[GoldCall]:
    calls = []
    last = len(realised.steps) - 1
    for index, step in enumerate(realised.steps):
        facts = _facts(realised, step)
        essential = facts.essential(step.arguments) if not read_only or index == last else []
        ignored = sorted(n for n in step.arguments if n in facts.masked)
        calls.append(GoldCall(tool=step.group_tool, arguments=step.arguments, ignored_arguments=ignored,
                              essential_arguments=essential, result=step.result.output))
    return calls


def build_task(realised: Realised, provenance: ChainProvenance, *, seed: int, source_id: str) -> Task | Dropped:
    """The task of a realised chain, or why it cannot be one (a read-only chain with nothing to check)."""
    read_only = not any(_facts(realised, step).writes for step in realised.steps)
    facts: list[tuple[str, str]] = []
    if read_only:
        facts = answer_facts(realised, template_text(realised, [("fact", "")]))
        if not facts:
            return Dropped("gated", "read-only: no fact to check", "the answer call shows nothing new")
    text = template_text(realised, facts)
    envs = [p.senv.env.spec for p in realised.plan.parts]
    fields: dict[str, Any] = {
        "envs": [EnvRef(name=s.meta.name, version=s.meta.version, content_hash=s.content_hash) for s in envs],
        "tool_naming": realised.naming,
        "initial_state": realised.initial_states,
        "seed": seed,
        "turns": [Turn(user=ScriptedUser(text=text), gold_calls=_gold_calls(realised, read_only),
                       expected_outputs=[fact for _, fact in facts])],
        "origin": TaskOrigin(source="synth", source_id=source_id, domain=envs[0].meta.domain),
        "queries": TaskQueries(explicit=text, source="template"),
        "split_key": "+".join(sorted(s.meta.name for s in envs)),
        "provenance": provenance,
    }
    if read_only:
        fields["checks"] = [OutputContainsCheck(text=fact) for _, fact in facts]
        fields["reward"] = RewardSpec(final_state="not_scored", calls_weight=0.0, checks_weight=1.0)
    else:
        fields["expected_final_state"] = realised.final_states
        fields["expected_final_hash"] = realised.final_hashes
    return Task.create(**fields)


def final_answer(task: Task) -> str:
    """The gold path's closing message: the facts of a read-only task, else what was done."""
    facts = task.turns[-1].expected_outputs
    if facts:
        return "Here is what I found: " + "; ".join(facts) + "."
    return f"Done: all {len(task.gold_calls())} steps completed."


def gold_path_trajectory(task: Task, realised: Realised, *, seed: int, reward: Reward | None = None) -> Trajectory:
    """The gold-path trajectory of `task` (with the state diff of every write, as the steps ran);
    `reward` is the gold reward the gates measured by replay."""
    messages = [Message(role="user", content=task.turns[0].user.text if isinstance(task.turns[0].user, ScriptedUser)
                        else task.explicit_query)]
    for step in realised.steps:
        messages.append(Message(role="assistant", tool_calls=[step.call]))
        messages.append(Message(role="tool", result=step.result))
    messages.append(Message(role="assistant", content=final_answer(task)))
    draft = Trajectory(
        id="", task_id=task.id, envs=task.envs, seed=seed, messages=messages, state_hashes=realised.state_hashes,
        final_state_hashes=realised.final_hashes, state_diffs=[s.diff for s in realised.steps if s.diff is not None],
        termination=TerminationReason.AGENT_STOP,
        producer=Producer(model=GOLD_PATH_MODEL, provider=TEMPLATE_USER, seed=seed), reward=reward,
    )
    return draft.model_copy(update={"id": content_hash(draft.model_dump(mode="json", exclude={"id"}))})
