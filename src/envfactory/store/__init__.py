"""`store`: the workspace on disk (DESIGN §9, §11). Imports only `spec`.

- `Workspace`: the directory layout (`catalog.sqlite`, `llm-cache.sqlite`, `runs/`, `envs/`) and
  `default_models_dir()` (`~/.cache/envfactory/models`).
- `write_atomic` / `atomic_writer`: files appear whole or not at all.
- `KVStore`: a SQLite (WAL) key-value cache with typed, versioned rows, safe across threads and
  processes (LLM responses, embeddings).
- `RunDir`: `runs/<run-id>/` with its `RunManifest`, resolved config, artifacts and logs.
- `StageDir`: `runs/<run-id>/<stage>/`, one stage's artifacts and its `StageManifest` (written last).

Contract:
- Inputs: a workspace root, run ids (letters, digits, `.`, `_`, `-`), stage names (lowercase letters,
  digits, `-`) and the values to store.
- Outputs: files written atomically (a temporary file renamed into place: whole or absent), canonical
  JSON and JSONL, manifests written last, and SQLite caches.
- Errors: an invalid id or name, a path leaving its directory, or a file that cannot be created or read
  raises `StoreError` naming the path.
- Determinism: canonical writers give the same bytes for the same values (sorted keys, one trailing
  newline); nothing here reads the clock except `KVStore` expiry, whose clock is injected.
"""

from envfactory.store.atomic import atomic_writer, stray_temporaries, write_atomic, write_text_atomic
from envfactory.store.kv import FORMAT_VERSION, KVStore, Row, model_kind, model_version
from envfactory.store.runs import RunDir, jsonl_bytes
from envfactory.store.stages import StageDir, file_sha256
from envfactory.store.workspace import (
    Workspace,
    check_run_id,
    default_models_dir,
    user_cache_dir,
)

__all__ = [
    "FORMAT_VERSION",
    "KVStore",
    "Row",
    "RunDir",
    "StageDir",
    "Workspace",
    "atomic_writer",
    "check_run_id",
    "default_models_dir",
    "file_sha256",
    "jsonl_bytes",
    "model_kind",
    "model_version",
    "stray_temporaries",
    "user_cache_dir",
    "write_atomic",
    "write_text_atomic",
]
