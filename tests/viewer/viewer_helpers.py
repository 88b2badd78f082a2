"""Builds workspaces for the viewer's tests and benchmark (imported as `viewer_helpers`).

Every artifact is written with the writer the project uses for it (spec models, `store` writers, the
graph builder and sampler, the evaluation report builder), so the viewer is tested against what the
pipeline really produces. `PLANTED` is hostile text planted in a spec and a trajectory.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from envfactory.spec import (
    CallStateDiff,
    EnvRef,
    EnvSpec,
    GateRecord,
    GoldCall,
    Message,
    Producer,
    Reward,
    RewardComponent,
    RunManifest,
    ScriptedUser,
    SimulatedUser,
    StateChange,
    Task,
    TaskGates,
    TaskOrigin,
    TaskQueries,
    TerminationReason,
    ToolCall,
    ToolResult,
    Trajectory,
    Turn,
    canonical_json,
)
from envfactory.spec.synth_trajectories import OverspecScore, QueryRecord, SolverAttempt, TrajectoryItem
from envfactory.spec.tool import ErrorInfo
from envfactory.store import RunDir, StageDir, Workspace, jsonl_bytes, write_atomic
from envfactory.viewer.workspace import library_root

PLANTED = '<script>window.__planted = 1</script><img src=x onerror="window.__planted=2"><b>bold?</b>'


def trajectory(number: int, env: str = "shop", text: str = "") -> Trajectory:
    """A finished episode: a user request, a read, a write, an error and an answer, with its reward."""
    calls = [ToolCall(id=f"c{number}-0", tool="list_products", arguments={"category": "books"}),
             ToolCall(id=f"c{number}-1", tool="create_order", arguments={"product_id": f"p{number % 7}", "qty": 2}),
             ToolCall(id=f"c{number}-2", tool="cancel_order", arguments={"order_id": "missing"})]
    results = [
        ToolResult(call_id=calls[0].id, tool=calls[0].tool, output={"items": [{"id": f"p{number % 7}", "name": "A book"}]}, step=0),
        ToolResult(call_id=calls[1].id, tool=calls[1].tool, output={"id": f"order_{number}", "status": "placed"}, step=1),
        ToolResult(call_id=calls[2].id, tool=calls[2].tool, step=2,
                   error=ErrorInfo(kind="not_found", message="no order 'missing'", path="/order_id")),
    ]
    messages = [Message(role="system", content="You are a shop assistant."),
                Message(role="user", content=text or f"Order two copies of book p{number % 7}, request {number}.")]
    for call, result in zip(calls, results, strict=True):
        messages += [Message(role="assistant", tool_calls=[call]), Message(role="tool", result=result)]
    messages.append(Message(role="assistant", content=f"Your order order_{number} is placed."))
    reward = Reward.combine([RewardComponent(name="state", score=1.0 if number % 3 else 0.0),
                             RewardComponent(name="communicate", score=1.0),
                             RewardComponent(name="no_op_gate", score=1.0, role="factor")])
    hashes = [f"{'a' * 63}{number % 10}", f"{'b' * 63}{number % 10}", f"{'b' * 63}{number % 10}"]
    order = {"id": f"order_{number}", "product_id": f"p{number % 7}", "qty": 2, "note": text or "gift"}
    written = CallStateDiff(call_id=calls[1].id, env=env, changes=[
        StateChange(op="replace", path="/collections/orders/order_0/status", old="placed", new=text or "shipped"),
        StateChange(op="add", path=f"/collections/orders/order_{number}", new=order),
        StateChange(op="replace", path=f"/collections/products/p{number % 7}/stock", old=5, new=3),
        StateChange(op="replace", path="/counters/orders", old=number, new=number + 1)])
    return Trajectory(id=f"traj-{number:05d}", task_id=f"task-{number % 50:04d}", envs=[EnvRef(name=env, version="1.0.0")],
                      seed=number, messages=messages, state_hashes=hashes, final_state_hashes={env: hashes[-1]},
                      state_diffs=[written],
                      termination=TerminationReason.AGENT_STOP, producer=Producer(model="scripted", provider="test"),
                      reward=reward)


def task(number: int) -> Task:
    """A Task v2 of two gold calls: a search (its `limit` ignored) whose recorded result gives the
    product id the order then uses. Odd-numbered tasks' refined queries are over-specified: they state
    that id, which the agent could have looked up."""
    product = f"book-{number:04d}"
    search = GoldCall(tool="shop__list_products", arguments={"query": "Dune Messiah", "limit": 100},
                      ignored_arguments=["limit"], result={"items": [{"id": product, "name": "Dune Messiah"}]})
    order = GoldCall(tool="shop__create_order", arguments={"product_id": product, "qty": 2},
                     essential_arguments=["product_id", "qty"], result={"id": f"order_{number}", "status": "placed"})
    refined = "I need 2 copies of Dune Messiah" + (f" (product {product})." if number % 2 else ".")
    return Task.create(
        envs=[EnvRef(name="shop", version="1.0.0")], initial_state={"shop": {"collections": {}}},
        persona="a busy student",
        turns=[Turn(user=ScriptedUser(text=refined), gold_calls=[search, order]),
               Turn(user=SimulatedUser(instructions="Ask for the order status.", known_info=f"order of {product}"),
                    expected_outputs=["placed"])],
        expected_final_state={"shop": {"collections": {"orders": {}}}},
        origin=TaskOrigin(source="synth", domain="commerce"),
        queries=TaskQueries(explicit=f"Search products for Dune Messiah (limit 100), then order 2 of {product.upper()}.",
                            refined=refined, refinement_strength=2, refinement_operators=["drop_ids", "paraphrase"],
                            source="template"),
        split_key=f"chain-{number % 5}",
    )


def gates(task_id: str, planted: bool = False) -> TaskGates:
    """The gate records of a kept task (`gates.jsonl`); `planted` puts hostile text in a detail."""
    return TaskGates(task_id=task_id, gates=[
        GateRecord(gate="gold_replay", passed=True, detail="2 gold call(s) replayed" + (PLANTED if planted else "")),
        GateRecord(gate="no_op", passed=True, detail="a no-op agent scores 0.0000"),
        GateRecord(gate="contamination", passed=True, detail="no BFCL or τ² task overlaps its texts")])


def synthesis_item(number: int) -> TrajectoryItem:
    """What trajectory synthesis made of `task(number)`: its queries scored for over-specification and
    two solver attempts, the second verified and selected."""
    made = task(number)
    assert made.queries.refined and made.queries.explicit
    leaked = OverspecScore(tool_names=["create_order"], values=[f"book-{number:04d}"], candidates=5, score=0.4)
    query = QueryRecord(persona=made.persona, explicit=made.queries.explicit, refined=made.queries.refined,
                        operators=["omit_inferable"], explicit_overspec=leaked,
                        refined_overspec=OverspecScore(values=[f"book-{number:04d}"], candidates=5, score=0.2))
    failed, solved = trajectory(number * 2 + 1), trajectory(number * 2 + 3)
    assert failed.reward is not None and solved.reward is not None
    attempts = [SolverAttempt(attempt=0, seed=0, query="refined", reward=failed.reward, verified=False,
                              termination="agent_stop", tool_calls=3, llm_calls=4, failure="wrong order", trajectory=failed),
                SolverAttempt(attempt=1, seed=1, query="refined", reward=solved.reward, verified=True,
                              termination="agent_stop", tool_calls=3, llm_calls=4, trajectory=solved)]
    return TrajectoryItem(task_id=made.id, status="verified", task=made, query=query, attempts=attempts, selected=1,
                          model_calls=9, prompt_tokens=1200, completion_tokens=300)


def _hostile_env(workspace: Workspace) -> None:
    """A workspace environment whose description and tool text hold HTML and script tags."""
    source = library_root() / "books"
    target = workspace.envs_dir / "hostile_books"
    shutil.copytree(source, target)
    spec = EnvSpec.model_validate_json((source / "spec.json").read_bytes())
    tools = [t.model_copy(update={"description": PLANTED + t.description}) for t in spec.tools]
    meta = spec.meta.model_copy(update={"name": "hostile_books", "description": PLANTED})
    sealed = spec.model_copy(update={"meta": meta, "tools": tools, "content_hash": ""}).seal()
    write_atomic(target / "spec.json", sealed.to_json_bytes())


def _graph(workspace: Workspace) -> None:
    from envfactory.graph import GraphIndex, TopologySampler, build_graph, from_env_spec
    from envfactory.graph.io import save_chains, save_graph
    from envfactory.runtime import bundled_env_names, load_env

    graph = build_graph([from_env_spec(load_env(n).spec) for n in bundled_env_names()]).graph
    save_graph(graph, graph_dir(workspace) / "graph.json")
    sampler = TopologySampler(GraphIndex.from_graph(graph), seed=0)
    save_chains([sampler.sample() for _ in range(12)], graph_dir(workspace) / "chains.jsonl")


def graph_dir(workspace: Workspace) -> Path:
    """Where `envfactory graph build` keeps the workspace's graph: `runs/graph-build/graph/`."""
    from envfactory.graph.stage import built_graph_dir

    return built_graph_dir(workspace)


