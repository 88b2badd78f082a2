"""`eval`: run agents on tasks and on external benchmarks (BFCL, τ²); reports (DESIGN §2).

Contract (entry: `run.py`, `run_eval(config, client, run_dir, items, ...)`; items from `select_tasks`):
- Inputs: an `EvalConfig` (suites and sample sizes, k attempts, seed, agent and user settings), an LLM
  client, a run directory and the selected task items (BFCL, τ² or our own Task files).
- Outputs: `attempts.jsonl` (one `AttemptRecord` per finished attempt, appended and fsynced), the run
  manifest, `report.json`, `report.md` and SVG charts, all under the run directory.
- Errors: a missing benchmark package raises `BenchmarkMissingError` with the install command before any
  model loads; `EvalRunError` names what cannot run: a run directory that already holds attempts (without
  resume) or was started with another config, unreadable Task files, attempts that failed on an executor.
- Determinism: task samples and attempt seeds derive from the config's seed; the same config, seed and
  client answers give byte-identical attempts and reports (timings stay in `logs/`).
"""
