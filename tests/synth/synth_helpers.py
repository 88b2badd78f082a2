"""Helpers of the synthesis tests (imported as `synth_helpers`): a small stage runner and its inputs."""

from __future__ import annotations

from pathlib import Path

from envfactory.spec import StageManifest
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SamplerName, SynthTasksConfig
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks

# Library environments whose writes share user-level entities (emails, people, places, dates), so a
# small run also makes multi-environment tasks.
SMALL_ENVS = ("truora_com_checks", "box_com_collaborations", "ses_identities_identity_policies",
              "zoom_us_roles_members", "anchore_io_images_packages")
QUIET_BENCHMARK = (BenchmarkTask(benchmark="bfcl", category="multi_turn_base", id="probe",
                                 texts=["Move final_report.pdf into the temp directory."]),)


def run_small(root: Path, *, tasks: int = 10, seed: int = 5, sampler: SamplerName = "topology", batch_size: int = 8,
              benchmark: tuple[BenchmarkTask, ...] | list[BenchmarkTask] = QUIET_BENCHMARK, resume: bool = False,
              run_id: str = "r", envs: tuple[str, ...] = SMALL_ENVS) -> StageManifest:
    config = SynthTasksConfig(envs=list(envs), tasks=tasks, seed=seed, sampler=sampler,
                              batch_size=batch_size)
    return run_synth_tasks(config, Workspace(root), SynthDeps(run_id=run_id, benchmark_tasks=list(benchmark),
                                                             resume=resume))
