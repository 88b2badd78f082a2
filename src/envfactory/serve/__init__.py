"""`serve`: environments over the wire (DESIGN §10). Imports spec, runtime and verify.

- `api.py`: the HTTP environment API (FastAPI, versioned under `/v1`), with MCP at `/mcp` when asked.
- `mcp_server.py`: the MCP server (official SDK) over stdio and streamable HTTP; one isolated session
  group per MCP client session; control operations stay off the agent's tool list.
- `service.py`: the transport-agnostic service both faces drive; `registry.py`: one record per session.
- `client.py`: the typed client (httpx, sync and async); `models.py`: the wire models both sides share.
- `runner.py`: assembling and running servers (uvicorn, stdio, a background thread).

Importing this package imports nothing heavy: the client needs httpx and pydantic only; the server
modules need the `[serve]` extra (FastAPI, uvicorn, mcp).

Contract (entry: `runner.py`, `api.create_app`, `mcp_server`, `client.EnvClient`):
- Inputs: an `EnvCatalog` of loaded environments, a `ServeConfig` (host, port, tokens, `ServeLimits`) and
  requests in the wire models of `models.py` (or MCP messages).
- Outputs: JSON answers in those models and MCP results; live sessions held in memory. Nothing is written
  to disk.
- Errors: a refused request is a `ServeError` (one HTTP status and wire `code` each: 404 unknown session
  or environment, 409, 410 closed session, 413, 422, 503 session cap); a tool's own failure is a 200 with
  `result.error`, never an HTTP error. A config that must not start raises `ServeConfigError` before
  anything listens. The client raises `RemoteError` (status, code, message) for every error answer.
- Determinism: a session's results, states and hashes depend only on its environments, initial states,
  seed and calls, as in `runtime`; session ids are random, and the idle reaper (wall clock) decides only
  when an unused session is closed.
"""
