"""Distil a sentence-transformers model folder into a model2vec static model (run as a script).

This file runs *by path* inside the throwaway distillation environment (`model2vec[distill]`, which
pins an older transformers), never imported by envfactory: it uses only the standard library and the
libraries of that environment. Usage:

    python _distill_job.py SOURCE_DIR OUT_DIR PCA_DIMS

It writes the static model into OUT_DIR (which the caller then hashes and moves into place) and prints
one JSON line with the versions that made it.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time


def main(argv: list[str]) -> int:
    source, out, pca_dims = argv[0], argv[1], int(argv[2])
    started = time.perf_counter()
    from model2vec.distill import distill

    model = distill(model_name=source, pca_dims=pca_dims, device="cpu")
    model.save_pretrained(out)
    versions = {name: importlib.metadata.version(name) for name in ("model2vec", "transformers", "torch")}
    print(json.dumps({"versions": versions, "seconds": round(time.perf_counter() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
