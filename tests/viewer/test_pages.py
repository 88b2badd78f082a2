"""The viewer over HTTP: every page answers, content is escaped, nothing writes, paths stay inside
the workspace, and bad input gives a clear page (never a traceback)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from viewer_helpers import PLANTED, fetch, graph_dir

from envfactory.errors import SpecError
from envfactory.store import Workspace
from envfactory.viewer.server import ViewerConfig, ViewerServer

TRAJECTORIES = "runs/synth-1/synth/trajectories.jsonl"
TASKS = "runs/synth-1/synth/tasks.jsonl"

PAGES = {
    "/": "Overview",
    "/envs": "anchore_io_images_packages",
    "/envs?source=workspace": "hostile_books",
    "/env/library/vault": "Retention and eDiscovery",
    "/env/workspace/hostile_books": "mylibrary.annotations",
    "/env/build-run-library-demo/vault": "verified",
    "/env/rejected-run-library-demo/books": "books",
    "/env/build-run-synth-1/braket_jobs": "run synth-1 library build: accepted",
    "/funnels": "synth: funnel",
    "/runs": "synth-1",
    "/run/synth-1": "synth: dropped at gated",
    "/graph": "<option value=\"shop\"",
    "/graph?tool=shop__create_order": "Neighbourhood of",
    "/chains": "chain 0",
    "/tasks": "synth",
    "/drops?q=gated": "gate no_op",
    f"/task?file={TASKS}&n=3": "Explicit query",
    "/trajectories": "traj-00000",
    f"/trajectory?file={TRAJECTORIES}&n=4": "order_4",
    "/evals": "eval-demo",
    "/eval/eval-demo": "pass@1 by suite",
    "/eval/eval-demo/attempt/0": "repeated_call",
}


@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_page_renders(base_url: str, path: str) -> None:
    reply = fetch(base_url + path)
    assert reply.status == 200, reply.body[:2000]
    assert PAGES[path] in reply.body
    assert "Traceback" not in reply.body
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]


def test_planted_html_is_shown_as_text(base_url: str) -> None:
    escaped = "&lt;script&gt;window.__planted = 1&lt;/script&gt;"
    for path in ("/env/workspace/hostile_books", f"/trajectory?file={TRAJECTORIES}&n=1",
                 "/trajectories?q=" + quote(PLANTED), "/envs?q=" + quote(PLANTED)):  # the query is echoed
        body = fetch(base_url + path).body
        assert escaped in body, path
        assert "<script>window.__planted" not in body and "<img src=x" not in body, path
        assert "&lt;b&gt;bold?&lt;/b&gt;" in body, path
    # every script the pages load is the viewer's own file
    scripts = set(re.findall(r"<script[^>]*>", fetch(base_url + "/graph").body))
    assert scripts == {'<script src="/static/cytoscape.min.js">', '<script src="/static/graph.js">'}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/envs", "/env/library/vault", "/graph/data.json", "/static/graph.js"])
def test_write_methods_are_refused(base_url: str, workspace: Workspace, method: str, path: str) -> None:
    before = sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*"))
    reply = fetch(base_url + path, method=method)
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"
    assert "read-only" in reply.body
    assert sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*")) == before


@pytest.mark.parametrize("path", [
    "/env/library/..%2F..%2Fcli",
    "/env/library/%2e%2e",
    "/env/workspace/../../etc",
    "/static/..%2Fserver.py",
    "/static/%2e%2e%2fworkspace.py",
    "/trajectory?file=../../../etc/passwd&n=0",
    "/trajectory?file=%2Fetc%2Fpasswd&n=0",
    "/task?file=runs/synth-1/synth/../../../../etc/passwd&n=0",
    "/run/..",
    "/run/%2E%2E%2Fbuilds",
    "/eval/..%2Fsynth-1",
    "/graph?file=../../etc/passwd",
    "/env/escape/outside",
])
def test_paths_outside_the_workspace_are_not_found(base_url: str, path: str) -> None:
    reply = fetch(base_url + path)
    assert reply.status == 404, (path, reply.body[:500])
    assert "root:" not in reply.body and "Traceback" not in reply.body


def test_a_symlink_out_of_the_workspace_is_not_followed(workspace: Workspace, base_url: str, tmp_path: Path) -> None:
    outside = tmp_path / "secret_env"
    outside.mkdir()
    (outside / "spec.json").write_text('{"secret": "do not show"}', encoding="utf-8")
    link = workspace.envs_dir / "secret_env"
    link.symlink_to(outside, target_is_directory=True)
    try:
        reply = fetch(base_url + "/env/workspace/secret_env")
        assert reply.status == 404
        assert "do not show" not in reply.body
    finally:
        link.unlink()


def test_unknown_ids_get_a_404_page(base_url: str) -> None:
    for path in ("/env/library/no_such_env", "/run/no-such-run", "/eval/synth-1", "/eval/eval-demo/attempt/999",
                 f"/trajectory?file={TRAJECTORIES}&n=100000", "/trajectory?file=nope.jsonl&n=0",
                 "/graph?tool=nobody__nothing", "/no/such/page", "/envs/extra"):
        reply = fetch(base_url + path)
        assert reply.status == 404, path
        assert 'id="error-message"' in reply.body and "Traceback" not in reply.body


def test_corrupt_artifacts_get_a_clear_page(base_url: str) -> None:
    bad_json = fetch(base_url + "/trajectory?file=runs/partial/trajectories.jsonl&n=1")
    assert bad_json.status == 422
    assert "runs/partial/trajectories.jsonl record 1: not a valid Trajectory" in bad_json.body
    bad_model = fetch(base_url + "/trajectory?file=runs/partial/trajectories.jsonl&n=2")
    assert bad_model.status == 422 and "termination" in bad_model.body
    older = fetch(base_url + "/trajectory?file=runs/partial/trajectories.jsonl&n=3")
    assert older.status == 422 and "not a valid Trajectory (schema version 0)" in older.body
    listing = fetch(base_url + "/trajectories?file=runs/partial/trajectories.jsonl")
    assert listing.status == 200 and "record 1: not a readable record" in listing.body
    run = fetch(base_url + "/run/broken")
    assert run.status == 200 and "runs/broken/manifest.json: not a valid run manifest" in run.body
    # the rest of the UI keeps working
    assert fetch(base_url + "/runs").status == 200


def test_missing_and_newer_artifacts(workspace: Workspace, base_url: str) -> None:
    run = workspace.runs_dir / "eval-future"
    run.mkdir()
    (run / "report.json").write_bytes(orjson.dumps({"schema_version": 7, "run_id": "eval-future"}))
    env = workspace.envs_dir / "half_env"
    env.mkdir()
    (env / "spec.json").write_text("{}", encoding="utf-8")
    try:
        report = fetch(base_url + "/eval/eval-future")
        assert report.status == 200
        assert "schema version 7 is not one this viewer reads" in report.body
        assert "no attempts.jsonl" in report.body
        assert "schema version 7" in fetch(base_url + "/evals").body
        spec = fetch(base_url + "/env/workspace/half_env")
        assert spec.status == 200 and "envs/half_env/spec.json: not a valid environment spec" in spec.body
    finally:
        (run / "report.json").unlink()
        run.rmdir()
        (env / "spec.json").unlink()
        env.rmdir()


def test_search_and_paging(base_url: str) -> None:
    first = fetch(base_url + "/trajectories?file=" + quote(TRAJECTORIES))
    assert "30 results · showing 1–30" in first.body
    found = fetch(base_url + "/trajectories?q=TRAJ-00017")
    assert "1 result ·" in found.body and "traj-00017" in found.body and "traj-00016" not in found.body
    envs = fetch(base_url + "/envs?page=2")
    assert "page 2 of 3" in envs.body and "showing 51–100" in envs.body
    assert "page 3 of 3" in fetch(base_url + "/envs?page=99").body
    assert "no environment matches" in fetch(base_url + "/envs?q=zzzz-none").body


def test_graph_data_filters(base_url: str) -> None:
    every = orjson.loads(fetch(base_url + "/graph/data.json").body)
    assert every["nodes"] and every["edges"]
    focus = orjson.loads(fetch(base_url + "/graph/data.json?tool=shop__create_order").body)
    ids = {n["data"]["id"] for n in focus["nodes"]}
    assert "shop__create_order" in ids and len(ids) < len(every["nodes"])
    assert all("shop__create_order" in (e["data"]["source"], e["data"]["target"]) for e in focus["edges"])
    none = orjson.loads(fetch(base_url + "/graph/data.json?provenance=llm").body)
    assert none["edges"] == []
    shop = orjson.loads(fetch(base_url + "/graph/data.json?server=shop").body)
    assert {n["data"]["server"] for n in shop["nodes"]} >= {"shop"}
    assert all("shop" in (e["data"]["source"].split("__")[0], e["data"]["target"].split("__")[0]) for e in shop["edges"])
    limited = orjson.loads(fetch(base_url + "/graph/data.json?limit=3").body)
    assert len(limited["nodes"]) == 3 and limited["hidden_nodes"] == len(every["nodes"]) - 3


def _between(body: str, start: str, end: str = "</blockquote>") -> str:
    return body.split(start, 1)[1].split(end, 1)[0]


def test_task_page_marks_given_and_over_specified_values(base_url: str) -> None:
    plain = fetch(base_url + f"/task?file={TASKS}&n=2").body
    assert _between(plain, 'id="explicit-query">') == (
        'Search products for <mark class="given">Dune Messiah</mark> (limit <mark class="over">100</mark>), '
        'then order 2 of <mark class="over">BOOK-0002</mark>.')
    assert _between(plain, 'id="refined-query">') == 'I need 2 copies of <mark class="given">Dune Messiah</mark>.'
    assert 'id="over-specified"' not in plain
    over = fetch(base_url + f"/task?file={TASKS}&n=3").body
    assert '(product <mark class="over">book-0003</mark>)' in _between(over, 'id="refined-query">')
    assert "over-specified: the refined query states book-0003" in over
    assert "a busy student" in over and "essential: product_id, qty" in over and "drop_ids, paraphrase" in over
    assert "not compared: limit" in over and "recorded result" in over


def test_loopback_only_without_a_token(workspace: Workspace) -> None:
    with pytest.raises(SpecError, match="without a token"):
        ViewerConfig(workspace.root, host="0.0.0.0").check()
    ViewerConfig(workspace.root, host="::1").check()
    ViewerConfig(workspace.root, host="0.0.0.0", token="s3cret").check()


def test_token_is_required_when_given(workspace: Workspace) -> None:
    server = ViewerServer(ViewerConfig(workspace.root, port=0, token="s3cret"))
    server.start_background()
    try:
        assert fetch(server.url + "/envs").status == 401
        assert fetch(server.url + "/envs?token=wrong").status == 401
        assert fetch(server.url + "/envs", headers={"Authorization": "Bearer s3cret"}).status == 200
        first = fetch(server.url + "/envs?token=s3cret")
        assert first.status == 200 and "envfactory_view_token=s3cret" in first.headers["Set-Cookie"]
        assert fetch(server.url + "/envs", headers={"Cookie": "envfactory_view_token=s3cret"}).status == 200
        assert fetch(server.url + "/envs", method="POST", headers={"Authorization": "Bearer s3cret"}).status == 405
    finally:
        server.shutdown()
        server.server_close()


def test_funnels_plot_library_builds_and_stages(base_url: str) -> None:
    funnels = fetch(base_url + "/funnels").body
    for title in ("shipped library: funnel", "shipped library: accepted per domain", "run library-demo library build: funnel",
                  "shipped library: checks passed in the final round", "synth: funnel", "synth: dropped at gated",
                  "run synth-1: stage counts", "run synth-1 library build: funnel", "synth: kept per domain", "synth: kept per environment"):
        assert f'aria-label="{title}"' in funnels, title
    library = funnels.split('aria-label="shipped library: accepted per domain"')[1].split("</svg>")[0]
    assert library.count("<rect") == 7 and "commerce: 20" in library
    strength = funnels.split('aria-label="synth: solve rate by refinement strength"')[1].split("</svg>")[0]
    assert "strength 0: 90.0%" in strength and "strength 2: 40.0%" in strength
    run = fetch(base_url + "/run/synth-1").body
    assert "gate: no write: 12" in run and "no source for input: 4" in run


def test_prewarm_indexes_every_jsonl_artifact(workspace: Workspace) -> None:
    from envfactory.viewer.server import Viewer
    from envfactory.viewer.workspace import WorkspaceData

    viewer = Viewer(WorkspaceData(workspace.root))
    assert len(viewer.data.indexes) == 0
    viewer.prewarm()
    # trajectories (2 files), tasks, chains, dropped candidates, and the evaluation's attempts
    assert len(viewer.data.indexes) == 6


def test_task_page_shows_its_trajectory_synthesis(base_url: str) -> None:
    body = fetch(base_url + f"/task?file={TASKS}&n=3").body
    section = body.split('id="synthesis"')[1].split('id="checks"')[0]
    assert "verified" in section and "omit_inferable" in section and "0.40 (5 candidates)" in section
    assert "1 (selected)" in section and "wrong order" in section
    assert section.count('class="attempt-trajectory"') == 2 and "traj-00009" in section
    # the score's leaked tool name is marked as over-specification in the explicit query
    assert "create_order" in section
    other = fetch(base_url + f"/task?file={TASKS}&n=2").body
    assert "no trajectory-synthesis item for this task" in other


def test_dropped_candidates_are_searchable(base_url: str) -> None:
    gated = fetch(base_url + "/drops?q=gate").body
    assert "1 result ·" in gated and "the no-op trajectory scores 1.0" in gated
    assert "2 results ·" in fetch(base_url + "/drops").body


def test_an_unfinished_evaluation_run(workspace: Workspace, base_url: str) -> None:
    from envfactory.spec import RunManifest
    from envfactory.store import RunDir

    run = RunDir.create(workspace, "eval-running")
    run.write_manifest(RunManifest(run_id="eval-running", command="envfactory eval run",
                                   created_at="2026-01-01T00:00:00Z", envfactory_version="0.1.0"))
    try:
        page = fetch(base_url + "/eval/eval-running")
        assert page.status == 200
        assert "runs/eval-running: no report.json yet" in page.body and "no attempts.jsonl" in page.body
        assert "eval-running" in fetch(base_url + "/evals").body
    finally:
        for path in sorted(run.path.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        run.path.rmdir()


def test_head_and_foreign_host_names(base_url: str) -> None:
    head = fetch(base_url + "/envs", method="HEAD")
    assert head.status == 200 and head.body == "" and int(head.headers["Content-Length"]) > 1000
    port = base_url.rsplit(":", 1)[1]
    rebound = fetch(base_url + "/envs", headers={"Host": f"attacker.example:{port}"})
    assert rebound.status == 403 and "loopback name" in rebound.body
    assert fetch(base_url + "/envs", headers={"Host": f"localhost:{port}"}).status == 200
    assert fetch(base_url + "/envs", headers={"Host": f"[::1]:{port}"}).status == 200


def test_graph_neighbourhood_lists_chains_through_the_tool(workspace: Workspace, base_url: str) -> None:
    lines = (graph_dir(workspace) / "chains.jsonl").read_bytes().splitlines()
    tool = orjson.loads(lines[0])["steps"][-1]["tool"]
    through = [n for n, line in enumerate(lines) if tool in [s["tool"] for s in orjson.loads(line)["steps"]]]
    body = fetch(base_url + "/graph?tool=" + quote(tool)).body
    assert f"Sampled chains through this tool ({len(through)})" in body
    section = body.split("Sampled chains through this tool")[1]
    assert f"chain {orjson.loads(lines[through[0]])['number']} " in section and "←" in section


def test_trajectory_page_shows_the_state_diff_after_each_write(base_url: str) -> None:
    body = fetch(base_url + f"/trajectory?file={TRAJECTORIES}&n=4").body
    diffs = re.findall(r'<div class="state-diff" data-call="([^"]+)">(.*?)</table>', body, re.S)
    assert [call for call, _ in diffs] == ["c4-1"]  # the write only: the read and the failed call changed nothing
    table = diffs[0][1]
    assert "state diff in <strong>shop</strong>: 1 added, 2 changed, 1 other" in table
    rows = [html.unescape(re.sub(r"<[^>]+>", " ", row)).split()
            for row in re.findall(r'<tr class="diff-[a-z]+">(.*?)</tr>', table, re.S)]
    assert ["orders/", "order_4", "added", "id", '"order_4"'] in rows  # the record added, field by field
    assert ["note", '"gift"'] in rows and ["qty", "2"] in rows
    assert ["orders/", "order_0", "changed", "status", '"placed"', '"shipped"'] in rows  # a field before and after
    assert ["products/", "p4", "changed", "stock", "5", "3"] in rows
    assert ["/counters/orders", "replace", "4", "5"] in rows  # a change outside the collections, as it is


def test_planted_html_in_a_state_diff_and_a_gate_detail_is_text(base_url: str) -> None:
    escaped = "&lt;script&gt;window.__planted = 1&lt;/script&gt;"
    trajectory = fetch(base_url + f"/trajectory?file={TRAJECTORIES}&n=1").body
    diff = trajectory.split('class="state-diff"', 1)[1].split("</table>", 1)[0]
    assert diff.count("&lt;script&gt;window.__planted") == 2 and "<script" not in diff and "<img" not in diff
    gates = fetch(base_url + f"/task?file={TASKS}&n=5").body.split('id="gates"', 1)[1].split("</section>", 1)[0]
    assert escaped in gates and "<script" not in gates and "<img src=x" not in gates


def test_task_page_shows_the_gates_it_passed(base_url: str, workspace: Workspace) -> None:
    body = fetch(base_url + f"/task?file={TASKS}&n=8").body
    section = body.split('id="gates"', 1)[1].split("</section>", 1)[0]
    rows = [re.sub(r"<[^>]+>", " ", row).split() for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)][1:]
    assert [row[:2] for row in rows] == [["gold_replay", "passed"], ["no_op", "passed"], ["contamination", "passed"]]
    assert "a no-op agent scores 0.0000" in section
    # task 7 has no record (the line is looked up by task id, not by position), and is said so
    seventh = fetch(base_url + f"/task?file={TASKS}&n=7").body.split('id="gates"', 1)[1].split("</section>", 1)[0]
    assert "no gate records for this task" in seventh and "gold_replay" not in seventh
    # a corrupt gate record is a problem on the page, and the rest of the page still renders
    gates = workspace.root / "runs" / "synth-1" / "synth" / "gates.jsonl"
    lines = gates.read_bytes().splitlines()
    broken = lines[8].replace(b'"passed":true', b'"passed":"maybe"', 1)
    gates.write_bytes(b"\n".join([*lines[:8], broken, *lines[9:]]) + b"\n")
    try:
        page = fetch(base_url + f"/task?file={TASKS}&n=9")  # record 8 of gates.jsonl is task 9's (7 has none)
        assert page.status == 200 and "Explicit query" in page.body
        assert "gates.jsonl record 8: not a valid TaskGates: gates.0.passed" in page.body
    finally:
        gates.write_bytes(b"\n".join(lines) + b"\n")
