"""Serving speed: calls/s and latency p50/p99 over HTTP and MCP against in-process calls, one run.

Run: `python benchmarks/serve.py [--quick] [--json OUT]`. The call mix is the same everywhere:
alternating `shop__get_customer` (a read) and `shop__top_up_wallet` (a write) on the declarative shop.

- baseline: the same calls on an in-process `SessionGroup` (no wire), measured in this run;
- HTTP: `envfactory serve --http` in its own process; 1 session with the sync client, then 64 and 256
  concurrent sessions, each with its own async client and connection (like independent rollout
  workers), all driven from this process;
- MCP stdio: `envfactory serve --mcp stdio` driven by the official SDK client (one client = one
  session); MCP streamable HTTP likewise, for reference.

Latency is per call as the client sees it; calls/s is calls completed over wall time. Every figure
is printed with its ratio to the in-process baseline. The clients are Python (httpx, the MCP SDK) and
share the machine with the server, so on a small machine the client side bounds the HTTP figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from envfactory.runtime import load_env, open_group
from envfactory.serve.client import AsyncEnvClient, EnvClient

READ = ("shop__get_customer", {"id": "cus_0001"})
WRITE = ("shop__top_up_wallet", {"id": "cus_0002", "amount": 1})
SERVE = [sys.executable, "-m", "envfactory", "serve", "--env", "shop", "--log-level", "warning"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def call_args(i: int) -> tuple[str, dict[str, Any]]:
    return READ if i % 2 == 0 else WRITE


def summary(samples_ns: list[int], wall_s: float, server_cpu_s: float | None = None) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    figures = {"calls": float(len(ordered)), "calls_per_s": len(ordered) / wall_s, "p50_us": pct(0.5),
               "p99_us": pct(0.99)}
    if server_cpu_s is not None:
        figures["server_cpu_us_per_call"] = server_cpu_s / len(ordered) * 1e6
    return figures


# -- in process -------------------------------------------------------------------------------------------


def bench_in_process(calls: int) -> dict[str, float]:
    group = open_group([load_env("shop")], seed=1)
    for i in range(200):
        group.call(*call_args(i))
    samples = []
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        group.call(*call_args(i))
        samples.append(time.perf_counter_ns() - t0)
    return summary(samples, time.perf_counter() - started)


# -- HTTP -------------------------------------------------------------------------------------------------


@contextmanager
def server_process(*args: str) -> Iterator[tuple[str, int]]:
    """`envfactory serve ... --port 0` in its own process; yields its base URL and pid."""
    with tempfile.NamedTemporaryFile("w+b", suffix=".log") as log:
        proc = subprocess.Popen([*SERVE, *args, "--port", "0"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                match = re.search(rb"listening on (http://\S+):\s", Path(log.name).read_bytes())
                if match:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(log.name).read_text(errors="replace"))
                time.sleep(0.05)
            yield match.group(1).decode(), proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_http_sequential(url: str, pid: int, calls: int) -> dict[str, float]:
    with EnvClient(url) as client, client.create_session(envs=["shop"], seed=1) as session:
        for i in range(200):
            session.call(*call_args(i))
        samples = []
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter_ns()
            result = session.call(*call_args(i))
            samples.append(time.perf_counter_ns() - t0)
            assert result.ok, result.error
        return summary(samples, time.perf_counter() - started, cpu_seconds(pid) - cpu)


async def _http_concurrent(url: str, pid: int, sessions: int, seconds: float) -> dict[str, float]:
    samples: list[int] = []
    ready = asyncio.Barrier(sessions + 1)
    go = asyncio.Event()
    stop = asyncio.Event()

    async def worker(index: int) -> None:
        async with AsyncEnvClient(url, max_connections=1) as client:
            session = await client.create_session(envs=["shop"], seed=index)
            for i in range(20):  # warm the connection and the session
                await session.call(*call_args(i))
            await ready.wait()
            await go.wait()
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter_ns()
                result = await session.call(*call_args(i))
                samples.append(time.perf_counter_ns() - t0)
                assert result.ok, result.error
                i += 1
            await session.close()

    tasks = [asyncio.create_task(worker(i)) for i in range(sessions)]
    await ready.wait()
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    go.set()
    await asyncio.sleep(seconds)
    stop.set()
    counted = len(samples)  # calls completed inside the window
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(pid) - cpu
    await asyncio.gather(*tasks)
    figures = summary(samples[:counted], wall, server_cpu)
    figures["sessions"] = float(sessions)
    return figures


def bench_http_concurrent(url: str, pid: int, sessions: int, seconds: float) -> dict[str, float]:
    return asyncio.run(_http_concurrent(url, pid, sessions, seconds))


# -- MCP --------------------------------------------------------------------------------------------------


async def _mcp(client_target: Any, calls: int, pid: int | None) -> dict[str, float]:
    before = children()
    async with Client(client_target) as client:
        if pid is None:  # stdio: the server is the process the SDK client spawned
            (pid,) = children() - before
        for i in range(100):
            await client.call_tool(*call_args(i))
        samples = []
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter_ns()
            result = await client.call_tool(*call_args(i))
            samples.append(time.perf_counter_ns() - t0)
            assert not result.is_error, result.content
        return summary(samples, time.perf_counter() - started, cpu_seconds(pid) - cpu)


def bench_mcp_stdio(calls: int) -> dict[str, float]:
    params = StdioServerParameters(command=SERVE[0], args=[*SERVE[1:], "--mcp", "stdio"])
    return anyio.run(_mcp, params, calls, None)


def bench_mcp_http(url: str, pid: int, calls: int) -> dict[str, float]:
    return anyio.run(_mcp, f"{url}/mcp", calls, pid)


# -- report -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    calls = 1000 if args.quick else 5000
    seconds = 3.0 if args.quick else 10.0

    figures: dict[str, dict[str, float]] = {"in-process (baseline)": bench_in_process(calls * 10)}
    with server_process("--http") as (url, pid):
        figures["HTTP, 1 session (sync client)"] = bench_http_sequential(url, pid, calls)
        for sessions in (64, 256):
            figures[f"HTTP, {sessions} concurrent sessions"] = bench_http_concurrent(url, pid, sessions, seconds)
    figures["MCP stdio, 1 client (SDK)"] = bench_mcp_stdio(calls)
    with server_process("--mcp", "http") as (url, pid):
        figures["MCP streamable HTTP, 1 client (SDK)"] = bench_mcp_http(url, pid, calls)

    base = figures["in-process (baseline)"]
    print(f"\nenvfactory serving benchmark (python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"call mix: {READ[0]} / {WRITE[0]})")
    print(f"{'path':<38} {'calls/s':>9} {'p50 us':>9} {'p99 us':>9} {'srv CPU/call':>13}   vs in-process")
    for name, fig in figures.items():
        ratio = "" if fig is base else (f"{base['calls_per_s'] / fig['calls_per_s']:.0f}x fewer calls/s, "
                                        f"p50 {fig['p50_us'] / base['p50_us']:.0f}x")
        cpu = f"{fig['server_cpu_us_per_call']:10.0f} us" if "server_cpu_us_per_call" in fig else " " * 13
        print(f"{name:<38} {fig['calls_per_s']:9.0f} {fig['p50_us']:9.1f} {fig['p99_us']:9.1f} {cpu}   {ratio}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main()
