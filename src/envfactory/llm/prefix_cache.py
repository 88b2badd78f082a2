"""Exact prompt-prefix reuse for the embedded model: block-aligned evaluation and a bounded KV-state cache.

Why blocks. llama.cpp computes a token's KV entries (and the last logits) with kernels whose rounding
depends on how many tokens are decoded together. Resuming a prompt from an arbitrary cached position
therefore decodes the rest in other batch shapes than a cold evaluation and changes the answers. Here
every prompt is evaluated the same way, cached or not:

- the prompt minus its last token is decoded in blocks of `block_tokens` starting at position 0 (the
  last block may be shorter); then the last token is decoded alone (by the sampler's own `eval`, which
  always decodes the token whose logits are sampled on its own);
- after a full block the sequence's KV state (`llama_state_seq_get_data`: KV cells only, no logits
  buffer) is stored under the hash of (model fingerprint, tokens up to that boundary) — at the last
  four boundaries of the prompt, at 1, 2, 4, 8, ... blocks (`_kept_boundaries`) and below the positions
  the caller names (`keep`: where its closing schema begins), not at every one;
- a request restores the longest stored boundary of its prompt (`llama_state_seq_set_data`) and decodes
  the remaining blocks exactly as a cold evaluation would. Every decode sees the same KV bytes and the
  same batch shape in both cases, so every logit is bit-identical, and so is the answer.

Contract:
- `KVStateCache` is a bounded LRU keyed by `boundary_keys`; its size is the sum of the stored states'
  lengths and never exceeds `max_bytes` (a state larger than that is not stored). Each entry carries a
  CRC-32 of its bytes; an entry whose bytes no longer match, or that llama.cpp refuses to restore, is
  dropped and the prompt is evaluated cold — a damaged cache can cost time, never change an answer.
- `evaluate_prompt` leaves the `Llama` object as if it had evaluated `tokens[:-1]` itself (`n_tokens`,
  `input_ids`), so `create_completion` decodes only the last token and then generates.
- Not thread-safe: the provider calls it under its model lock.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SEQ_ID = 0
KEEP_LAST = 4  # boundaries stored at the end of each prompt (see `_kept_boundaries`)


@dataclass(frozen=True, slots=True)
class PromptEvaluation:
    """How a prompt was evaluated: its length, how many tokens came from the cache, how many were decoded."""

    prompt_tokens: int
    reused_tokens: int
    evaluated_tokens: int


@dataclass(slots=True)
class CacheStats:
    """Counters of a `KVStateCache` (they describe a run; they never enter hashed artifacts)."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    evicted: int = 0
    rejected: int = 0  # damaged entries (checksum mismatch or refused by llama.cpp), dropped


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    n_tokens: int
    crc32: int


class KVStateCache:
    """Bounded LRU of sequence KV states, by bytes (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        """An empty cache holding at most `max_bytes` of states (0: stores nothing); negative is a `ValueError`."""
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        """The bytes of the states held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str, n_tokens: int) -> bytes | None:
        """The state stored under `key` for a prefix of `n_tokens` tokens, or None (damaged: dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.n_tokens != n_tokens or zlib.crc32(entry.data) != entry.crc32:
            logger.warning("dropping a damaged KV cache entry (%d tokens)", entry.n_tokens)
            self.reject(key)
            return None
        self._entries.move_to_end(key)
        return entry.data

    def put(self, key: str, n_tokens: int, data: bytes) -> None:
        """Store `data`; least recently used entries go until the total fits `max_bytes`."""
        if len(data) > self.max_bytes:
            return
        self.discard(key)
        while self._entries and self._bytes + len(data) > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.data)
            self.stats.evicted += 1
        self._entries[key] = _Entry(data=data, n_tokens=n_tokens, crc32=zlib.crc32(data))
        self._bytes += len(data)
        self.stats.stored += 1

    def discard(self, key: str) -> None:
        """Remove the entry under `key`, if any (not counted as a rejection)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.data)

    def reject(self, key: str) -> None:
        """Drop a damaged entry and count it."""
        self.discard(key)
        self.stats.rejected += 1

    def clear(self) -> None:
        """Remove every entry (the statistics are kept)."""
        self._entries.clear()
        self._bytes = 0


