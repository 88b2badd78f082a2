"""The LLM judge of read-only answers (issue 22, deliverable 4): its own component on the attempt
(verdict, model id, prompt hash, reason), constrained to a JSON schema, counted in the funnel; a
judge-only pass never makes an attempt verified, a judge's fail never unmakes one, and it orders verified
attempts of equal reward. The solver is the scripted oracle of `traj_fixtures`, the judge a scripted
client (no model)."""

from __future__ import annotations

import json
from pathlib import Path

from traj_fixtures import OracleClient, shop_tasks, write_task_stage

from envfactory.llm import ChatRequest, ChatResponse, ScriptedClient
from envfactory.llm.scripted import text_response
from envfactory.spec import StageManifest, Task, Trajectory
from envfactory.spec.synth_trajectories import SynthTrajectoriesConfig, TrajectoryFunnel, TrajectoryItem
from envfactory.store import Workspace
from envfactory.synth.judge import JUDGE_SCHEMA, judge_attempt, judge_prompt_hash, judge_system, needs_judge
from envfactory.synth.trajectories import TrajectoryDeps, run_synth_trajectories

STAGE = Path("runs/ci/synth-trajectories")


def verdict(states: bool, reason: str = "ok") -> str:
    return json.dumps({"states_fact": states, "reason": reason})


class Vague(OracleClient):
    """The oracle, except that its final answer never states what the tools returned."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        response = super().chat(request)
        if '"next": "answer"' in response.message.content:
            return text_response(json.dumps({"next": "answer", "message": "I looked that up for you."}))
        return response


def _stage(root: Path, judge: ScriptedClient | None, *, solver: type[OracleClient] = OracleClient,
           tasks: list[Task] | None = None, **config: object) -> tuple[list[TrajectoryItem], TrajectoryFunnel, Path]:
    chosen = tasks or shop_tasks()
    workspace = Workspace(root)
    write_task_stage(workspace, "ci", chosen)
    oracle = solver(chosen)
    run_synth_trajectories(SynthTrajectoriesConfig(from_run="ci", seed=3, **config), workspace,  # type: ignore[arg-type]
                           TrajectoryDeps(writer=oracle, solver=oracle, judge=judge))
    stage = root / STAGE
    items = [TrajectoryItem.model_validate_json(p.read_bytes()) for p in sorted((stage / "items").iterdir())]
    return items, TrajectoryFunnel.model_validate_json((stage / "funnel.json").read_bytes()), stage


def _trajectory(answer: str) -> Trajectory:
    return Trajectory.model_validate({
        "id": "t", "task_id": "x", "envs": [], "seed": 0, "termination": "agent_stop",
        "messages": [{"role": "user", "content": "What does the book BK-001 cost?"},
                     {"role": "assistant", "content": answer}]})


def test_the_judge_asks_with_its_schema_and_records_its_verdict() -> None:
    lookup = shop_tasks()[2]
    assert needs_judge(lookup) and not needs_judge(shop_tasks()[1])
    client = ScriptedClient([verdict(True, "it gives the price")], model_id="judge/m@1")
    result = judge_attempt(client, lookup, _trajectory("It costs 45.5."), seed=7)
    assert (result.name, result.verdict, result.model, result.reason) == ("judge", "pass", "judge/m@1",
                                                                          "it gives the price")
    assert result.prompt_hash == judge_prompt_hash() and len(result.prompt_hash) == 64
    (request,) = client.requests
    assert request.response_format is not None and request.response_format.json_schema == JUDGE_SCHEMA
    assert request.messages[0].content == judge_system() and request.seed == 7 and request.temperature == 0.0
    prompt = request.messages[1].content
    assert "BK-001 cost" in prompt and "- 45.5" in prompt and "It costs 45.5." in prompt
    assert judge_attempt(ScriptedClient([verdict(False)]), lookup, _trajectory("No idea."), seed=0).verdict == "fail"


def test_answers_off_the_schema_are_errors_and_no_answer_is_a_fail_without_asking() -> None:
    lookup = shop_tasks()[2]
    broken = judge_attempt(ScriptedClient(["yes, it does"]), lookup, _trajectory("45.5"), seed=0)
    assert broken.verdict == "error" and broken.reason.startswith("not_json")
    wrong = judge_attempt(ScriptedClient([json.dumps({"states_fact": "yes", "reason": ""})]), lookup,
                          _trajectory("45.5"), seed=0)
    assert wrong.verdict == "error" and wrong.reason.startswith("schema")
    silent = ScriptedClient([])
    empty = judge_attempt(silent, lookup, _trajectory(""), seed=0)
    assert empty.verdict == "fail" and silent.requests == []


def test_a_judge_fail_does_not_unverify_and_only_read_only_tasks_are_judged(tmp_path: Path) -> None:
    judge = ScriptedClient([verdict(False, "the price is missing")], model_id="judge/m@1")
    items, funnel, stage = _stage(tmp_path, judge, refine=False)
    assert funnel.stages["verified"] == 3 and len(judge.requests) == 1  # one attempt on the one read-only task
    (judged,) = [a for item in items for a in item.attempts if a.judge is not None]
    assert judged.verified and judged.judge is not None and judged.judge.verdict == "fail"
    assert judged.judge.model == "judge/m@1" and judged.judge.prompt_hash == judge_prompt_hash()
    assert funnel.judge is not None and (funnel.judge.judged, funnel.judge.failed, funnel.judge.disagreed,
                                         funnel.judge.judge_only, funnel.judge.model) == (1, 1, 1, 0, "judge/m@1")
    lookup = next(i for i in items if any(a.judge for a in i.attempts))
    assert lookup.model_calls == sum(a.llm_calls for a in lookup.attempts) + 1 + 1  # query, attempts, judge
    manifest = StageManifest.model_validate_json((stage / "manifest.json").read_bytes())
    assert manifest.versions["judge"] == "judge/m@1" and manifest.versions["judge_prompt"] == judge_prompt_hash()


def test_a_judge_only_pass_is_never_verified(tmp_path: Path) -> None:
    judge = ScriptedClient([verdict(True)])
    items, funnel, _ = _stage(tmp_path, judge, solver=Vague, tasks=shop_tasks()[2:], refine=False)
    (item,) = items
    assert item.status == "unsolved" and item.selected is None
    assert [a.judge.verdict for a in item.attempts if a.judge] == ["pass"] and not item.attempts[0].verified
    assert funnel.stages["verified"] == 0 and funnel.judge is not None and funnel.judge.judge_only == 1


def test_the_judge_orders_verified_attempts_of_equal_reward(tmp_path: Path) -> None:
    lookup = shop_tasks()[2:]
    judge = ScriptedClient([verdict(False), verdict(True)])
    (item,), _, _ = _stage(tmp_path / "judged", judge, tasks=lookup, refine=False, k=2, temperature=0.7)
    assert [a.verified for a in item.attempts] == [True, True] and item.selected == 1
    (plain,), funnel, _ = _stage(tmp_path / "plain", None, tasks=lookup, refine=False, k=2, temperature=0.7)
    assert plain.selected == 0 and funnel.judge is None
    assert all(a.judge is None for a in plain.attempts)
    assert b'"judge"' not in (tmp_path / "plain" / STAGE / "funnel.json").read_bytes()
