"""Training data: tasks in, trainer rows out.

- `load_tasks(path)`: Task files (`.json` one task or a list, `.jsonl`, or a directory of them).
- `gold_tasks(env, ...)`: a small, real task set made by running gold calls on a bundled environment —
  each task's expected final state is what its gold call produced in a live session, and a call the
  environment refuses drops the task. It gives `envfactory train demo-data` tasks to train and evaluate
  on while the synthesis stages are elsewhere; split by a seeded hash of the task id.
- `gold_trajectory(task, ...)`: the task's gold calls replayed as a `Trajectory` (user text, assistant
  tool call, tool result, a closing reply), the input the `export` layer turns into SFT rows.
- `grpo_rows(tasks, system_prompt)`: one row per task for TRL's GRPOTrainer: the `prompt` (system and
  user messages) and the `task` (Task JSON) the environment's `reset` opens a session for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from envfactory.errors import SpecError
from envfactory.runtime import Environment, load_env, open_group, qualified_name
from envfactory.spec import (
    EnvRef,
    GoldCall,
    Message,
    Producer,
    ScriptedUser,
    Task,
    TaskOrigin,
    TaskQueries,
    TerminationReason,
    ToolCall,
    Trajectory,
    Turn,
    content_hash,
)

SYSTEM_PROMPT = ("You are an assistant that completes the user's request by calling the available tools. "
                 "Call the tool that does what is asked, with the exact ids given, then reply briefly.")
DEMO_TOOLS = ("set_task_status", "assign_task", "add_comment", "get_task")
_NEXT_STATUS = {"todo": ["in_progress", "blocked"], "in_progress": ["in_review", "blocked"],
                "in_review": ["done", "in_progress"], "blocked": ["todo", "in_progress"]}
_COMMENTS = ("Looks good to me.", "Can we finish this by Friday?", "I am picking this up today.",
             "Blocked on the vendor reply.")


def load_tasks(path: str | Path) -> list[Task]:
    """Tasks from a `.json` file (one task or a list), a `.jsonl` file or a directory of such files."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".jsonl"))
    elif root.is_file():
        files = [root]
    else:
        raise SpecError(f"{root}: no such task file or directory")
    tasks: list[Task] = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        try:
            if file.suffix == ".jsonl":
                tasks += [Task.model_validate_json(line) for line in text.splitlines() if line.strip()]
            else:
                data = json.loads(text)
                tasks += [Task.model_validate(item) for item in (data if isinstance(data, list) else [data])]
        except ValueError as exc:
            raise SpecError(f"{file}: not a Task file ({str(exc).splitlines()[0]})") from exc
    if not tasks:
        raise SpecError(f"{root}: holds no tasks")
    return tasks


def split_of(task: Task, heldout_share: float, seed: int) -> str:
    """`heldout` or `train`, from a seeded hash of the task's split key (its id when it has none)."""
    key = task.split_key or task.id
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < heldout_share else "train"


