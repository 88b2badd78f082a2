"""Servers under abuse, part 1: malformed input and slow or idle connections (issue 17, deliverable 3).

Every malformed body (lone surrogates, invalid UTF-8, deep or huge JSON, wrong content types) is
answered with a 4xx whose error code names the problem, and the session it was aimed at stays usable
(its log and its next call answer 200). Connections that never finish their request head or body, or
sit idle before authenticating, are closed by the server; past the connection cap, unproved
connections make room and proved ones are kept.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from serve_helpers import TOKEN, Running, running

from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.config import ServeLimits

AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
GET = {"tool": "shop__get_customer", "arguments": {"id": "cus_0001"}}


@pytest.fixture(scope="module")
def guarded(catalog: EnvCatalog) -> Iterator[Running]:
    from envfactory.serve.service import SessionTemplate

    limits = ServeLimits(header_timeout_s=0.6, body_timeout_s=0.6, unauthenticated_idle_s=0.6, max_json_depth=32)
    with running(catalog, limits=limits, token=TOKEN, mcp=SessionTemplate(envs=("shop",))) as srv:
        yield srv


@pytest.fixture()
def http(guarded: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=10) as client:
        yield client


def _session(http: httpx.Client) -> str:
    answer = http.post("/v1/sessions", json={"envs": ["shop"]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _still_usable(http: httpx.Client, session: str) -> None:
    log = http.get(f"/v1/sessions/{session}/log")
    assert log.status_code == 200, log.text
    call = http.post(f"/v1/sessions/{session}/calls", json=GET)
    assert call.status_code == 200 and call.json()["result"]["output"]["id"] == "cus_0001", call.text
    assert http.get("/v1/health").status_code == 200


def _refused(answer: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    error = answer.json()["error"]
    assert error["code"] == code and fragment in error["message"], error


NESTED = b'{"tool": "shop__get_customer", "arguments": {"id": ' + b"[" * 40 + b"]" * 40 + b"}}"
MALFORMED: list[tuple[str, bytes, dict[str, str], int, str, str]] = [
    ("lone surrogate in the tool name", b'{"tool": "\\ud800", "arguments": {}}', JSON, 400, "invalid_encoding", "surrogate"),
    ("lone low surrogate in an argument", b'{"tool": "shop__get_customer", "arguments": {"id": "a\\udc00"}}', JSON,
     400, "invalid_encoding", "surrogate"),
    ("lone surrogate in a key", b'{"tool": "shop__get_customer", "arguments": {"\\ud83d": 1}}', JSON, 400,
     "invalid_encoding", "surrogate"),
    ("invalid UTF-8", b'{"tool": "shop__get_customer\xff\xfe", "arguments": {}}', JSON, 400, "invalid_encoding",
     "UTF-8"),
    ("overlong UTF-8", b'{"tool": "\xc0\xaf", "arguments": {}}', JSON, 400, "invalid_encoding", "UTF-8"),
    ("deep nesting", NESTED, JSON, 400, "nesting_too_deep", "deeper than 32"),
    ("very deep nesting", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "nesting_too_deep", "deeper than"),
    ("truncated JSON", b'{"tool": "shop__get_customer", "argum', JSON, 400, "bad_request", "not valid JSON"),
    ("text/plain", orjson.dumps(GET), {"content-type": "text/plain"}, 415, "unsupported_media_type", "text/plain"),
    ("form", b"tool=shop__get_customer", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type", "must be JSON"),
    ("no content type", orjson.dumps(GET), {}, 415, "unsupported_media_type", "none"),
    ("an array", b"[1, 2]", JSON, 422, "invalid_request", "invalid request body"),
    ("null", b"null", JSON, 422, "invalid_request", "invalid request body"),
    ("arguments as a number", b'{"tool": "shop__get_customer", "arguments": 5}', JSON, 422, "invalid_request",
     "arguments"),
]


@pytest.mark.parametrize(("what", "body", "headers", "status", "code", "fragment"), MALFORMED,
                         ids=[case[0] for case in MALFORMED])
def test_malformed_call_bodies_are_4xx_and_the_session_stays_usable(
    http: httpx.Client, what: str, body: bytes, headers: dict[str, str], status: int, code: str, fragment: str
) -> None:
    session = _session(http)
    _refused(http.post(f"/v1/sessions/{session}/calls", content=body, headers=headers), status, code, fragment)
    _still_usable(http, session)


def test_odd_but_valid_text_is_a_tool_result_and_the_log_stays_readable(http: httpx.Client) -> None:
    session = _session(http)
    for name in ["\U0001f600", "\x00\x1b[31m", "[/]", "\u202e" * 50, "x" * 100_000]:
        answer = http.post(f"/v1/sessions/{session}/calls", json={"tool": name, "arguments": {}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["error"]["kind"] == "unknown_tool"
    escaped_pair = b'{"tool": "\\ud83d\\ude00", "arguments": {}}'  # a valid surrogate pair: one character
    assert http.post(f"/v1/sessions/{session}/calls", content=escaped_pair, headers=JSON).status_code == 200
    log = http.get(f"/v1/sessions/{session}/log")
    assert log.status_code == 200 and len(log.json()["calls"]) == 6
    _still_usable(http, session)


def test_malformed_session_creation_and_paths(http: httpx.Client) -> None:
    _refused(http.post("/v1/sessions", content=b'{"envs": ["\\udfff"]}', headers=JSON), 400, "invalid_encoding",
             "surrogate")
    _refused(http.post("/v1/sessions", content=b'{"envs": ["shop"], "initial_state": {"shop": '
                       + b"{\"a\": " * 50 + b"1" + b"}" * 50 + b"}}", headers=JSON), 400, "nesting_too_deep", "32")
    wide = orjson.dumps({"envs": ["shop"], "initial_state": {"shop": {f"k{i}": i for i in range(100_000)}}})
    answer = http.post("/v1/sessions", content=wide, headers=JSON)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", answer.text[:300]
    for path in ["/v1/sessions/%ff%fe", "/v1/sessions/%ED%A0%80/log", "/v1/sessions/ses_%00/calls"]:
        answer = http.get(path) if path.endswith(("fe", "log")) else http.post(path, json=GET)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    assert http.get("/v1/health").status_code == 200


def test_malformed_mcp_bodies_are_4xx(guarded: Running) -> None:
    headers = {**AUTH, **JSON, "accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=guarded.url, headers=headers, timeout=10) as mcp:
        init = mcp.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "abuse", "version": "0"}}})
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        mcp.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        bad = [b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "\\ud800", "arguments": {}}}',
               b'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "\xff"}}',
               b'{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": ' + b"[" * 5000 + b"]" * 5000 + b"}",
               b'{"jsonrpc": "2.0", "id": 5, "method": "tools/ca']
        for body in bad:
            answer = mcp.post("/mcp", content=body, headers=session)
            assert 400 <= answer.status_code < 500, (body[:60], answer.status_code, answer.text[:200])
        unknown = mcp.post("/mcp", json={"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                                         "params": {"name": "\x1b[2J", "arguments": {}}}, headers=session)
        assert unknown.status_code == 200 and "unknown tool" in unknown.json()["error"]["message"]
        good = mcp.post("/mcp", json={"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                      "params": {"name": GET["tool"], "arguments": GET["arguments"]}}, headers=session)
        assert good.json()["result"]["structuredContent"]["id"] == "cus_0001"


# -- connections ---------------------------------------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    parsed = httpx.URL(url)
    sock = socket.create_connection((parsed.host, parsed.port), timeout=5)
    sock.settimeout(5)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed `sock` (reading and discarding any answer); fails past `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {seconds} s")
    finally:
        sock.close()
    return time.monotonic() - started


def _request(sock: socket.socket, head: bytes) -> bytes:
    sock.sendall(head)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection instead of answering"
        answer += chunk
    head_part, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head_part.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head_part.split(b"\r\n", 1)[0]


HEALTH = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
AUTHED_ENVS = f"GET /v1/envs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()


def test_half_open_slow_head_and_slow_body_connections_are_closed(guarded: Running) -> None:
    half_open = _connect(guarded.url)
    slow_head = _connect(guarded.url)
    slow_head.sendall(b"GET /v1/health HTTP/1.1\r\nHo")
    slow_body = _connect(guarded.url)
    slow_body.sendall(f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"envs\"".encode())
    dribble = _connect(guarded.url)  # one byte every 0.2 s: each byte is progress, the head deadline still holds
    started = time.monotonic()
    for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n":
        try:
            dribble.send(bytes([byte]))
        except OSError:
            break
        time.sleep(0.2)
        if time.monotonic() - started > 3:
            pytest.fail("a dribbling request head was not cut off")
    assert time.monotonic() - started < 1.5
    for sock in (half_open, slow_head, slow_body, dribble):
        assert _closed_within(sock, 3.0) < 3.0


def test_idle_before_authentication_is_closed_but_authenticated_keep_alive_is_kept(guarded: Running) -> None:
    unauthenticated = _connect(guarded.url)
    assert _request(unauthenticated, b"GET /v1/envs HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"401 Unauthorized")
    authenticated = _connect(guarded.url)
    assert _request(authenticated, AUTHED_ENVS).endswith(b"200 OK")
    open_only = _connect(guarded.url)
    assert _request(open_only, HEALTH).endswith(b"200 OK")  # health needs no token: not a proof either
    time.sleep(1.5)  # past the unauthenticated idle limit (0.6 s), within uvicorn's keep-alive (5 s)
    assert _request(authenticated, AUTHED_ENVS).endswith(b"200 OK")
    assert _closed_within(unauthenticated, 0.5) < 0.5
    assert _closed_within(open_only, 0.5) < 0.5
    authenticated.close()


def test_connection_cap_evicts_unproved_connections_and_keeps_proved_ones(catalog: EnvCatalog) -> None:
    limits = ServeLimits(max_connections=20, unauthenticated_idle_s=30, header_timeout_s=30)
    with running(catalog, limits=limits, token=TOKEN) as srv:
        assert srv.connections is not None
        proved = [_connect(srv.url) for _ in range(12)]
        for sock in proved:
            assert _request(sock, AUTHED_ENVS).endswith(b"200 OK")
        idle = [_connect(srv.url) for _ in range(40)]  # 8 slots left: the 32 oldest are evicted
        for sock in idle[:32]:
            assert _closed_within(sock, 2.0) < 2.0
        with httpx.Client(base_url=srv.url, headers=AUTH, timeout=5) as http:
            assert http.get("/v1/health").status_code == 200  # a new connection still gets in (one more evicted)
        for sock in proved:
            assert _request(sock, AUTHED_ENVS).endswith(b"200 OK")  # proved connections are never evicted
        for sock in idle[32:]:
            sock.close()
        more = [_connect(srv.url) for _ in range(8)]
        for sock in more:
            assert _request(sock, AUTHED_ENVS).endswith(b"200 OK")
        refused = _connect(srv.url)  # 20 proved connections: nothing to evict, the newcomer is closed at once
        assert _closed_within(refused, 1.0) < 1.0
        stats = srv.connections.stats
        assert stats.peak <= 20 and stats.evicted >= 32 and stats.refused >= 1, stats
        for sock in [*proved, *more]:
            sock.close()
