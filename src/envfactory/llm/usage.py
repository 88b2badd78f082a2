"""Usage accounting per pipeline stage: calls, cache hits, retries, repairs, tokens, latency and cost.

Contract:
- `UsageLedger` is thread-safe and in memory; `report()` gives a `UsageReport` (pydantic, written by
  callers next to their run as `usage.json`). A cache hit counts as a call that cost no tokens.
- Latency is wall time spent in providers; it describes a run and never enters hashed artifacts.
- Prompt tokens are split into `reused_tokens` (restored from the local provider's prefix cache, or
  reported as cached by an endpoint) and `evaluated_tokens` (decoded for this call).
- Cost is computed only when a `PriceTable` is given: prices per million tokens, matched on the
  longest model-id prefix. A model with no price has cost `None` ("not priced"), not 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from envfactory.llm.types import Usage
from envfactory.spec import SpecModel


class ModelPrice(SpecModel):
    """The price of a model's tokens, per million prompt and completion tokens."""

    prompt_per_mtok: float = Field(ge=0.0, description="price of one million prompt tokens")
    completion_per_mtok: float = Field(ge=0.0, description="price of one million completion tokens")


class PriceTable(SpecModel):
    """Prices by model-id prefix (e.g. `openai/gpt-4o-mini@`)."""

    schema_version: Literal[1] = 1
    currency: str = "USD"
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    def price_for(self, model_id: str) -> ModelPrice | None:
        """The price of the longest prefix of `model_id` in the table, or None."""
        matches = [prefix for prefix in self.prices if model_id.startswith(prefix)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model_id: str, usage: Usage) -> float | None:
        """What `usage` cost with `model_id`'s price, or None when the table has no price for it."""
        price = self.price_for(model_id)
        if price is None:
            return None
        return (usage.prompt_tokens * price.prompt_per_mtok + usage.completion_tokens * price.completion_per_mtok) / 1e6


class StageUsage(SpecModel):
    """One stage's usage of one model: calls (and how many the cache answered), retries, repairs,
    failures, tokens (prompt, reused from a prefix cache, evaluated, completion), the providers' seconds
    and the cost (None: no price known). Cached calls add no tokens, seconds or cost."""

    stage: str
    model: str
    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    repairs: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = Field(default=0, description="prompt tokens restored from a prefix cache")
    evaluated_tokens: int = Field(default=0, description="prompt tokens decoded by the model")
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float | None = None


class UsageReport(SpecModel):
    """Usage per (stage, model), sorted, in `currency`."""

    schema_version: Literal[1] = 1
    currency: str = "USD"
    stages: list[StageUsage] = Field(default_factory=list)

    def total(self) -> StageUsage:
        """The sum over every stage and model (stage `total`, model `*`; cost None when no stage has one)."""
        costs = [s.cost for s in self.stages if s.cost is not None]
        return StageUsage(
            stage="total",
            model="*",
            calls=sum(s.calls for s in self.stages),
            cached_calls=sum(s.cached_calls for s in self.stages),
            retries=sum(s.retries for s in self.stages),
            repairs=sum(s.repairs for s in self.stages),
            failures=sum(s.failures for s in self.stages),
            prompt_tokens=sum(s.prompt_tokens for s in self.stages),
            reused_tokens=sum(s.reused_tokens for s in self.stages),
            evaluated_tokens=sum(s.evaluated_tokens for s in self.stages),
            completion_tokens=sum(s.completion_tokens for s in self.stages),
            latency_s=sum(s.latency_s for s in self.stages),
            cost=sum(costs) if costs else None,
        )

    def stage(self, name: str) -> StageUsage:
        """Usage of one stage over all its models."""
        return UsageReport(currency=self.currency, stages=[s for s in self.stages if s.stage == name]).total().model_copy(
            update={"stage": name}
        )


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    cached_calls: int = 0
    retries: int = 0
    repairs: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float | None = None


class UsageLedger:
    """Collects usage from any number of clients and threads."""

    def __init__(self, prices: PriceTable | None = None) -> None:
        """An empty ledger; with `prices`, calls are costed in the table's currency."""
        self.prices = prices
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], _Tally] = {}

    def _tally(self, stage: str, model: str) -> _Tally:
        return self._tallies.setdefault((stage, model), _Tally())

    def record_call(self, stage: str, model: str, usage: Usage, latency_s: float, *, cached: bool) -> None:
        """Count one call under (`stage`, `model`): a `cached` one adds only to the call counts; otherwise its
        tokens, `latency_s` and cost are added (evaluated tokens: the usage's, else prompt minus reused)."""
        with self._lock:
            tally = self._tally(stage, model)
            tally.calls += 1
            if cached:
                tally.cached_calls += 1
                return
            tally.prompt_tokens += usage.prompt_tokens
            tally.reused_tokens += usage.reused_tokens
            tally.evaluated_tokens += (
                usage.prompt_tokens - usage.reused_tokens if usage.evaluated_tokens is None else usage.evaluated_tokens
            )
            tally.completion_tokens += usage.completion_tokens
            tally.latency_s += latency_s
            cost = self.prices.cost(model, usage) if self.prices is not None else None
            if cost is not None:
                tally.cost = (tally.cost or 0.0) + cost

    def record_retry(self, stage: str, model: str) -> None:
        """Count one retry of a transient failure."""
        with self._lock:
            self._tally(stage, model).retries += 1

    def record_repair(self, stage: str, model: str) -> None:
        """Count one repair request after an invalid answer."""
        with self._lock:
            self._tally(stage, model).repairs += 1

    def record_failure(self, stage: str, model: str) -> None:
        """Count one call that failed for good."""
        with self._lock:
            self._tally(stage, model).failures += 1

    def report(self) -> UsageReport:
        """The usage so far, per (stage, model), sorted."""
        with self._lock:
            items = sorted(self._tallies.items())
            stages = [
                StageUsage(
                    stage=stage,
                    model=model,
                    calls=t.calls,
                    cached_calls=t.cached_calls,
                    retries=t.retries,
                    repairs=t.repairs,
                    failures=t.failures,
                    prompt_tokens=t.prompt_tokens,
                    reused_tokens=t.reused_tokens,
                    evaluated_tokens=t.evaluated_tokens,
                    completion_tokens=t.completion_tokens,
                    latency_s=t.latency_s,
                    cost=t.cost,
                )
                for (stage, model), t in items
            ]
        return UsageReport(currency=self.prices.currency if self.prices else "USD", stages=stages)
