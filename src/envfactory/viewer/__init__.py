"""`viewer`: a read-only web UI over a workspace; it reads `spec` artifacts through `store` only."""
