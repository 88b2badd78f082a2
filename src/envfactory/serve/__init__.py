"""`serve`: environments over the wire (DESIGN §10). Imports spec, runtime and verify.

- `api.py`: the HTTP environment API (FastAPI, versioned under `/v1`), with MCP at `/mcp` when asked.
- `mcp_server.py`: the MCP server (official SDK) over stdio and streamable HTTP; one isolated session
  group per MCP client session; control operations stay off the agent's tool list.
- `service.py`: the transport-agnostic service both faces drive; `registry.py`: one record per session.
- `client.py`: the typed client (httpx, sync and async); `models.py`: the wire models both sides share.
- `runner.py`: assembling and running servers (uvicorn, stdio, a background thread).

Importing this package imports nothing heavy: the client needs httpx and pydantic only; the server
modules need the `[serve]` extra (FastAPI, uvicorn, mcp).
"""
