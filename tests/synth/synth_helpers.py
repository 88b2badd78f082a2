"""Helpers of the synthesis tests (imported as `synth_helpers`): a small stage runner and its inputs."""

from __future__ import annotations

from pathlib import Path

from envfactory.spec import StageManifest
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.synth import SamplerName, SynthTasksConfig
from envfactory.store import Workspace
from envfactory.synth import SynthDeps, run_synth_tasks

# Library environments of the recorded ci-run fixture (tests/synth/fixtures/ci-run) and the fan-out tests.
SMALL_ENVS = ("truora_com_checks", "box_com_collaborations", "ses_identities_identity_policies",
              "zoom_us_roles_members", "anchore_io_images_packages")
# What `run_small` runs: SMALL_ENVS and squareup_com_customers_cards, whose customer writes take an email as
# ses_identities_identity_policies' identity writes do. In the gen-2 library no two of SMALL_ENVS have writes
# taking the same kind of user-level entity (email, person, place, date), so without it a small run makes no
# multi-environment task (tasks=14, seed 5: 2 of 14 kept are multi-environment with it, 0 without).
RUN_ENVS = (*SMALL_ENVS, "squareup_com_customers_cards")
QUIET_BENCHMARK = (BenchmarkTask(benchmark="bfcl", category="multi_turn_base", id="probe",
                                 texts=["Move final_report.pdf into the temp directory."]),)


def run_small(root: Path, *, tasks: int = 10, seed: int = 5, sampler: SamplerName = "topology", batch_size: int = 8,
              benchmark: tuple[BenchmarkTask, ...] | list[BenchmarkTask] = QUIET_BENCHMARK, resume: bool = False,
              run_id: str = "r", envs: tuple[str, ...] = RUN_ENVS) -> StageManifest:
    config = SynthTasksConfig(envs=list(envs), tasks=tasks, seed=seed, sampler=sampler,
                              batch_size=batch_size)
    return run_synth_tasks(config, Workspace(root), SynthDeps(run_id=run_id, benchmark_tasks=list(benchmark),
                                                             resume=resume))