def _eval_run(workspace: Workspace) -> None:
    from envfactory.agent.loop import StepFailure
    from envfactory.eval.report import AttemptRecord, build_report, write_report

    run = RunDir.create(workspace, "eval-demo")
    records = []
    for number in range(6):
        traj = trajectory(number)
        assert traj.reward is not None
        records.append(AttemptRecord(
            suite="tau2_retail" if number % 2 else "bfcl_base", task_id=f"task-{number:04d}", domain="commerce",
            envs=["shop"], attempt=0, seed=0, passed=traj.reward.total == 1.0, reward=traj.reward,
            verdict="" if traj.reward.total == 1.0 else "the order state differs", termination=traj.termination,
            failures=[] if number % 3 else [StepFailure(turn=0, step=2, kind="repeated_call", reason="same call twice")],
            llm_calls=4, tool_calls=3, trajectory=traj))
    run.write_bytes("attempts.jsonl", jsonl_bytes(r.model_dump(mode="json") for r in records))
    write_report(run.path, build_report("eval-demo", "scripted", 1, 0, records))
    run.write_manifest(RunManifest(run_id="eval-demo", command="envfactory eval run", created_at="2026-01-01T00:00:00Z",
                                   envfactory_version="0.1.0"))


def make_workspace(root: Path, trajectories: int = 30, with_graph: bool = True) -> Workspace:
    """A workspace holding one of every artifact the viewer shows, plus a few broken ones."""
    workspace = Workspace(root).ensure()
    _hostile_env(workspace)
    build = root / "runs" / "library-demo" / "library" / "build"  # what `library build` of config demo writes
    shutil.copytree(library_root() / "vault", build / "envs" / "vault")
    shutil.copytree(library_root() / "books", build / "rejected" / "books")
    shutil.copy(library_root() / "funnel.json", build / "funnel.json")
    run_build = root / "runs" / "synth-1" / "library" / "build"
    shutil.copytree(library_root() / "braket_jobs", run_build / "envs" / "braket_jobs")
    shutil.copy(library_root() / "funnel.json", run_build / "funnel.json")
    run = RunDir.create(workspace, "synth-1")
    run.write_manifest(RunManifest(run_id="synth-1", command="envfactory run synth", created_at="2026-01-01T00:00:00Z",
                                   envfactory_version="0.1.0", seeds={"synth": 0}))
    stage = StageDir.open(workspace, "synth-1", "synth")
    stage.write_jsonl("tasks.jsonl", (task(n).model_dump(mode="json") for n in range(20)))
    lines = [trajectory(n).model_dump(mode="json") for n in range(trajectories)]
    lines[1] = trajectory(1, text=PLANTED + " please").model_dump(mode="json")
    stage.write_jsonl("trajectories.jsonl", lines)
    stage.write_jsonl("gates.jsonl", (gates(task(n).id, planted=n == 5).model_dump(mode="json") for n in range(20) if n != 7))
    # the task-synthesis stage's funnel (the shape of spec.synth.SynthFunnel)
    stage.write_json("funnel.json", {"schema_version": 1, "sampler": "topology", "seed": 0, "candidates": 40,
                                     "stages": {"chains": 40, "valid": 36, "grounded": 30, "executed": 28,
                                                "gated": 20, "kept": 20},
                                     "drops": {"gated": {"no write": 8}, "valid": {"no source for input": 4}},
                                     "kept": {"tasks": 20, "domains": {"commerce": 14, "office": 6},
                                              "per_env": {"shop": 14, "calendar": 6}},
                                     "per_strength": {"0": {"queries": 5, "mean_overspec": 0.6, "attempts": 10, "solved": 9},
                                                      "2": {"queries": 5, "mean_overspec": 0.1, "attempts": 10, "solved": 4}}})
    stage.write_jsonl("drops.jsonl", [
        {"schema_version": 1, "candidate": 4, "stage": "gated", "reason": "gate no_op", "envs": ["shop"],
         "detail": "the no-op trajectory scores 1.0", "tools": ["shop__list_products"]},
        {"schema_version": 1, "candidate": 9, "stage": "valid", "reason": "no source for input", "envs": ["shop"],
         "detail": "shop__create_order.product_id", "tools": ["shop__create_order"]}])
    item = synthesis_item(3)
    stage.write_bytes(f"items/{item.task_id}.json", item.to_json_bytes())
    stage.finish(outputs=["drops.jsonl", "funnel.json", "tasks.jsonl", "trajectories.jsonl", f"items/{item.task_id}.json"], counts={"chains": 40, "tasks": 20, "kept": trajectories},
                 drops={"gate: no write": 12, "duplicate": 8}, timings={"total": 3.5})
    _broken(workspace)
    _eval_run(workspace)
    if with_graph:
        _graph(workspace)
    return workspace


def _broken(workspace: Workspace) -> None:
    """A run whose manifest is not JSON, and one with a trajectory file holding a corrupt line and an
    invalid record."""
    broken = workspace.runs_dir / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    bad = RunDir.create(workspace, "partial")
    valid = canonical_json(trajectory(99).model_dump(mode="json"))
    invalid = canonical_json({**trajectory(98).model_dump(mode="json"), "termination": "exploded"})
    older = canonical_json({**trajectory(97).model_dump(mode="json"), "schema_version": 0})
    bad.write_bytes("trajectories.jsonl", valid + b"\n{truncated\n" + invalid + b"\n" + older + b"\n")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Response:
    """One request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return Response(reply.status, dict(reply.headers), reply.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers), exc.read().decode("utf-8"))
