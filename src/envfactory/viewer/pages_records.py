"""Record pages over JSONL artifacts: trajectories, tasks and sampled chains, each paged and searchable
across every file of its kind in the workspace, and one record in full.

Records are validated against their `spec` model when shown in full (`validate_line`); a record that
does not validate is shown as a problem with its raw JSON (escaped), never half-rendered.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from envfactory.spec import Task, TaskGates, Trajectory
from envfactory.spec.synth_trajectories import TrajectoryItem
from envfactory.spec.trajectory import REFUSED_CALL_PREFIX
from envfactory.viewer.diffs import diff_view
from envfactory.viewer.jsonl import JsonlIndex, Page
from envfactory.viewer.models import KNOWN_CHAIN_VERSIONS, ChainView, check_version
from envfactory.viewer.render import PageResult, pretty, query_int
from envfactory.viewer.workspace import (
    CHAIN_FILES,
    DROP_FILES,
    TASK_FILES,
    TRAJECTORY_FILES,
    ArtifactProblem,
    NotFound,
    WorkspaceData,
    confined,
    validation_summary,
)

M = TypeVar("M", bound=BaseModel)
PAGE_SIZE = 50


def validate_line(data: WorkspaceData, raw: bytes, model: type[M], where: str) -> M:
    """`raw` (one JSONL record) validated as `model`; an `ArtifactProblem` says what is wrong."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        try:
            version = orjson.loads(raw).get("schema_version")
        except (orjson.JSONDecodeError, AttributeError):
            version = None
        note = f" (schema version {version!r})" if version not in (None, 1) else ""
        raise ArtifactProblem(f"{where}: not a valid {model.__name__}{note}: {validation_summary(exc)}") from None


def trajectory_summary(value: Any) -> dict[str, Any]:
    """The list-page fields of one trajectory record (raw JSON)."""
    reward = value.get("reward") or {}
    messages = value.get("messages") or []
    producer = value.get("producer") or {}
    return {"id": str(value.get("id", "")), "task_id": str(value.get("task_id", "")),
            "envs": ", ".join(str(e.get("name", "")) for e in value.get("envs", []) if isinstance(e, dict)),
            "termination": str(value.get("termination", "")),
            "reward": reward.get("total") if isinstance(reward, dict) else None,
            "messages": len(messages), "tool_calls": sum(len(m.get("tool_calls") or []) for m in messages),
            "model": str(producer.get("model", "")) if isinstance(producer, dict) else ""}


def task_summary(value: Any) -> dict[str, Any]:
    """The list-page fields of one task record (raw JSON)."""
    turns = value.get("turns") or [{}]
    user = turns[0].get("user") or {}
    origin = value.get("origin") or {}
    queries = value.get("queries") or {}
    text = queries.get("refined") or user.get("text") or user.get("instructions") or ""
    return {"id": str(value.get("id", "")), "envs": ", ".join(str(e.get("name", "")) for e in value.get("envs", [])),
            "turns": len(turns), "gold_calls": sum(len(t.get("gold_calls") or []) for t in turns),
            "source": str(origin.get("source", "")), "query": str(text)[:160]}


def chain_summary(value: Any) -> dict[str, Any]:
    """The list fields of one chain record (raw JSON)."""
    steps = value.get("steps") or []
    return {"sampler": str(value.get("sampler", "")), "seed": value.get("seed", 0), "number": value.get("number", 0),
            "tools": [str(s.get("tool", "")) for s in steps]}


def drop_summary(value: Any) -> dict[str, Any]:
    """The list fields of one dropped synthesis candidate (`spec.synth.CandidateDrop`, raw JSON)."""
    return {"candidate": value.get("candidate", ""), "stage": str(value.get("stage", "")),
            "reason": str(value.get("reason", "")), "detail": str(value.get("detail", ""))[:300],
            "envs": ", ".join(str(e) for e in value.get("envs", [])),
            "tools": ", ".join(str(t) for t in value.get("tools", []))}


