"""`verify`: deterministic checks and rewards (DESIGN §4, §7): pure functions over data passed in.

Modules: task rewards (`rewards.py`, a list of named components from `reward_components.py`); environment checks and the verification report
(`envchecks.py`, with scenario execution in `scenario_run.py`); behavioural acceptance from the source
specs (`behaviour.py` writes the scenarios from `behaviour_facts.py`, `behaviour_run.py` runs them,
`behaviour_probes.py` probes every argument for an effect; docs/behaviour.md); contamination scores
against benchmark tool sets and tasks (`contamination.py`); task gates (`gates.py`).

Contract (entries: `rewards.task_reward`, `gates.gate_task`, `envchecks.verify_environment`,
`contamination`):
- Inputs: tasks, session groups and their initial snapshots, call logs and messages; environments (or
  their directories) and scenarios; benchmark tool sets and tasks.
- Outputs: `Reward`s with named components, `GateOutcome`s with one record per gate, `VerificationReport`s
  and contamination scores; nothing is written.
- Errors: an unknown reward component name raises `ValueError`; a failing check or gate is a result
  (verdict, failed gate, failing tools), not an exception.
- Determinism: rewards and gates are pure functions of their inputs; environment checks draw every call
  from `random.Random(seed)`, so the same environment, scenarios and seed give the same report and
  evidence digest.
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