def _requests(state: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(query, tool, arguments) drawn from a tracker state: status moves, assignments and comments."""
    collections = state["collections"]
    users = sorted(collections["users"])
    out: list[tuple[str, str, dict[str, Any]]] = []
    for task_id, record in sorted(collections["tasks"].items()):
        title = record["title"]
        for status in _NEXT_STATUS.get(record["status"], []):
            out.append((f"Set the status of task {task_id} ('{title}') to {status}.", "set_task_status",
                        {"id": task_id, "status": status}))
        for user in users:
            if user != record.get("assignee_id"):
                out.append((f"Assign task {task_id} ('{title}') to user {user}.", "assign_task",
                            {"id": task_id, "assignee_id": user}))
        for index, user in enumerate(users):
            body = _COMMENTS[index % len(_COMMENTS)]
            out.append((f"As user {user}, comment on task {task_id}: \"{body}\"", "add_comment",
                        {"task_id": task_id, "author_id": user, "body": body}))
    return out


def gold_tasks(env: Environment | None = None, *, tools: Sequence[str] = DEMO_TOOLS, seed: int = 0) -> list[Task]:
    """Single-call tasks on the bundled `tracker` environment, grounded by running each gold call; the
    tasks offer `tools` (and use those of them that write: status moves, assignments, comments)."""
    environment = env or load_env("tracker")
    if environment.name != "tracker":
        raise SpecError(f"gold tasks are written for the bundled tracker environment, not {environment.name}")
    state = environment.default_state()
    ref = EnvRef(name=environment.name, version=environment.spec.meta.version,
                 content_hash=environment.spec.content_hash)
    offered = [qualified_name(environment.name, t) for t in tools]
    tasks = []
    for query, tool, arguments in _requests(state):
        if tool not in tools:
            continue
        name = qualified_name(environment.name, tool)
        with open_group([environment], {environment.name: state}, seed) as group:
            result = group.call(name, arguments)
            if result.error is not None:
                continue
            final = group.sessions[environment.name].state_json()
        tasks.append(Task.create(
            envs=[ref], initial_state={environment.name: state}, seed=seed,
            turns=[Turn(user=ScriptedUser(text=query), available_tools=offered,
                        gold_calls=[GoldCall(tool=name, arguments=arguments)])],
            expected_final_state={environment.name: final},
            origin=TaskOrigin(source="manual", source_id=f"train-demo:{tool}", domain="project management"),
            queries=TaskQueries(explicit=query, source="template"),
        ))
    return tasks


def gold_trajectory(task: Task, env: Environment, *, reply: str = "Done.") -> Trajectory:
    """The task's gold calls replayed in a live session, as a trajectory an SFT export can read."""
    messages: list[Message] = []
    hashes: list[str] = []
    with open_group([env], task.initial_state, task.seed, naming=task.tool_naming) as group:
        for turn_index, turn in enumerate(task.turns):
            user = turn.user
            messages.append(Message(role="user", content=user.text if isinstance(user, ScriptedUser) else user.instructions))
            for call_index, gold in enumerate(turn.gold_calls):
                call = ToolCall(id=f"call_{turn_index}_{call_index}", tool=gold.tool, arguments=gold.arguments)
                result = group.call(gold.tool, gold.arguments)
                if result.error is not None:
                    raise SpecError(f"task {task.id[:12]}: gold call {gold.tool} fails ({result.error.message})")
                messages.append(Message(role="assistant", tool_calls=[call]))
                messages.append(Message(role="tool", result=result.model_copy(update={"call_id": call.id})))
                hashes.append(group.hash())
            messages.append(Message(role="assistant", content=reply))
        finals = group.hashes()
    return Trajectory(id=content_hash({"task": task.id, "kind": "gold"}), task_id=task.id, envs=task.envs,
                      seed=task.seed, messages=messages, state_hashes=hashes, final_state_hashes=finals,
                      termination=TerminationReason.AGENT_STOP, producer=Producer(model="gold", provider="replay"))


def query_text(task: Task) -> str:
    """The first turn's user text (the refined query when the task has one)."""
    if task.queries.refined:
        return task.queries.refined
    user = task.turns[0].user
    return user.text if isinstance(user, ScriptedUser) else user.instructions


def grpo_rows(tasks: Iterable[Task], system_prompt: str = SYSTEM_PROMPT) -> list[dict[str, Any]]:
    """TRL rows: `prompt` (system + user), `task` (Task JSON for `reset`) and `task_id`."""
    rows = []
    for task in tasks:
        if len(task.turns) != 1:
            raise SpecError(f"task {task.id[:12]} has {len(task.turns)} turns; GRPO rollouts here play one scripted turn")
        rows.append({"prompt": [{"role": "system", "content": system_prompt},
                                {"role": "user", "content": query_text(task)}],
                     "task": task.model_dump_json(), "task_id": task.id})
    return rows


def offered_tools(tasks: Iterable[Task], envs: dict[str, Environment]) -> list[str]:
    """The tools the tasks offer (their turns' `available_tools`, or every tool of their environments)."""
    names: dict[str, None] = {}
    for task in tasks:
        for turn in task.turns:
            if turn.available_tools is not None:
                names.update(dict.fromkeys(turn.available_tools))
            else:
                for ref in task.envs:
                    names.update(dict.fromkeys(qualified_name(ref.name, t.name) for t in envs[ref.name].spec.tools))
    return list(names)
