"""Queries for grounded tasks: a persona and an explicit request written by a model from the gold trace,
validated, then refined with calibrated operators.

Contract:
- Structure stays deterministic: what the user wants is described from the task's gold calls (actions in
  words, the values a user knows, the fields a read-only task asks for); the model only writes text.
- `write_query` asks for JSON `{"persona", "steps"}` with exactly one sentence per gold call of the segment
  (the schema fixes the count, so a small model cannot drop a step); the query is those sentences joined in
  order. `refine_query` asks for `{"query"}`. Every answer is validated (`query_problems`): JSON of the right
  shape, no refusal text, no tool names, no value that only the environment holds (produced by an earlier
  call), for a read-only task none of the facts its answer must state (the writer is told the fields asked
  for, never their values), and for explicit queries every value the user knows and the calls need
  stated (the feedback names the sentence that should state it). A failing answer is asked again with the
  problems as feedback, up to `attempts` times; then `QueryFailure` carries the reason (id-free, so
  reasons aggregate in the funnel), except that an answer missing only values is completed (`write_query`).
- Refinement operators are chosen per task from a seeded RNG: strength s in 1..4 operators, the first s of
  a seeded permutation of `REFINE_OPERATORS`. Requests carry the given seed, so a cache or cassette repeats
  them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from envfactory.llm import ChatMessage, ChatRequest, LLMClient, ResponseFormat, StructuredOutputError
from envfactory.spec import GoldCall, JSONObject, Task, ToolSpec, json_leaves
from envfactory.spec.synth_trajectories import REFINE_OPERATORS, RefineOperator
from envfactory.synth.overspec import env_produced_values, plain_tool_name
from envfactory.synth.tasks import asked_fields

WRITER_SYSTEM = (
    "You write what a real person types to an assistant that can act in online services for them. "
    "Write in the first person, plainly, one short sentence per step. Never mention functions, tools, APIs, "
    "endpoints or parameter names. Use the values you are given exactly as written. "
    "Answer with JSON only."
)
REFINER_SYSTEM = (
    "You rewrite a person's request to an assistant so that it sounds natural and leaves implicit what the "
    "assistant can work out or look up itself. Keep every goal of the request and never invent facts. "
    "Never mention functions, tools, APIs or parameter names. Answer with JSON only."
)
OPERATOR_TEXT: Mapping[RefineOperator, str] = {
    "omit_inferable": "Leave out identifiers and values the assistant can look up (refer to records by what "
                      "they are, e.g. 'my order of blue shoes', not by their id).",
    "compress_steps": "Do not spell out intermediate steps that follow from the goal; ask for the outcome.",
    "add_ambiguity": "Phrase constraints the way people do ('the usual one', 'not too late'), as long as "
                     "the records involved stay identifiable.",
    "weave_goals": "Weave the goals into one flowing request instead of a list.",
}
_REFUSAL = re.compile(r"\b(?:I'm sorry|I am sorry|as an AI|I cannot|I can't help|language model)\b", re.IGNORECASE)


def query_schema(steps: int) -> JSONObject:
    """The JSON schema of a written query: a persona and exactly `steps` sentences, one per gold call."""
    return {
        "type": "object",
        "properties": {"persona": {"type": "string"},
                       "steps": {"type": "array", "items": {"type": "string"}, "minItems": steps, "maxItems": steps}},
        "required": ["persona", "steps"],
        "additionalProperties": False,
    }

REFINED_SCHEMA: JSONObject = {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
    "additionalProperties": False,
}


class QueryFailure(Exception):
    """No valid text after every attempt: `reason` (id-free) comes from the last answer's first problem;
    `problems` lists every refused answer's problems in order."""

    def __init__(self, reason: str, problems: Sequence[str]) -> None:
        """`reason`: the id-free cause; `problems`: each refused answer's problems, in order."""
        super().__init__(f"{reason}: {'; '.join(problems)}")
        self.reason = reason
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class WrittenQuery:
    """A validated persona and query, the problems of the answers refused before it, and the values a
    template sentence added because the last answer still left them out (`completed`, usually empty)."""

    persona: str
    query: str
    problems: tuple[str, ...]
    completed: tuple[str, ...] = ()


def _words(identifier: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", identifier).replace("_", " ").replace("-", " ").lower()


def _first_sentence(text: str, limit: int = 160) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 3] + "..."


def knowable_values(task: Task, calls: Sequence[GoldCall]) -> list[tuple[str, str]]:
    """(argument path, value) pairs of `calls` a user knows: not masked, not produced by the chain."""
    produced = env_produced_values(task)
    out: list[tuple[str, str]] = []
    for call in calls:
        for path, leaf in json_leaves(call.arguments):
            if path.split(".", 1)[0] in call.ignored_arguments or isinstance(leaf, bool) or leaf is None:
                continue
            text = str(leaf).strip()
            if text and text not in produced and (path, text) not in out:
                out.append((path, text))
    return out


