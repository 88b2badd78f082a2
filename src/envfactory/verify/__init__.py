"""`verify`: deterministic checks and rewards (DESIGN §4, §7): pure functions over data passed in.

Today: task rewards (`rewards.py`). Environment checks, task gates and contamination scoring join
this package with their issues.
"""

from envfactory.verify.rewards import (
    RewardConfig,
    score_episode,
    task_reward,
    volatile_fields,
)

__all__ = ["RewardConfig", "score_episode", "task_reward", "volatile_fields"]
