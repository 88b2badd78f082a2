"""`synth`: chains from the tool graph become grounded, gated tasks, then trajectories (DESIGN §6).

Stages are functions `run_<stage>(config, workspace, deps) -> StageManifest`; every artifact they write is
a model from `spec`, written atomically under `runs/<run-id>/<stage>/`.
"""
