"""`verify`: deterministic checks and rewards (DESIGN §4, §7): pure functions over data passed in.

Modules: task rewards (`rewards.py`); environment checks and the verification report
(`envchecks.py`, with scenario execution in `scenario_run.py`); contamination scores against benchmark
tool sets and tasks (`contamination.py`). Task gates join with trajectory synthesis.
"""

from envfactory.verify.rewards import (
    RewardConfig,
    score_episode,
    task_reward,
    volatile_fields,
)

__all__ = ["RewardConfig", "score_episode", "task_reward", "volatile_fields"]