KINDS = {
    "trajectory": (TRAJECTORY_FILES, trajectory_summary, "Trajectories", "trajectories.html"),
    "task": (TASK_FILES, task_summary, "Tasks", "tasks.html"),
    "chain": (CHAIN_FILES, chain_summary, "Chains", "chains.html"),
    "drop": (DROP_FILES, drop_summary, "Dropped candidates", "drops.html"),
}


def records_page(data: WorkspaceData, kind: str, query: dict[str, str]) -> PageResult:
    """`/<kind>s?q=&file=&page=`: records of every file of `kind` (or one file), paged and searchable."""
    patterns, summarise, title, template = KINDS[kind]
    files = data.data_files(patterns)
    chosen = query.get("file", "")
    if chosen:
        files = [f for f in files if f.key == chosen]
        if not files:
            raise NotFound(f"no {kind} file {chosen!r}")
    needle = query.get("q", "").strip()
    matches: list[tuple[str, int]] = []
    indexes: dict[str, JsonlIndex] = {}
    problems: list[str] = []
    for item in files:
        try:
            indexes[item.key] = data.indexes.get(item.path, kind, summarise)
        except OSError as exc:
            problems.append(f"{item.key}: cannot be read ({exc.strerror})")
            continue
        matches += [(item.key, n) for n in indexes[item.key].search(needle)]
    page = Page.of(matches, query_int(query, "page", 1), PAGE_SIZE)
    page = replace(page, items=[(key, n, indexes[key].summary(n)) for key, n in page.items])
    return PageResult(template, {"title": title, "page": page, "q": query.get("q", ""), "file": chosen,
                                        "files": [f.key for f in data.data_files(patterns)], "problems": problems})


def _record(data: WorkspaceData, kind: str, query: dict[str, str]) -> tuple[str, int, bytes]:
    patterns, summarise, _, _ = KINDS[kind]
    item = data.data_file(patterns, query.get("file", ""))
    number = query_int(query, "n", -1)
    try:
        return item.key, number, data.indexes.get(item.path, kind, summarise).raw(number)
    except IndexError:
        raise NotFound(f"{item.key} has no record number {number}") from None


def trajectory_context(trajectory: Trajectory) -> dict[str, Any]:
    """The conversation of a trajectory with each call's result, the state hash after each call and the
    state diff each state-changing call recorded (`Trajectory.state_diffs`, by call id)."""
    diffs = {d.call_id: diff_view(d) for d in trajectory.state_diffs}
    results: dict[str, Any] = {}
    for message in trajectory.messages:
        if message.role == "tool" and message.result is not None:
            results[message.result.call_id] = message.result
    steps: list[dict[str, Any]] = []
    previous = ""
    call_number = 0
    for message in trajectory.messages:
        if message.role == "tool":
            continue  # shown with the call it answers
        calls = []
        for call in message.tool_calls:
            result = results.get(call.id)
            refused = call.id.startswith(REFUSED_CALL_PREFIX)  # never reached an environment: no state hash
            after = "" if refused or call_number >= len(trajectory.state_hashes) else trajectory.state_hashes[call_number]
            calls.append({"call": call, "arguments": pretty(call.arguments), "result": result,
                          "output": pretty(result.output) if result is not None and result.ok else "",
                          "state_after": after, "state_changed": bool(after and previous and after != previous),
                          "diff": diffs.get(call.id)})
            previous = after or previous
            call_number += 0 if refused else 1
        steps.append({"message": message, "calls": calls})
    return {"trajectory": trajectory, "steps": steps}


