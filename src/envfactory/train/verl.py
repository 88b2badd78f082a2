"""veRL configuration: rollouts of veRL's tool agent loop played against our HTTP env server.

`verl_setup(tools, server_url, ...)` writes, into a directory:
- `tool_config.yaml` (JSON, which is YAML): one `EnvServerTool` per tool (`envfactory.train.verl_tool`),
  its flat OpenAI schema (veRL's schema models keep `type`, `description` and `enum` per property, so
  nested objects are flattened as in TRL, `surface.tool_surface`) and, in its `config`, the server URL,
  the tool's session name and the flat-to-nested parameter paths;
- `overrides.txt`: the Hydra overrides of `verl.trainer.main_ppo` — multi-turn on, the tool agent loop,
  our reward function (`verl_tool.compute_score`, scoring through the server's `/reward` endpoint),
  GRPO with the given group size, temperature, learning rate and no KL, the model and the data files;
- `run.sh`: the command for a GPU machine.
`validate_in_verl(directory, python)` checks both files with veRL's own classes in its virtual
environment (`scripts/consumers verl`): Hydra composes `ppo_trainer` with the overrides, veRL's rollout
(multi-turn) and algorithm dataclasses are built from the result, veRL's `get_custom_reward_fn` loads our
reward function and `initialize_tools_from_config` instantiates every tool. (veRL 0.9.1's own
`RewardManagerConfig` cannot be built outside its trainer: its `__post_init__` calls a parent's that does
not exist; so the reward section is checked through the loader the trainer uses.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envfactory.spec import JSONObject, ToolSpec
from envfactory.spec.training import ToolSurface
from envfactory.train.surface import expected_schema, tool_surface

TOOL_CLASS = "envfactory.train.verl_tool.EnvServerTool"
REWARD_FILE = Path(__file__).with_name("verl_tool.py")


@dataclass(frozen=True, slots=True)
class VerlSettings:
    """The trainer settings written into the overrides (defaults: the paper's GRPO settings)."""

    model: str = "Qwen/Qwen3-4B"
    train_files: str = "data/verl/train.parquet"
    val_files: str = "data/verl/validation.parquet"
    n: int = 8
    temperature: float = 0.7
    learning_rate: float = 1e-6
    train_batch_size: int = 64
    max_prompt_length: int = 4096
    max_response_length: int = 4096
    max_assistant_turns: int = 8
    n_gpus_per_node: int = 8
    nnodes: int = 1
    total_epochs: int = 1
    rollout_engine: str = "sglang"


def tool_entry(spec: ToolSpec, surface: ToolSurface, server_url: str, token_env: str | None) -> JSONObject:
    """One veRL tool: class, config (server, tool, flat → nested paths) and the flat schema."""
    schema = expected_schema(surface)
    config: JSONObject = {"type": "native", "server_url": server_url, "tool": spec.name,
                          "params": [[p.name, *p.path] for p in surface.params]}
    if token_env:
        config["token_env"] = token_env
    return {"class_name": TOOL_CLASS, "config": config,
            "tool_schema": {"type": "function",
                            "function": {"name": spec.name, "description": surface.description, "parameters": schema}}}


def overrides(settings: VerlSettings, tool_config: Path) -> list[str]:
    """Hydra overrides of `verl.trainer.main_ppo` for tool RL on our env server."""
    s = settings
    return [
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={s.train_files}",
        f"data.val_files={s.val_files}",
        f"data.train_batch_size={s.train_batch_size}",
        f"data.max_prompt_length={s.max_prompt_length}",
        f"data.max_response_length={s.max_response_length}",
        "data.return_raw_chat=True",
        f"actor_rollout_ref.model.path={s.model}",
        f"actor_rollout_ref.actor.optim.lr={s.learning_rate}",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.actor.kl_loss_coef=0.0",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"actor_rollout_ref.rollout.name={s.rollout_engine}",
        "actor_rollout_ref.rollout.mode=async",
        f"actor_rollout_ref.rollout.n={s.n}",
        f"actor_rollout_ref.rollout.temperature={s.temperature}",
        "actor_rollout_ref.rollout.multi_turn.enable=True",
        "actor_rollout_ref.rollout.multi_turn.format=hermes",
        f"actor_rollout_ref.rollout.multi_turn.max_assistant_turns={s.max_assistant_turns}",
        f"actor_rollout_ref.rollout.multi_turn.tool_config_path={tool_config}",
        "actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent",
        f"reward.custom_reward_function.path={REWARD_FILE}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.n_gpus_per_node={s.n_gpus_per_node}",
        f"trainer.nnodes={s.nnodes}",
        f"trainer.total_epochs={s.total_epochs}",
        "trainer.logger=[console]",
    ]


def verl_setup(tools: Sequence[ToolSpec], server_url: str, out: str | Path, settings: VerlSettings | None = None,
               *, token_env: str | None = None) -> list[str]:
    """Write `tool_config.yaml`, `overrides.txt` and `run.sh` into `out`; the surfaces' losses are returned."""
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    entries = []
    losses: list[str] = []
    for spec in tools:
        surface = tool_surface(spec)
        entries.append(tool_entry(spec, surface, server_url, token_env))
        losses += [line for line in surface.losses if "name mapped" not in line]
    tool_config = target / "tool_config.yaml"
    _write(tool_config, json.dumps({"tools": entries}, indent=1, ensure_ascii=False) + "\n")
    lines = overrides(settings or VerlSettings(), tool_config.resolve())
    _write(target / "overrides.txt", "\n".join(lines) + "\n")
    script = ("#!/usr/bin/env bash\n# veRL GRPO on envfactory environments; start the env server first:\n"
              f"#   envfactory serve --http --env ... --port PORT   (URL in tool_config.yaml: {server_url})\n"
              "set -euo pipefail\n"
              f'export ENVFACTORY_ENV_SERVER="${{ENVFACTORY_ENV_SERVER:-{server_url}}}"\n'
              'export PYTHONPATH="$(cd "$(dirname "$0")" && git rev-parse --show-toplevel 2>/dev/null)/src:${PYTHONPATH:-}"\n'
              "python -m verl.trainer.main_ppo \\\n" + " \\\n".join(f"  '{line}'" for line in lines) + "\n")
    _write(target / "run.sh", script)
    (target / "run.sh").chmod(0o755)
    return losses


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


VALIDATE = r"""
import json, sys
from pathlib import Path
import verl
from hydra import compose, initialize_config_dir
from verl.utils.config import omega_conf_to_dataclass
from verl.tools.tool_registry import initialize_tools_from_config
from verl.trainer.ppo.reward import get_custom_reward_fn
directory = Path(sys.argv[1])
lines = [l for l in (directory / "overrides.txt").read_text().splitlines() if l.strip()]
config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
with initialize_config_dir(config_dir=config_dir, version_base=None):
    cfg = compose(config_name="ppo_trainer", overrides=lines)
rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
reward_fn = get_custom_reward_fn(cfg)
algorithm = omega_conf_to_dataclass(cfg.algorithm)
tools = initialize_tools_from_config(str(directory / "tool_config.yaml"))
print(json.dumps({
    "verl": verl.__version__,
    "multi_turn": bool(rollout.multi_turn.enable), "tool_config_path": rollout.multi_turn.tool_config_path,
    "n": rollout.n, "temperature": rollout.temperature, "adv_estimator": str(algorithm.adv_estimator),
    "use_kl_in_reward": algorithm.use_kl_in_reward, "lr": cfg.actor_rollout_ref.actor.optim.lr,
    "use_kl_loss": cfg.actor_rollout_ref.actor.use_kl_loss,
    "reward_function": [cfg.reward.custom_reward_function.path, cfg.reward.custom_reward_function.name,
                        callable(reward_fn)],
    "agent_loop": cfg.actor_rollout_ref.rollout.agent.default_agent_loop,
    "tools": {t.name: sorted(t.tool_schema.function.parameters.properties) for t in tools},
    "tool_classes": sorted({type(t).__name__ for t in tools}),
}))
"""


def validate_in_verl(directory: str | Path, python: str | Path, src_dir: str | Path) -> JSONObject:
    """Check a setup with veRL's own config and schema classes, in veRL's virtual environment."""
    env_path = str(Path(src_dir).resolve())
    result = subprocess.run([str(python), "-c", VALIDATE, str(Path(directory).resolve())], capture_output=True,
                            text=True, timeout=300, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin",
                                                          "HYDRA_FULL_ERROR": "1"}, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"veRL refused the setup:\n{result.stderr[-3000:]}")
    last = result.stdout.strip().splitlines()[-1]
    value: JSONObject = json.loads(last)
    return value


def python_of_venv(venv: str | Path) -> Path:
    """The interpreter of a virtual environment (`sys.executable` when `venv` is empty)."""
    return Path(venv) / "bin" / "python" if str(venv) else Path(sys.executable)
