"""Same environment, seed and calls ⇒ byte-identical snapshots and hashes, across processes with
different `PYTHONHASHSEED` (set and dict iteration order must never leak into artifacts)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import orjson

SCRIPT = textwrap.dedent(
    """
    import random, sys
    import orjson
    from envfactory.runtime import bundled_env_names, load_env, open_group, open_session
    from envfactory.verify.argsgen import generate_arguments, harvest_values
    from envfactory.spec import canonical_json

    report = {}
    for name in bundled_env_names():
        env = load_env(name)
        session = open_session(env, seed=11)
        rng = random.Random(42)
        pool = {}
        harvest_values(session.state_json(), pool)
        outputs = []
        tools = sorted(env.tools)
        for _ in range(150):
            tool = rng.choice(tools)
            result = session.call(tool, generate_arguments(env.tools[tool].spec.input_schema, rng, pool))
            outputs.append(result.model_dump(mode="json"))
            if result.ok:
                harvest_values(result.output, pool)
        snapshot = session.snapshot()
        report[name] = {
            "spec_hash": env.spec.content_hash,
            "hash": session.hash(),
            "snapshot": snapshot.model_dump(mode="json"),
            "outputs": outputs,
            "ok": sum(1 for o in outputs if o["error"] is None),
        }
    group = open_group([load_env(n) for n in bundled_env_names()], seed=3)
    report["group_hash"] = group.hash()
    sys.stdout.buffer.write(canonical_json(report))
    """
)


def run_with_hash_seed(seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_snapshots_and_hashes_do_not_depend_on_pythonhashseed() -> None:
    first = run_with_hash_seed("0")
    second = run_with_hash_seed("2024")
    assert first == second
    report = orjson.loads(first)
    envs = [k for k in report if k != "group_hash"]
    assert len(envs) >= 3
    for name in envs:
        assert report[name]["ok"] > 10, f"{name}: the episode must actually change state"
        assert report[name]["snapshot"]["state_hash"] == report[name]["hash"]
