"""The reward as a list of named component functions (issue #15): recorded scores unchanged, and a
component can be added, replaced or re-weighted from the reward spec without touching the others.

The corpus (`fixtures/reward_corpus.jsonl.gz`, built by `reward_corpus.py`) holds episodes over the
bundled shop, tracker and calendar environments with the rewards recorded for them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from reward_corpus import RecordedEpisode, build_corpus, load_corpus

from envfactory.spec import RewardComponent, RewardTerm
from envfactory.verify import RewardConfig, score_episode
from envfactory.verify.reward_components import COMPONENTS, DEFAULT_TERMS, EpisodeFacts
from envfactory.verify.rewards import reward_terms


@pytest.fixture(scope="module")
def corpus() -> list[RecordedEpisode]:
    return load_corpus()


def test_every_recorded_episode_scores_as_recorded(corpus: list[RecordedEpisode]) -> None:
    assert len(corpus) >= 75
    changed = [e.label for e in corpus if e.rescore().model_dump_json() != e.reward.model_dump_json()]
    assert changed == [], f"rewards differ from the recorded ones: {changed}"


def test_the_corpus_is_what_its_builder_records(corpus: list[RecordedEpisode]) -> None:
    rebuilt = build_corpus()
    assert [e.label for e in rebuilt] == [e.label for e in corpus]
    assert [e.model_dump_json() for e in rebuilt] == [e.model_dump_json() for e in corpus]


def test_the_corpus_spans_the_score_range(corpus: list[RecordedEpisode]) -> None:
    totals = {e.reward.total for e in corpus}
    assert 0.0 in totals and 1.0 in totals and len(totals) >= 10


def _constant(facts: EpisodeFacts, term: RewardTerm) -> RewardComponent:
    return RewardComponent(name=term.name, score=term.params.get("value", 0.0), weight=term.weight,
                           detail=f"{len(facts.log)} calls seen")


def test_a_component_is_added_without_changing_the_others(corpus: list[RecordedEpisode]) -> None:
    episode = next(e for e in corpus if e.label == "shop/altered")
    terms = (*DEFAULT_TERMS, RewardTerm(name="politeness", weight=0.5, params={"value": 1.0}))
    reward = episode.rescore(lambda *a, **kw: _score_with(terms, {"politeness": _constant}, *a, **kw))
    before = episode.reward
    assert [c for c in reward.components if c.name != "politeness"] == before.components
    assert reward.component("politeness") == RewardComponent(name="politeness", score=1.0, weight=0.5,
                                                             detail=f"{len(episode.log)} calls seen")
    assert reward.total > before.total


def test_a_component_is_replaced_by_name(corpus: list[RecordedEpisode]) -> None:
    episode = next(e for e in corpus if e.label == "shop/no_op")
    terms = tuple(RewardTerm(name="changed_state_off", params={"value": 1.0}) if t.name == "changed_state" else t
                  for t in DEFAULT_TERMS)
    # A gate replaced by a constant score: the no-op keeps its other components and loses the gate.
    reward = episode.rescore(lambda *a, **kw: _score_with(terms, {"changed_state_off": _constant}, *a, **kw))
    assert reward.component("changed_state") is None and reward.total > 0.0
    assert reward.component("final_state") == episode.reward.component("final_state")


def test_the_task_reward_spec_names_components_and_weights(corpus: list[RecordedEpisode]) -> None:
    episode = next(e for e in corpus if e.label == "shop/altered")
    spec = episode.task.reward.model_copy(update={
        "components": [RewardTerm(name="final_state", weight=1.0), RewardTerm(name="gold_calls", weight=1.0)],
        "calls_weight": 3.0,
    })
    task = episode.task.model_copy(update={"reward": spec})
    assert [(t.name, t.weight) for t in reward_terms(task, RewardConfig())] == [("final_state", 1.0), ("gold_calls", 3.0)]
    reward = episode.model_copy(update={"task": task}).rescore()
    assert [c.name for c in reward.components] == ["final_state", "gold_calls"]
    state, calls = (reward.component(n).score for n in ("final_state", "gold_calls"))  # type: ignore[union-attr]
    assert reward.total == pytest.approx((state + 3 * calls) / 4)  # type: ignore[operator]


def test_an_unknown_component_is_refused(corpus: list[RecordedEpisode]) -> None:
    episode = corpus[0]
    with pytest.raises(ValueError, match="unknown reward component 'nope'"):
        episode.rescore(lambda *a, **kw: _score_with((RewardTerm(name="nope"),), {}, *a, **kw))


def test_every_default_term_names_a_built_in_component() -> None:
    assert {t.name for t in DEFAULT_TERMS} <= set(COMPONENTS)


def _score_with(terms, functions, *args, config: RewardConfig, **kw):  # type: ignore[no-untyped-def]
    return score_episode(*args, config=replace(config, terms=terms, components=functions), **kw)
