"""Embedding similarity between output and input fields, through the `llm` layer's `Embedder`.

Contract:
- A field is embedded as one short sentence: the tool's subject, the field's words and type, and the
  first sentence of its description (`field_text`). Equal texts are embedded once.
- `similar_pairs` returns, for every (output, input) pair whose cosine reaches `floor`, the cosine;
  rows are L2-normalised by the embedder, so a dot product is the cosine. Work is done in blocks so
  memory stays bounded (`block` outputs at a time).
- numpy is imported lazily: the deterministic, model-free build never needs it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from envfactory.graph.match import FieldView, last_segment
from envfactory.graph.names import words

if TYPE_CHECKING:
    from envfactory.llm import Embedder

_SENTENCE = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of `text` with white space folded, cut to `limit` characters."""
    text = " ".join(text.split())
    head = _SENTENCE.split(text, maxsplit=1)[0] if text else ""
    return head[:limit]


def field_text(view: FieldView, tool_subject: str, description: str) -> str:
    """The sentence a field is embedded as."""
    path_words = " ".join(w for segment in view.path.split(".")[-2:] for w in words(segment.removesuffix("[]")))
    name = " ".join(words(last_segment(view.path)))
    kind = view.item_type + " list" if view.type == "array" and view.item_type else view.type
    lead = f"{tool_subject}: {path_words or name} ({kind})"
    sentence = first_sentence(description)
    return f"{lead}. {sentence}" if sentence else lead


def similar_pairs(embedder: Embedder, out_texts: Sequence[str], in_texts: Sequence[str], floor: float,
                  block: int = 2048) -> dict[tuple[int, int], float]:
    """(output position, input position) → cosine, for cosines ≥ `floor`."""
    import numpy as np

    if not out_texts or not in_texts:
        return {}
    unique = sorted(set(out_texts) | set(in_texts))
    position = {text: i for i, text in enumerate(unique)}
    vectors = np.asarray(embedder.embed(unique), dtype=np.float32)
    outs = vectors[[position[t] for t in out_texts]]
    ins = vectors[[position[t] for t in in_texts]]
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(outs), block):
        sims = outs[start:start + block] @ ins.T
        rows, cols = np.nonzero(sims >= floor)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            found[(start + r, c)] = round(float(sims[r, c]), 4)
    return found
