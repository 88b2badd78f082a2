"""`viewer`: a read-only web UI over a workspace; it reads `spec` artifacts through `store` only.

Contract (entry: `server.py`, `ViewerServer` over `workspace.WorkspaceData`):
- Inputs: a workspace directory and the shipped library, read only; a `ViewerConfig` (host, port,
  token, prewarm).
- Outputs: HTML pages, SVG and JSON over GET/HEAD; nothing is ever written.
- Errors: `ViewerConfig.check()` raises `SpecError` for a non-loopback host without a token; requests get
  401/403 (token, DNS rebinding), 404 (`NotFound`), 405 (any method but GET/HEAD), 422 (`ArtifactProblem`:
  an artifact that cannot be read, named with its problem) or 500 with a short message.
- Determinism: a page is a function of the files on disk and the query; parsed files are cached by
  (path, size, mtime), so a changed file is read again.
"""
