"""The LLM judge of the trajectory stage (issue 22, deliverable 4): for what state cannot show — that a
read-only task's final answer states the fact asked.

Contract:
- `needs_judge(task)`: only read-only tasks (their final state is not scored) are judged.
- `judge_attempt(client, task, trajectory, seed=...)` asks the judge model with its own prompt
  (`prompts/judge.md`, hashed by `judge_prompt_hash`) whether the trajectory's final answer states the
  fact the person asked, given what the person said (the user messages of the trajectory), the facts the
  task's checks and expected outputs hold, and that answer. The answer is constrained to `JUDGE_SCHEMA`
  (`{"states_fact": bool, "reason": str}`) and recorded as a `JudgeVerdict` (verdict, model id, prompt
  hash, reason). An answer that is not JSON of the schema is verdict `error` with the reason; an attempt
  with no final answer is `fail` without asking. Set-up failures of the model (replay miss, model not
  installed, unreachable endpoint) are raised: no answer was involved.
- The verdict is its own component, outside the reward: it never makes an attempt verified. The stage
  uses it only to order verified attempts of equal reward (`synth.solve.select`) and reports it in the
  funnel (`JudgeFigures`: judge-only passes and disagreements with verification).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from envfactory.llm import ChatMessage, ChatRequest, LLMClient, ResponseFormat, StructuredOutputError
from envfactory.spec import JSONObject, Task, Trajectory, sha256_hex
from envfactory.spec.synth_trajectories import JudgeVerdict

JUDGE_SCHEMA: JSONObject = {
    "type": "object",
    "properties": {"states_fact": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["states_fact", "reason"],
    "additionalProperties": False,
}


@cache
def judge_system() -> str:
    """The judge's system prompt (`synth/prompts/judge.md`, without its trailing newline)."""
    path = resources.files("envfactory.synth").joinpath("prompts", "judge.md")
    return path.read_text(encoding="utf-8").rstrip("\n")


def judge_prompt_hash() -> str:
    """sha256 of the judge's prompt text (recorded on every verdict and in the stage manifest)."""
    return sha256_hex(judge_system().encode("utf-8"))


def needs_judge(task: Task) -> bool:
    """Whether attempts on `task` are judged: read-only tasks, whose final state shows nothing."""
    return task.read_only


def task_facts(task: Task) -> list[str]:
    """The facts a read-only task asks for: its `output_contains` checks and the turns' expected outputs."""
    facts = [check.text for check in task.checks if check.kind == "output_contains"]
    facts += [fact for turn in task.turns for fact in turn.expected_outputs]
    return list(dict.fromkeys(facts))


def _final_answer(trajectory: Trajectory) -> str:
    return next((m.content for m in reversed(trajectory.messages) if m.role == "assistant" and m.content), "")


def judge_attempt(client: LLMClient, task: Task, trajectory: Trajectory, *, seed: int) -> JudgeVerdict:
    """The judge's verdict on `trajectory`'s final answer (see the module docstring)."""
    base = {"model": client.model_id, "prompt_hash": judge_prompt_hash()}
    answer = _final_answer(trajectory)
    if not answer.strip():
        return JudgeVerdict(verdict="fail", reason="the attempt gave no final answer", **base)
    asked = "\n".join(m.content for m in trajectory.messages if m.role == "user" and m.content)
    facts = "\n".join(f"- {fact}" for fact in task_facts(task)) or "- (none recorded)"
    prompt = (f"The person asked:\n{asked}\n\nThe correct answer holds:\n{facts}\n\n"
              f"The assistant's answer:\n{answer}\n\nDoes the assistant's answer give the correct value? Write JSON.")
    request = ChatRequest(messages=[ChatMessage.system(judge_system()), ChatMessage.user(prompt)],
                          response_format=ResponseFormat(name="judge_verdict", json_schema=JUDGE_SCHEMA),
                          temperature=0.0, max_tokens=160, seed=seed)
    try:
        value = client.chat(request).parsed()
    except StructuredOutputError as exc:  # the managed client's repairs ran out
        return JudgeVerdict(verdict="error", reason=f"not_json: {str(exc)[:200]}", **base)
    except ValueError:
        return JudgeVerdict(verdict="error", reason="not_json: the judge's answer is not JSON", **base)
    if not isinstance(value, dict) or not isinstance(value.get("states_fact"), bool):
        return JudgeVerdict(verdict="error", reason="schema: no boolean states_fact in the judge's answer", **base)
    return JudgeVerdict(verdict="pass" if value["states_fact"] else "fail", reason=str(value.get("reason", ""))[:300],
                        **base)