def boundary_keys(fingerprint: str, tokens: Sequence[int], block_tokens: int) -> list[tuple[int, str]]:
    """`(position, key)` for every full-block boundary within `tokens`: the key hashes the fingerprint
    (model file and evaluation settings) and the tokens before the position."""
    digest = hashlib.sha256(fingerprint.encode("utf-8") + b"\0")
    keys: list[tuple[int, str]] = []
    for end in range(block_tokens, len(tokens) + 1, block_tokens):
        digest.update(np.asarray(tokens[end - block_tokens:end], dtype="<i4").tobytes())
        keys.append((end, digest.copy().hexdigest()))
    return keys


def _memory_clear(llama: Any) -> None:
    import llama_cpp

    memory = llama_cpp.llama_get_memory(llama._ctx.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
    llama.reset()


def _kept_boundaries(positions: list[int], block_tokens: int, last: int = KEEP_LAST) -> set[int]:
    """Which boundaries of a prompt get their state stored: the last `last` ones (the next request of a
    conversation repeats all but the prompt's end) and those at 1, 2, 4, 8, ... blocks (a request that
    diverges early still finds one at least half as long as the shared part). Storing every boundary
    would copy a quadratic number of bytes per cold prompt."""
    doubling = {block_tokens << shift for shift in range(max(len(positions), 1).bit_length())}
    return set(positions[-last:]) | (doubling & set(positions))


def _state_size(llama: Any) -> int:
    import llama_cpp

    return int(llama_cpp.llama_state_seq_get_size(llama._ctx.ctx, SEQ_ID))


def _save_state(llama: Any) -> bytes:
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llama._ctx.ctx, SEQ_ID)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llama._ctx.ctx, buffer, size, SEQ_ID)
    return ctypes.string_at(buffer, written)


def _restore_state(llama: Any, data: bytes, prefix: Sequence[int]) -> bool:
    """Load `data` as the KV state of `prefix`; False (and an empty context) when llama.cpp refuses it."""
    import llama_cpp

    _memory_clear(llama)
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    read = llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(data), SEQ_ID)
    if read != len(data) or llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(llama._ctx.ctx),
                                                                SEQ_ID) != len(prefix) - 1:
        _memory_clear(llama)
        return False
    llama.input_ids[: len(prefix)] = prefix
    llama.n_tokens = len(prefix)
    return True


def evaluate_prompt(
    llama: Any, tokens: Sequence[int], *, block_tokens: int, fingerprint: str, cache: KVStateCache | None,
    keep: Sequence[int] = (),
) -> PromptEvaluation:
    """Evaluate `tokens[:-1]` block by block (restoring the longest cached boundary first); see the
    module docstring. `keep`: positions where later requests are likely to diverge (e.g. where a closing
    schema begins); the boundary at or below each is stored too. The caller then samples with
    `create_completion(tokens)`."""
    if llama.n_batch != block_tokens:
        raise ValueError(f"the context decodes {llama.n_batch} tokens at a time, not blocks of {block_tokens}")
    body = list(tokens[:-1])
    keys = boundary_keys(fingerprint, body, block_tokens) if cache is not None else []
    start = 0
    _memory_clear(llama)
    if cache is not None:
        for position, key in reversed(keys):
            data = cache.get(key, position)
            if data is None:
                continue
            if _restore_state(llama, data, body[:position]):
                cache.stats.hits += 1
                start = position
                break
            logger.warning("llama.cpp refused a cached KV state (%d tokens); evaluating cold", position)
            cache.reject(key)
        else:
            cache.stats.misses += 1
    kept = _kept_boundaries([position for position, _ in keys], block_tokens)
    kept |= {position // block_tokens * block_tokens for position in keep}
    key_at = {position: key for position, key in keys if position in kept}
    for position in range(start, len(body), block_tokens):
        chunk = body[position:position + block_tokens]
        llama.eval(chunk)
        end = position + len(chunk)
        if cache is not None and end in key_at and key_at[end] not in cache and _state_size(llama) <= cache.max_bytes:
            cache.put(key_at[end], end, _save_state(llama))
    return PromptEvaluation(prompt_tokens=len(tokens), reused_tokens=start, evaluated_tokens=len(tokens) - start)
