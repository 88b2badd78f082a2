"""Chains: the models live in `envfactory.spec.chain` (artifacts are defined in `spec`); re-exported here
for the graph's samplers and existing imports."""

from envfactory.spec.chain import Binding, Chain, ChainStep, NoSource, Source, StepOutput, UserValue

__all__ = ["Binding", "Chain", "ChainStep", "NoSource", "Source", "StepOutput", "UserValue"]