def trajectory_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/trajectory?file=&n=`: one trajectory in full."""
    key, number, raw = _record(data, "trajectory", query)
    trajectory = validate_line(data, raw, Trajectory, f"{key} record {number}")
    return PageResult("trajectory.html", {"title": f"Trajectory {trajectory.id}", "file": key, "number": number,
                                          **trajectory_context(trajectory)})


def highlight(text: str, marks: dict[str, str]) -> list[tuple[str, str]]:
    """`text` split into (segment, mark class) pairs: a segment equal (case-insensitively) to a key of
    `marks` gets that key's class, the rest gets ""; values under three characters are not marked."""
    wanted = sorted((v for v in marks if len(v) >= 3), key=len, reverse=True)
    if not wanted or not text:
        return [(text, "")]
    lowered = {v.lower(): marks[v] for v in wanted}
    pattern = re.compile("|".join(re.escape(v) for v in wanted), re.IGNORECASE)
    segments: list[tuple[str, str]] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            segments.append((text[position:match.start()], ""))
        segments.append((match.group(0), lowered[match.group(0).lower()]))
        position = match.end()
    if position < len(text):
        segments.append((text[position:], ""))
    return segments


def _scalars(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    if isinstance(value, bool) or value is None:
        return []
    return [str(value)]


def gold_marks(task: Task) -> dict[str, str]:
    """How each gold-call argument value is marked in the task's queries.

    `over`: a value a user need not state: an argument the gold call marks as ignored (limits,
    formatting), or a value an earlier gold call returned (an id the agent can look up). `given`: every
    other argument value, which the user must state for the task to be solvable.
    """
    marks: dict[str, str] = {}
    returned: set[str] = set()
    for call in task.gold_calls():
        for name, value in call.arguments.items():
            derived = name in call.ignored_arguments
            for text in _scalars(value):
                if derived or text in returned:
                    marks[text] = "over"
                else:
                    marks.setdefault(text, "given")
        returned.update(_scalars(call.result))
    return marks


def _queries(task: Task, marks: dict[str, str], item: TrajectoryItem | None = None) -> dict[str, Any]:
    first = task.turns[0].user
    first_text = first.text if first.kind == "scripted" else first.instructions
    written = item.query if item is not None else None
    refined = (written.refined if written is not None else "") or task.queries.refined or first_text
    explicit = (written.explicit if written is not None else "") or task.explicit_query
    return {"explicit": highlight(explicit, marks) if explicit else None,
            "refined": highlight(refined, marks),
            "over_in_refined": sorted({text for text, mark in highlight(refined, marks) if mark == "over"})}


TASK_ID = re.compile(r"^[0-9a-f]{8,128}$")


def trajectory_item(data: WorkspaceData, tasks_key: str, task_id: str) -> tuple[TrajectoryItem | None, str]:
    """What trajectory synthesis made of a task (`items/<task-id>.json` beside the tasks file, or in
    another stage of the same run), and the problem reading it ("" when none)."""
    if not TASK_ID.match(task_id):
        return None, ""
    tasks_path = (data.root / tasks_key).parent
    candidates = [tasks_path / "items" / f"{task_id}.json"]
    run_dir = data.root / "runs"
    if tasks_path.is_relative_to(run_dir) and len(tasks_path.relative_to(run_dir).parts) >= 1:
        run = run_dir / tasks_path.relative_to(run_dir).parts[0]
        candidates += sorted(run.glob(f"*/items/{task_id}.json"))
    for path in candidates:
        if path.is_file():
            try:
                return data.model(confined(data.root, path), TrajectoryItem, "trajectory item"), ""
            except ArtifactProblem as exc:
                return None, str(exc)
    return None, ""


GATES_FILE = "gates.jsonl"


def _gates_summary(value: Any) -> dict[str, Any]:
    return {"task_id": str(value.get("task_id", ""))}


def task_gates(data: WorkspaceData, tasks_key: str, number: int, task_id: str) -> tuple[TaskGates | None, str]:
    """The gate records of a kept task (`gates.jsonl` beside the tasks file, one `TaskGates` per task in
    the tasks' order; looked up by task id when the order differs), and the problem reading them ("" when
    none). None when the stage wrote no gate records or none for this task."""
    path = (data.root / tasks_key).parent / GATES_FILE
    if not path.is_file() or not TASK_ID.match(task_id):
        return None, ""
    where = data.display(path)
    try:
        index = data.indexes.get(confined(data.root, path), "gates", _gates_summary)
        candidates = [number] if 0 <= number < len(index) else []
        candidates += [n for n in index.search(f'"{task_id}"') if n != number]
        for n in candidates:
            raw = index.raw(n)
            if task_id.encode() in raw:
                record = validate_line(data, raw, TaskGates, f"{where} record {n}")
                if record.task_id == task_id:
                    return record, ""
    except OSError as exc:
        return None, f"{where}: cannot be read ({exc.strerror})"
    except (ArtifactProblem, NotFound) as exc:
        return None, str(exc)
    return None, ""


def _item_marks(item: TrajectoryItem | None) -> dict[str, str]:
    """Text the over-specification score found in the item's queries (tool, parameter names, values)."""
    if item is None or item.query is None:
        return {}
    found: dict[str, str] = {}
    for score in (item.query.explicit_overspec, item.query.refined_overspec):
        if score is not None:
            for text in (*score.tool_names, *score.parameter_names, *score.values):
                found[text] = "over"
    return found


def _attempts(item: TrajectoryItem | None) -> list[dict[str, Any]]:
    if item is None:
        return []
    return [{"attempt": a, "selected": item.selected == a.attempt,
             **(trajectory_context(a.trajectory) if a.trajectory is not None else {"trajectory": None, "steps": []})}
            for a in item.attempts]


def task_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/task?file=&n=`: one task: its explicit and refined queries (gold argument values marked, the
    over-specified ones apart), turns, gold calls with their masks and recorded results, expected state,
    reward spec, the gates it passed and checks."""
    key, number, raw = _record(data, "task", query)
    task = validate_line(data, raw, Task, f"{key} record {number}")
    item, item_problem = trajectory_item(data, key, task.id)
    gates, gates_problem = task_gates(data, key, number, task.id)
    marks = {**gold_marks(task), **_item_marks(item)}
    turns = []
    for turn in task.turns:
        user = turn.user
        text = user.text if user.kind == "scripted" else user.instructions
        turns.append({"turn": turn, "text": highlight(text, marks),
                      "gold": [{"tool": c.tool, "arguments": pretty(c.arguments), "ignored": c.ignored_arguments,
                                "essential": c.essential_arguments,
                                "result": pretty(c.result) if c.result is not None else ""}
                               for c in turn.gold_calls]})
    return PageResult("task.html", {
        "title": f"Task {task.id[:12]}", "task": task, "file": key, "number": number, "turns": turns,
        **_queries(task, marks, item),
        "expected_state": pretty(task.expected_final_state, limit=50_000),
        "reward_spec": pretty(task.reward.model_dump(mode="json")),
        "checks": [pretty(c.model_dump(mode="json")) for c in task.checks],
        "item": item, "item_problem": item_problem, "attempts": _attempts(item),
        "gates": gates, "gates_problem": gates_problem,
    })


def chain_entry(data: WorkspaceData, key: str, number: int) -> dict[str, Any]:
    """Chain `number` of chain file `key`, validated, or the problem reading it."""
    item = data.data_file(CHAIN_FILES, key)
    raw = data.indexes.get(item.path, "chain", chain_summary).raw(number)
    try:
        problem = check_version(orjson.loads(raw), KNOWN_CHAIN_VERSIONS, f"{key} record {number}")
        if problem:
            raise ArtifactProblem(problem)
        return {"key": key, "number": number, "chain": validate_line(data, raw, ChainView, key), "problem": ""}
    except (ArtifactProblem, orjson.JSONDecodeError) as exc:
        return {"key": key, "number": number, "chain": None, "problem": str(exc)}


def chains_through(data: WorkspaceData, tool: str, limit: int = 5) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` sampled chains that call `tool` (its id in quotes, as chain steps hold it), and
    how many there are in all."""
    needle = f'"{tool}"'
    found: list[tuple[str, int]] = []
    for item in data.data_files(CHAIN_FILES):
        try:
            index = data.indexes.get(item.path, "chain", chain_summary)
        except OSError:
            continue
        found += [(item.key, n) for n in index.search(needle)]
    return [chain_entry(data, key, n) for key, n in found[:limit]], len(found)


def chains_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/chains?file=&q=&page=`: sampled chains with their binding plans."""
    result = records_page(data, "chain", query)
    result.context["chains"] = [chain_entry(data, key, number) for key, number, _ in result.context["page"].items]
    return result
