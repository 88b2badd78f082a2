"""The thresholds the combined edge decision uses, and where they come from.

They are calibrated on the calibration half of the committed labelled set
(`graph/data/edge_labels.jsonl`, rows with `split: calibration`) with `envfactory graph eval --calibrate`,
against this repository's own matcher and the packaged all-MiniLM-L6-v2 embeddings; the test half is
never used to choose them. They are not the reference method's 0.85 (tuned for BGE-M3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """`schema` and `embedding` decide the combined graph (an edge holds when its schema score reaches
    `schema`, or its cosine reaches `embedding` and the schemas do not conflict); `schema_alone` and
    `embedding_alone` are each provenance's own best threshold, used to report it on its own. 1.01
    means "off": no cosine reaches it."""

    schema: float
    embedding: float
    schema_alone: float = 0.0
    embedding_alone: float = 1.01

    def as_dict(self) -> dict[str, float]:
        """The four thresholds by name, as `graph eval` reports them."""
        return {"schema": self.schema, "embedding": self.embedding, "schema_alone": self.schema_alone,
                "embedding_alone": self.embedding_alone}


# `envfactory graph eval --calibrate` on the committed labels (calibration split: 255 rows, 8 services),
# all-MiniLM-L6-v2 embeddings, precision floor 0.9. The combined decision keeps embedding-only edges off:
# on the calibration split they add false positives and no true ones at any cosine.
DEFAULT_THRESHOLDS = Thresholds(schema=0.45, embedding=1.01, schema_alone=0.45, embedding_alone=0.52)
