"""`eval`: run agents on tasks and on external benchmarks (BFCL, τ²); reports (DESIGN §2)."""
