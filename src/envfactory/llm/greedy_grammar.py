"""Greedy grammar-constrained decoding that checks the grammar against one token, not the vocabulary.

llama-cpp-python samples a grammar-constrained token by running its sampler chain (penalties, grammar,
greedy) over the whole vocabulary: the grammar sampler decodes and matches every one of the model's
~150,000 token pieces against the grammar's stacks at every step, on one thread. On a quiet machine that
is a small share of a decode step; when other processes compete for the cores (an evaluation or
synthesis pool) it is what they starve, and a 0.5B τ² episode took 990.9 s instead of 88.7 s without
this check (docs/llm.md). llama.cpp's own command-line sampler avoids the pass by sampling
first and consulting the grammar only for the chosen token; this module does the same for greedy
decoding, where it is exact:

- a grammar only masks tokens (their logit becomes -inf) and greedy selection takes the first token of
  the highest logit, in token-id order (`llama_sampler_greedy_apply`: `>` over ids ascending);
- so if the vocabulary's first highest-logit token is one the grammar allows, it is the token the full
  chain would select. It is checked by applying the chain's own grammar sampler to a one-candidate array
  (the grammar judges each candidate on its own: its piece against the current stacks) and accepted
  into the chain exactly as `llama_sampler_sample` accepts the token it selects;
- otherwise — the grammar rejects it, or a logit is NaN — the step runs the original full chain.

Sampled decoding (temperature > 0) always runs the original chain: filtering after sampling would
change the distribution. `tests/llm/test_greedy_grammar.py` checks token-for-token identity with the
original path on grammar-constrained requests; `benchmarks/llm_prefix.py` reports the time saved.

This module imports llama_cpp at import time; `local` imports it only when a model is loaded.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama

_GRAMMAR_SAMPLER_NAME = b"grammar"


def _grammar_sampler(chain: Any) -> Any | None:
    """The grammar sampler of a llama.cpp sampler chain, or None when the chain has none."""
    for position in range(llama_cpp.llama_sampler_chain_n(chain)):
        sampler = llama_cpp.llama_sampler_chain_get(chain, position)
        if llama_cpp.llama_sampler_name(sampler) == _GRAMMAR_SAMPLER_NAME:
            return sampler
    return None


def greedy_token_if_grammar_allows(chain: Any, context: Any, output_index: int, n_vocab: int) -> int | None:
    """The token the greedy `chain` (penalties off, grammar, greedy) would select at `output_index`,
    accepted into the chain, if the grammar allows the vocabulary's first highest-logit token; None —
    with the chain untouched — when it does not, when a logit is NaN or when the chain has no grammar,
    so the caller runs the full chain."""
    grammar = _grammar_sampler(chain)
    if grammar is None:
        return None
    pointer = llama_cpp.llama_get_logits_ith(context, output_index)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
    best = int(np.argmax(logits))  # the first maximum, as llama.cpp's greedy sampler picks it
    value = float(logits[best])
    if math.isnan(value):  # argmax stops at a NaN; llama.cpp's comparison would not
        return None
    candidate = llama_cpp.llama_token_data(best, value, 0.0)
    candidates = llama_cpp.llama_token_data_array(ctypes.pointer(candidate), 1, -1, False)
    llama_cpp.llama_sampler_apply(grammar, ctypes.byref(candidates))
    if candidate.logit == -math.inf:
        return None
    llama_cpp.llama_sampler_accept(chain, best)
    return best


class LazyGrammarLlama(Llama):
    """`Llama` whose greedy grammar-constrained steps consult the grammar for the chosen token only
    (see the module docstring); `lazy_grammar = False` restores the library's own sampling."""

    lazy_grammar: bool = True
    # Steps decided by the one-token check and steps that ran the full chain with a grammar (counted for
    # tests and benchmarks: the exactness tests must exercise both).
    lazy_grammar_steps: int = 0
    full_grammar_steps: int = 0

    def sample(self, *args: Any, **kwargs: Any) -> int:  # noqa: D102 - contract as Llama.sample
        if (
            self.lazy_grammar and not args and kwargs.get("grammar") is not None and kwargs.get("temp") == 0.0
            and kwargs.get("logits_processor") is None and kwargs.get("repeat_penalty", 1.0) == 1.0
            and kwargs.get("frequency_penalty", 0.0) == 0.0 and kwargs.get("presence_penalty", 0.0) == 0.0
            and self._sampler is not None and kwargs.get("idx") is not None
        ):
            token = greedy_token_if_grammar_allows(
                self._sampler.sampler, self._ctx.ctx, kwargs["idx"] - self.n_tokens, self._n_vocab
            )
            if token is not None:
                self.lazy_grammar_steps += 1
                return token
        if kwargs.get("grammar") is not None:
            self.full_grammar_steps += 1
        token_id: int = super().sample(*args, **kwargs)
        return token_id
