"""`verify`: deterministic checks and rewards (DESIGN §4, §7): pure functions over data passed in.

Modules: task rewards (`rewards.py`, a list of named components from `reward_components.py`); environment checks and the verification report
(`envchecks.py`, with scenario execution in `scenario_run.py`); contamination scores against benchmark
tool sets and tasks (`contamination.py`). Task gates join with trajectory synthesis.
"""

from envfactory.verify.reward_components import COMPONENTS, DEFAULT_TERMS, EpisodeFacts
from envfactory.verify.rewards import (
    RewardConfig,
    reward_terms,
    score_episode,
    task_reward,
    volatile_fields,
)

__all__ = ["COMPONENTS", "DEFAULT_TERMS", "EpisodeFacts", "RewardConfig", "reward_terms", "score_episode",
           "task_reward", "volatile_fields"]