def describe_goal(task: Task, calls: Sequence[GoldCall], tools: Mapping[str, ToolSpec]) -> str:
    """What the person wants, in words, from `calls` (a segment of the task's gold calls)."""
    produced = env_produced_values(task)
    lines = []
    for number, call in enumerate(calls, start=1):
        spec = tools.get(call.tool)
        action = _words(plain_tool_name(call.tool))
        about = f" ({_first_sentence(spec.description)})" if spec and spec.description else ""
        values = [f"{_words(path.rsplit('.', 1)[-1])}: {leaf}" for path, leaf in json_leaves(call.arguments)
                  if path.split(".", 1)[0] not in call.ignored_arguments and leaf is not None
                  and not isinstance(leaf, bool) and str(leaf).strip() not in produced]
        detail = f" with {', '.join(values)}" if values else ""
        lines.append(f"{number}. {action}{about}{detail}")
    if task.read_only and any(check.kind == "output_contains" for check in task.checks):
        # the fields asked for, never their values: a query that states the answer lets a solver that never
        # looked it up pass the read-only gate
        asked = asked_fields(task.queries.explicit) if task.queries.source == "template" else ""
        lines.append(f"They want to be told the {asked} the service has." if asked
                     else "They want to be told what the service has on it.")
    return "\n".join(lines)


def query_problems(text: str, task: Task, *, required_values: Sequence[str] = ()) -> list[str]:
    """Why `text` is not an acceptable request for `task` (empty list: acceptable)."""
    problems = []
    if not text.strip():
        return ["the query is empty"]
    if _REFUSAL.search(text):
        problems.append("the answer is a refusal, not a request")
    lowered = text.lower()
    named = sorted({plain_tool_name(c.tool) for c in task.gold_calls() if plain_tool_name(c.tool).lower() in lowered
                    and ("_" in plain_tool_name(c.tool) or re.search(r"[a-z][A-Z]", plain_tool_name(c.tool)))})
    if named:
        problems.append(f"it names tools: {', '.join(named)}")
    leaked = sorted(v for v in env_produced_values(task) if v.lower() in lowered)
    if leaked:
        problems.append(f"it states values only the service can know yet: {', '.join(leaked[:5])}")
    if task.read_only:
        stated = [c.text for c in task.checks if c.kind == "output_contains"
                  and re.search(rf"(?<!\w){re.escape(c.text.lower())}(?!\w)", lowered)]
        if stated:
            problems.append(f"it states the answer the service should give: {', '.join(stated[:5])}")
    missing = [v for v in required_values if v.lower() not in lowered]
    if missing:
        problems.append(f"it leaves out values the request needs: {', '.join(missing[:6])}")
    return problems


def _problem_reason(problems: Sequence[str]) -> str:
    first = problems[0] if problems else "invalid answer"
    for key, reason in (("refusal", "refusal"), ("names tools", "tool_names"), ("only the service", "env_ids"),
                        ("states the answer", "states_answer"),
                        ("leaves out", "missing_values"), ("empty", "empty"), ("JSON", "not_json")):
        if key in first:
            return reason
    return "invalid"


def _ask(client: LLMClient, system: str, prompt: str, schema: JSONObject, name: str, seed: int, attempts: int,
         check: Callable[[Mapping[str, object]], list[str]]) -> tuple[Mapping[str, object], tuple[str, ...]]:
    """Ask until `check` finds no problem in the parsed JSON object; the accepted object and the problems of
    the answers refused before it. `check` sees only objects (anything else is refused here)."""
    messages = [ChatMessage.system(system), ChatMessage.user(prompt)]
    seen: list[str] = []
    problems: list[str] = []
    for attempt in range(attempts):
        request = ChatRequest(messages=messages, response_format=ResponseFormat(name=name, json_schema=schema),
                              temperature=0.0, max_tokens=320, seed=seed + attempt)
        try:
            response = client.chat(request)
            content = response.content
            value = response.parsed()
        except StructuredOutputError as exc:  # the managed client's repairs were exhausted
            content, value = str(exc)[:200], None
        except ValueError:
            value = None
        problems = check(value) if isinstance(value, dict) else [_shape_problem(schema)]
        if not problems:
            assert isinstance(value, dict)
            return value, tuple(seen)
        seen.extend(problems)
        messages = [*messages, ChatMessage.assistant(content),
                    ChatMessage.user("That does not work: " + "; ".join(problems) + ". Write it again.")]
    raise QueryFailure(_problem_reason(problems), seen)  # every answer's problems, the last one's last


def _shape_problem(schema: JSONObject) -> str:
    required = [str(k) for k in schema.get("required", []) or []]  # type: ignore[union-attr]
    return "the answer is not JSON with the fields " + ", ".join(required)


def join_sentences(sentences: Sequence[str]) -> str:
    """The sentences as one request, in order: each stripped and ended with punctuation."""
    parts = [text.strip() for text in sentences if text.strip()]
    return " ".join(part if part[-1] in ".!?" else part + "." for part in parts)


def _step_values(task: Task, calls: Sequence[GoldCall]) -> list[list[tuple[str, str]]]:
    """Per call, the (path, value) pairs a user knows that the call needs (its essential arguments')."""
    return [[(path, value) for path, value in knowable_values(task, [call])
             if path.split(".", 1)[0] in call.essential_arguments] for call in calls]


