"""Viewer speed on a big workspace: page render times over HTTP for a workspace with 10,000 trajectories.

Run: `python benchmarks/viewer.py [--trajectories N] [--repeat R] [--json OUT]`. It builds a workspace
with the tests' generator (`tests/viewer/viewer_helpers.py`: every artifact kind, N trajectories in
one JSONL file), serves it with `ViewerServer` on loopback and times each page: the first request
(cold: the JSONL index is built) and the median of R warm requests. The baseline, measured in the same
run, is what a viewer without an index would pay per page: validating every trajectory of the file
with the `Trajectory` model. Each page time is printed with its ratio to that baseline; the target is
under one second per page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viewer"))

from viewer_helpers import make_workspace

from envfactory.spec import Trajectory
from envfactory.viewer.server import ViewerConfig, ViewerServer

TRAJECTORIES = "runs/synth-1/synth/trajectories.jsonl"


def _pages(count: int) -> list[str]:
    last = count - 1
    return [
        "/trajectories", f"/trajectories?page={max(1, count // 100)}", "/trajectories?q=traj-0" + f"{last:04d}"[-4:],
        "/trajectories?q=no-such-text", f"/trajectory?file={TRAJECTORIES}&n={last}", "/", "/envs",
        "/env/library/vault", "/funnels", "/runs", "/run/synth-1", "/graph", "/graph/data.json", "/chains",
        "/tasks", "/evals", "/eval/eval-demo",
    ]


def _get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as reply:
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{url}: HTTP {reply.status}")
    return time.perf_counter() - started


def bench_viewer(trajectories: int = 10_000, repeat: int = 5) -> dict[str, Any]:
    """Figures (seconds) for every page: cold, warm median, and the baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        workspace = make_workspace(Path(tmp) / "ws", trajectories=trajectories)
        built = time.perf_counter() - started
        path = workspace.root / TRAJECTORIES
        started = time.perf_counter()
        lines = path.read_bytes().splitlines()
        for line in lines:
            Trajectory.model_validate_json(line)
        baseline = time.perf_counter() - started
        # no prewarm: the first request of each page pays for building its index (the cold figure)
        server = ViewerServer(ViewerConfig(workspace.root, port=0, prewarm=False))
        server.start_background()
        try:
            pages = {}
            for page in _pages(trajectories):
                cold = _get(server.url + page)
                warm = statistics.median(_get(server.url + page) for _ in range(repeat))
                pages[page] = {"cold_s": round(cold, 4), "warm_s": round(warm, 4)}
        finally:
            server.shutdown()
            server.server_close()
        return {"trajectories": len(lines), "file_mb": round(path.stat().st_size / 1e6, 1),
                "workspace_build_s": round(built, 2), "baseline_validate_all_s": round(baseline, 4), "pages": pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = bench_viewer(args.trajectories, args.repeat)
    base = figures["baseline_validate_all_s"]
    print(f"{figures['trajectories']} trajectories ({figures['file_mb']} MB); workspace built in "
          f"{figures['workspace_build_s']} s; baseline (validate every trajectory): {base:.3f} s")
    print(f"{'page':55} {'cold s':>8} {'warm s':>8} {'warm/baseline':>14}")
    slowest = 0.0
    for page, row in figures["pages"].items():
        slowest = max(slowest, row["cold_s"], row["warm_s"])
        print(f"{page[:55]:55} {row['cold_s']:8.3f} {row['warm_s']:8.3f} {row['warm_s'] / base:14.3f}")
    print(f"slowest page: {slowest:.3f} s ({'under' if slowest < 1 else 'OVER'} the 1 s target)")
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
