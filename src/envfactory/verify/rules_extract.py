"""Prose rules of a spec (issue 19): the extraction entry points used by the behavioural suite.

Contract: `extract_rules(proposal, operations)` returns the rules the documented pattern set reads from
the operations' prose; `rule_scenarios(...)` returns one violating scenario per rule and a sentence per
rule that could not be tested. (This first version extracts none; the pattern set follows.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourScenario
from envfactory.spec.build import Proposal
from envfactory.spec.rules import ProseRule


def extract_rules(proposal: Proposal, operations: Mapping[str, Operation]) -> list[ProseRule]:
    """The rules the pattern set reads from the operations' prose (none yet)."""
    del proposal, operations
    return []


def rule_scenarios(rules: Sequence[ProseRule], tools: Sequence[ToolSpec], proposal: Proposal,
                   operations: Mapping[str, Operation], *, pool: Mapping[str, Sequence[str]], seed: int
                   ) -> tuple[list[BehaviourScenario], list[str]]:
    """One violating scenario per rule, and why a rule has none (none yet)."""
    del tools, proposal, operations, pool, seed
    return [], [f"rule {r.id}: no violating scenario written yet" for r in rules]
