"""`synth`: chains from the tool graph become grounded, gated tasks, then trajectories (DESIGN §6).

Stages are functions `run_<stage>(config, workspace, deps) -> StageManifest`; every artifact they write is
a model from `spec`, written atomically under `runs/<run-id>/<stage>/`.

- `run_synth_tasks` (`synth.stage`): the `synth-tasks` stage. Candidates (`synth.plans`) are chains of
  one environment, or two chains in two environments sharing a user-level entity; each is grounded
  (`synth.ground`), bound (`synth.bind`) and executed (`synth.realise`), turned into a Task v2 and a
  gold-path trajectory (`synth.tasks`), and kept when `verify.gates` passes.
"""

from envfactory.synth.stage import (
    STAGE,
    SynthDeps,
    SynthError,
    SynthProgress,
    default_run_id,
    run_synth_tasks,
)

__all__ = ["STAGE", "SynthDeps", "SynthError", "SynthProgress", "default_run_id", "run_synth_tasks"]