def stating_sentence(pairs: Sequence[tuple[str, str]]) -> str:
    """A template sentence stating `pairs` ((argument path, value)) in words: 'The name is x and the size
    is 3.' — the completion of a sentence whose writer kept leaving the values out."""
    clauses = [f"the {_words(path.rsplit('.', 1)[-1].removesuffix('[]'))} is {value}" for path, value in pairs]
    text = " and ".join(clauses)
    return text[:1].upper() + text[1:] + "."


def write_query(client: LLMClient, task: Task, calls: Sequence[GoldCall], tools: Mapping[str, ToolSpec], *,
                seed: int, attempts: int, domain: str = "", persona: str = "") -> WrittenQuery:
    """A persona and an explicit query for `calls` of `task`, one sentence per call, validated (see the
    module docstring). When the last answer failed only by leaving values out, it is kept and
    each of its sentences that misses values gets a template sentence stating them (`completed`): the
    small local models drop identifier-like values however they are asked, and a dropped query loses the
    task. Any other problem still raises `QueryFailure`."""
    per_step = _step_values(task, calls)
    required = list(dict.fromkeys(value for pairs in per_step for _, value in pairs))
    given_persona = f"The person: {persona}\n" if persona else ""
    count = "exactly 1 sentence" if len(calls) == 1 else f"exactly {len(calls)} sentences, one per numbered step"
    prompt = (f"{given_persona}Domain: {domain or 'general'}.\nWhat the person wants done, in order:\n"
              f"{describe_goal(task, calls, tools)}\n\nWrite JSON with \"persona\" (one sentence about who they "
              f"are) and \"steps\": {count}, in order, each the person asking for that step in their own words "
              "and stating every value listed for it.")
    last_short: list[tuple[str, list[str]]] = []  # the last answer that failed only by missing values

    def check(value: Mapping[str, object]) -> list[str]:
        steps = value.get("steps")
        if not isinstance(value.get("persona"), str) or not isinstance(steps, list) \
                or not all(isinstance(step, str) for step in steps):
            return ["the answer is not JSON with the fields persona, steps"]
        if len(steps) != len(calls) or not all(str(step).strip() for step in steps):
            return [f"the answer does not have {count}"]
        text = join_sentences([str(step) for step in steps])
        problems = query_problems(text, task, required_values=required)
        for number, pairs in enumerate(per_step, start=1):  # say where the missing values belong
            missing = [v for _, v in pairs if v.lower() not in text.lower()]
            if missing:
                problems.append(f"sentence {number} should state {', '.join(missing[:6])}")
        only_missing = all("leaves out" in p or p.startswith("sentence ") for p in problems)
        last_short[:] = [(str(value["persona"]), [str(step) for step in steps])] if problems and only_missing else []
        return problems

    try:
        answer, problems = _ask(client, WRITER_SYSTEM, prompt, query_schema(len(calls)), "query", seed, attempts,
                                check)
    except QueryFailure as failure:
        if not last_short:
            raise
        written_persona, sentences = last_short[0]
        completed: list[str] = []
        for index, pairs in enumerate(per_step):
            text = join_sentences(sentences).lower()
            missing = [(path, value) for path, value in pairs if value.lower() not in text]
            if missing:
                sentences[index] = join_sentences([sentences[index], stating_sentence(missing)])
                completed.extend(value for _, value in missing)
        return WrittenQuery(persona=persona or written_persona.strip(), query=join_sentences(sentences),
                            problems=tuple(failure.problems), completed=tuple(completed))
    steps = answer["steps"]
    query = join_sentences([str(step) for step in steps] if isinstance(steps, list) else [])
    return WrittenQuery(persona=persona or str(answer["persona"]).strip(), query=query, problems=problems)


def choose_operators(seed: int, task_id: str) -> list[RefineOperator]:
    """The seeded operator choice of one task: 1 to 4 operators (see the module docstring)."""
    rng = random.Random(f"{seed}:{task_id}:refine")
    strength = rng.randint(1, len(REFINE_OPERATORS))
    order = list(REFINE_OPERATORS)
    rng.shuffle(order)
    return order[:strength]


def refine_query(client: LLMClient, task: Task, explicit: str, operators: Sequence[RefineOperator], *,
                 seed: int, attempts: int) -> WrittenQuery:
    """The explicit query rewritten with `operators`, validated like an explicit one minus required values."""
    rules = "\n".join(f"- {OPERATOR_TEXT[op]}" for op in operators)
    prompt = f"The request:\n{explicit}\n\nRewrite it. Apply these rules:\n{rules}\n\nWrite JSON with \"query\"."

    def check(value: Mapping[str, object]) -> list[str]:
        if not isinstance(value.get("query"), str):
            return ["the answer is not JSON with the fields query"]
        text = str(value["query"])
        problems = query_problems(text, task)
        if text.strip() == explicit.strip():
            problems.append("the rewrite is identical to the request")
        return problems

    answer, problems = _ask(client, REFINER_SYSTEM, prompt, REFINED_SCHEMA, "refined_query", seed, attempts, check)
    return WrittenQuery(persona="", query=str(answer["query"]).strip(), problems=problems)
