"""Resource limits of sandbox workers (sent to every worker at start; see docs/sandbox.md).

Every limit is enforced by the kernel inside the worker (`setrlimit`) except the wall-clock timeouts,
which the parent enforces by killing the worker.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec import SpecModel

MiB = 1024 * 1024


class SandboxLimits(SpecModel):
    """Limits applied to each worker process (one environment per worker)."""

    schema_version: Literal[1] = 1
    call_timeout_s: float = Field(
        default=5.0, gt=0, le=3600, description="wall-clock limit of one tool call; the worker is killed past it"
    )
    start_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="wall-clock limit for starting a worker: interpreter, toolkit import, spec derivation",
    )
    transfer_timeout_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="wall-clock limit of loading a state (the state model's validators run) or reading one back",
    )
    cpu_seconds_per_call: int = Field(
        default=10, ge=1, description="RLIMIT_CPU soft limit, re-armed before every call (SIGXCPU past it)"
    )
    cpu_seconds_total: int = Field(
        default=3600, ge=1, description="RLIMIT_CPU hard limit: CPU time one worker may use in its life"
    )
    memory_bytes: int = Field(default=1024 * MiB, ge=256 * MiB, description="RLIMIT_AS (address space)")
    max_processes: int = Field(
        default=0, ge=0,
        description="RLIMIT_NPROC: processes and threads the worker's user may add (binding unless root)",
    )
    file_size_bytes: int = Field(default=16 * MiB, ge=0, description="RLIMIT_FSIZE: largest file a worker writes")
    disk_bytes: int = Field(
        default=64 * MiB, ge=MiB,
        description="disk quota: everything a worker writes (its scratch directory is a tmpfs of this size; a "
                    "call that hits it fails with `resource_limit` and the worker is replaced)",
    )
    open_files: int = Field(default=64, ge=16, description="RLIMIT_NOFILE")
    max_message_bytes: int = Field(
        default=256 * MiB, ge=MiB, description="largest protocol frame accepted in either direction"
    )
    output_tail_bytes: int = Field(
        default=64 * 1024, ge=0, description="how much of a worker's stderr the parent keeps (the latest bytes)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SandboxLimits:
        if self.cpu_seconds_per_call > self.cpu_seconds_total:
            raise ValueError("cpu_seconds_per_call must not exceed cpu_seconds_total")
        return self
