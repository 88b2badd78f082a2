"""Servers under abuse, part 2: 500 slow or half-open connections against a server whose
file-descriptor limit is 256 (issue 17, deliverable 3).

`envfactory serve --http` runs in a subprocess started with RLIMIT_NOFILE 256/256 (so it cannot raise
its soft limit). An attacker process on loopback opens 500 connections at once: half of them
half-open (connected, silent), half sending a request head one byte every half second; each one the
server closes is reopened a second later. Meanwhile this process times, on the same server, the
health check on a new connection, an authenticated call on a keep-alive connection and an
authenticated call on a new connection, first without the attack (the machine's own latency), then
under it. Under attack every one must answer within a second (the issue's bound, with nothing added for
a slow machine); the server's descriptors must stay below 256 and its log clean. Every loop is bounded
by time, and the attacker stops by itself.

What is timed is the server: while it measures, this process's garbage collector is off (after a long
test session a full collection of pytest's own heap can take most of a second on a loaded machine, and
would be charged to whichever request it interrupted); the server freezes its startup heap for the same
reason (`serve.runner.freeze_heap`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_helpers import TOKEN

from envfactory.serve.config import ServeLimits
from envfactory.serve.connections import ConnectionPolicy

ATTACKERS = 500
FD_LIMIT = 256
HOLD_S = 10.0
DEADLINE_S = 1.0
AUTH = {"authorization": f"Bearer {TOKEN}"}
GET = {"tool": "shop__get_customer", "arguments": {"id": "cus_0001"}}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def soft_fd_limit(self) -> int:
        text = Path(f"/proc/{self.proc.pid}/limits").read_text()
        match = re.search(r"Max open files\s+(\d+)", text)
        assert match is not None, text
        return int(match.group(1))


@contextlib.contextmanager
def serve(tmp_path: Path, soft: int, hard: int) -> Iterator[Server]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    log = tmp_path / f"serve-{soft}-{hard}.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    args = [sys.executable, "-m", "envfactory", "serve", "--http", "--env", "shop", "--port", "0",
            "--token-file", str(token_file), "--log-level", "warning",
            "--header-timeout", "30", "--unauthenticated-idle", "30"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=limit)
    try:
        deadline = time.monotonic() + 180  # startup is not what is measured; a loaded machine imports slowly
        url = ""
        while not url:
            match = re.search(r"listening on (http://\S+):\s", log.read_text(errors="replace"))
            if match:
                url = match.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{log.read_text(errors='replace')}")
            else:
                time.sleep(0.05)
        yield Server(proc, url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


REOPEN_AFTER_S = 1.0


async def _hold(host: str, port: int, slow: bool, stop: float, stats: dict[str, int], alive: set[int],
                connected: set[int], index: int) -> None:
    """One attacker slot: a connection that is silent (half-open) or sends a request head one byte every
    0.5 s; when the server closes it, another is opened a second later (until `stop`)."""
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(REOPEN_AFTER_S)
            continue
        stats["opened"] += 1
        alive.add(index)
        connected.add(index)
        try:
            sent = 0
            while time.monotonic() < stop:
                if slow and sent < len(head):
                    writer.write(head[sent:sent + 1])
                    sent += 1
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=0.5)
                except TimeoutError:
                    continue
                if not data:
                    stats["closed_by_server"] += 1
                    break
        except OSError:
            stats["closed_by_server"] += 1
        finally:
            alive.discard(index)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.sleep(REOPEN_AFTER_S)


async def _attack(host: str, port: int, seconds: float) -> dict[str, int]:
    stats = {"opened": 0, "closed_by_server": 0, "held_max": 0, "held_min": ATTACKERS}
    alive: set[int] = set()
    connected: set[int] = set()  # the slots that ever got a connection
    stop = time.monotonic() + seconds
    holders = [asyncio.create_task(_hold(host, port, i % 2 == 1, stop, stats, alive, connected, i))
               for i in range(ATTACKERS)]
    started = time.monotonic()
    while time.monotonic() < stop - 0.5:
        stats["held_max"] = max(stats["held_max"], len(alive))
        if time.monotonic() - started > 1.5:
            stats["held_min"] = min(stats["held_min"], len(alive))
            if "announced" not in stats:
                stats["announced"] = 1
                print("holding", flush=True)  # the measuring side starts now
        await asyncio.sleep(0.02)
    await asyncio.gather(*holders)
    stats["slots_connected"] = len(connected)
    return stats


def attacker(url: str, seconds: float) -> subprocess.Popen[bytes]:
    """The attack in a process of its own (so its 500 connections do not slow the measuring client);
    returns once it holds its connections."""
    proc = subprocess.Popen([sys.executable, __file__, url, str(seconds)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"holding":
        proc.kill()
        pytest.fail("the attacker did not start")
    return proc


async def _timed(what: str, coroutine: object, latencies: dict[str, list[float]]) -> None:
    started = time.monotonic()
    await coroutine  # type: ignore[misc]
    latencies.setdefault(what, []).append(time.monotonic() - started)


async def _fresh_request(url: str, request: bytes) -> tuple[int, bytes]:
    """One request on a new connection (plain asyncio streams: what is timed is the server, not the
    construction of an HTTP client); returns the status and the body."""
    target = httpx.URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        return int(head.split(b" ", 2)[1]), await reader.readexactly(length)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _measure(server: Server, until: float, rounds: int = 1_000) -> tuple[dict[str, list[float]], int]:
    latencies: dict[str, list[float]] = {}
    peak_fds = 0
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=10) as keep_alive:
        created = await keep_alive.post("/v1/sessions", json={"envs": ["shop"]})
        session = created.json()["id"]

        async def fresh_health() -> None:
            status, _ = await _fresh_request(server.url, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 200

        async def fresh_call() -> None:
            body = json.dumps(GET).encode()
            head = (f"POST /v1/sessions/{session}/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            status, answer = await _fresh_request(server.url, head + body)
            assert status == 200 and json.loads(answer)["result"]["output"]["id"] == "cus_0001"

        async def kept_call() -> None:
            answer = await keep_alive.post(f"/v1/sessions/{session}/calls", json=GET)
            assert answer.status_code == 200

        for _ in range(rounds):
            if time.monotonic() > until:
                break
            peak_fds = max(peak_fds, server.fds())
            await _timed("health (new connection)", fresh_health(), latencies)
            await _timed("call (keep-alive)", kept_call(), latencies)
            await _timed("call (new connection)", fresh_call(), latencies)
            await asyncio.sleep(0.1)
    return latencies, peak_fds


def _summary(latencies: dict[str, list[float]]) -> str:
    return "; ".join(f"{what}: max {max(s) * 1000:.0f} ms, 90th percentile {sorted(s)[int(0.9 * (len(s) - 1))] * 1000:.0f} "
                     f"ms, median {sorted(s)[len(s) // 2] * 1000:.0f} ms over {len(s)}" for what, s in latencies.items())


@pytest.mark.slow
def test_500_slow_connections_against_256_descriptors(tmp_path: Path) -> None:
    with serve(tmp_path, FD_LIMIT, FD_LIMIT) as server:
        baseline, _ = asyncio.run(_measure(server, time.monotonic() + 30, rounds=5))  # the machine without attack
        attack = attacker(server.url, HOLD_S)
        try:
            gc.disable()  # time the server, not a full collection of this (pytest's) heap
            try:
                latencies, peak_fds = asyncio.run(asyncio.wait_for(_measure(server, time.monotonic() + HOLD_S - 3.0), 120))
            finally:
                gc.enable()
            out, _ = attack.communicate(timeout=60)
        finally:
            if attack.poll() is None:
                attack.kill()
                attack.wait(10)
        log = server.log.read_text(errors="replace")
    stats = json.loads(out)
    print(f"\nattacker: {stats}; server descriptors peaked at {peak_fds}/{FD_LIMIT}\n"
          f"under attack: {_summary(latencies)}\nbaseline: {_summary(baseline)}")
    # The attack was the one the issue names: all 500 slots got connections, and every one the server
    # closed was reopened. The server holds at most its cap (256 less its headroom), so how many of them the
    # attacker sees open at one instant beyond the cap is a race between its reads and the server's
    # evictions (from 324 to over 400 on the same code, by load); what is asserted is that the attacker
    # filled the server (held at least the cap at once) and that the server shed the excess.
    cap = ConnectionPolicy.from_limits(ServeLimits(), (TOKEN,), fd_limit=FD_LIMIT).max_connections
    assert stats["slots_connected"] == ATTACKERS and stats["opened"] >= ATTACKERS, stats
    assert stats["held_max"] >= cap, (stats, cap)
    assert stats["closed_by_server"] >= ATTACKERS - cap, (stats, cap)  # past the cap, the server closed (evicted) them
    assert peak_fds < FD_LIMIT, peak_fds
    for what, seconds in latencies.items():
        assert len(seconds) >= 5, (what, seconds)
        assert max(seconds) < DEADLINE_S, (what, sorted(seconds)[-3:], baseline[what])  # every one, within a second
    assert "Too many open files" not in log and "Traceback" not in log and "out of system resource" not in log, log


def test_the_server_raises_its_soft_descriptor_limit(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    target = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if target <= FD_LIMIT:
        pytest.skip(f"the hard descriptor limit here ({hard}) leaves nothing to raise")
    with serve(tmp_path, FD_LIMIT, target) as server:
        assert server.soft_fd_limit() == target
        assert httpx.get(f"{server.url}/v1/health").status_code == 200


if __name__ == "__main__":  # the attacker process: python test_abuse_connections.py URL SECONDS
    target = httpx.URL(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < ATTACKERS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    print(json.dumps(asyncio.run(_attack(str(target.host), int(target.port or 80), float(sys.argv[2])))))
