"""`train`: adapters that plug envfactory environments and rewards into TRL and veRL.

There is no trainer of our own; this layer only shapes environments, tools and rewards for theirs.

Contract (entries: `trl_runner.run_sft` / `run_grpo`, `verl`, `sessions`):
- Inputs: an `SFTRunConfig` or `GRPORunConfig`, a stage directory to write into and `TrainDeps` (the chat
  template, a session source: in-process or an env server); SFT rows or tasks.
- Outputs: under the stage directory, `model/`, `checkpoints/`, `logs/steps.jsonl`,
  `logs/rollouts.jsonl` (GRPO) and the `StageManifest`, written last.
- Errors: a missing library, template or checkpoint raises `TrainingSetupError` with the fix, before any
  model loads; bad inputs raise `SpecError`; an env server that refuses a session raises
  `SessionRefusedError`. A rollout that keeps failing is recorded as failed (`RolloutFailedError`), never
  scored as 0.
- Determinism: the trainer is seeded with `config.seed` and rewards come from `verify`, but training
  itself (kernels, sampling) is only as reproducible as TRL and torch make it on the device used.
"""
