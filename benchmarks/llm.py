"""Model-layer speed: local generation, the response cache, embeddings (and the catalog, through its hook).

Run: `python benchmarks/llm.py [--quick] [--json OUT] [--with-catalog]`. Every figure is printed next to a
baseline measured in the same run and their ratio:
- generation tokens/s of each installed local model through `LocalProvider` (free text and
  grammar-constrained JSON) against llama-cpp-python's own `create_chat_completion` on the same loaded
  model, prompt and sampling: the cost of our prompt rendering, parsing and validation;
- cache-hit latency of `ManagedClient` (SQLite, from disk) against a live call of the same request;
- embeddings/s of `SentenceTransformerEmbedder` against sentence-transformers' `encode` on the same
  model, and of `CachedEmbedder` on a warm cache against the live embedder;
- the static (model2vec) embedder against MiniLM in the same run: embeddings/s, and the mean cosine of
  related and of unrelated sentence pairs (ratio vs MiniLM); its build time (environment, distillation)
  as recorded in its manifest, or measured now with `--rebuild-static` (distillation only, into a
  temporary folder, reusing the distillation environment). The model is built first when absent;
- `--with-catalog`: the catalog load/search figures of `benchmarks/catalog.py` (`bench_catalog()`).
`--quick` runs SmolLM2 only, with fewer repetitions; `--embeddings-only` skips generation and the cache. Timings depend on the machine's load: run alone.

`--prefix-reuse` measures only the local provider's block-aligned prefix cache (`llm.prefix_cache`): the
agent loop runs one BFCL multi-turn task, one τ² airline task (with the user simulator) and one library
task (the bundled `tracker` environment, three scripted turns) with the bundled 0.5B model, each episode
three times, interleaved: cache off (the baseline), cache on, and a cache too small to keep more than a
few states (cold evaluations after evictions). Figures: model seconds per step and per episode, prompt
tokens evaluated per step, and whether every response (bytes, generated token ids) and the trajectory are
identical in the three runs. `--record-requests FILE` writes every request of the runs (gzipped JSONL):
`tests/llm/fixtures/agent_requests.jsonl.gz` is made so.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from envfactory.llm import (
    LOCAL_MODELS,
    CachedEmbedder,
    ChatMessage,
    ChatRequest,
    LocalConfig,
    LocalProvider,
    ManagedClient,
    ResponseFormat,
    SentenceTransformerEmbedder,
    StaticEmbedder,
    StaticEmbedderConfig,
    build_static_model,
    model_status,
)
from envfactory.store import KVStore, default_models_dir

PREFIX_MODEL = "qwen2.5-coder-0.5b"

PROMPT = "Write a short story about a robot who learns to paint. Use at least three paragraphs."
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "hobbies": {"type": "array", "items": {"type": "string"}},
        "biography": {"type": "string"},
    },
    "required": ["name", "age", "hobbies", "biography"],
}


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _row(name: str, value: float, unit: str, baseline_name: str, baseline: float, higher_is_better: bool) -> dict[str, Any]:
    ratio = value / baseline if baseline else float("nan")
    return {
        "figure": name, "value": value, "unit": unit, "baseline": baseline_name, "baseline_value": baseline,
        "ratio": ratio, "higher_is_better": higher_is_better,
    }


def _interleaved(first: Callable[[], float], second: Callable[[], float], repeat: int) -> tuple[float, float]:
    """Medians of two measurements taken alternately, so that load changes hit both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(first())
        b.append(second())
    return _median(a), _median(b)


def _tokens_per_second(run: Callable[[], int]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        tokens = run()
        return tokens / (time.perf_counter() - start)
    return measure


def bench_generation(key: str, models_dir: Path, max_tokens: int, repeat: int) -> list[dict[str, Any]]:
    provider = LocalProvider(LocalConfig(model=key, models_dir=models_dir))
    start = time.perf_counter()
    provider.load()
    load_s = time.perf_counter() - start
    llama: Any = provider._llama  # the same loaded model for the baseline
    free = ChatRequest(messages=[ChatMessage.user(PROMPT)], max_tokens=max_tokens)
    structured = ChatRequest(
        messages=[ChatMessage.user("Invent a person with a long biography.")], max_tokens=max_tokens,
        response_format=ResponseFormat(name="person", json_schema=PERSON),
    )

    def ours(request: ChatRequest) -> Callable[[], int]:
        return lambda: provider.chat(request).usage.completion_tokens

    def raw(messages: list[dict[str, str]], **extra: Any) -> Callable[[], int]:
        def run() -> int:
            out = llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=0.0, top_p=1.0, top_k=0, min_p=0.0,
                repeat_penalty=1.0, seed=0, **extra,
            )
            return int(out["usage"]["completion_tokens"])
        return run

    ours(free)()  # warm-up (first call pays for buffers)
    free_ours, free_raw = _interleaved(
        _tokens_per_second(ours(free)), _tokens_per_second(raw([{"role": "user", "content": PROMPT}])), repeat
    )
    json_ours, json_raw = _interleaved(
        _tokens_per_second(ours(structured)),
        _tokens_per_second(raw([{"role": "user", "content": "Invent a person with a long biography."}],
                               response_format={"type": "json_object", "schema": PERSON})),
        repeat,
    )
    provider.close()
    return [
        {"figure": f"{key}: load", "value": load_s, "unit": "s", "baseline": "", "baseline_value": None,
         "ratio": None, "higher_is_better": False},
        _row(f"{key}: free text", free_ours, "tok/s", "llama-cpp create_chat_completion", free_raw, True),
        _row(f"{key}: JSON-schema grammar", json_ours, "tok/s", "llama-cpp json_object+schema", json_raw, True),
        _row(f"{key}: grammar vs free text", json_ours, "tok/s", "our free text", free_ours, True),
    ]


def bench_cache(models_dir: Path, repeat: int) -> list[dict[str, Any]]:
    provider = LocalProvider(LocalConfig(model="smollm2-135m", models_dir=models_dir))
    provider.load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp:
        path = Path(tmp) / "llm-cache.sqlite"
        live_times = []
        for i in range(repeat):
            request = ChatRequest(messages=[ChatMessage.user(f"Name a colour. ({i})")], max_tokens=16)
            with KVStore(path) as cache:
                start = time.perf_counter()
                ManagedClient(provider, cache=cache).chat(request)
                live_times.append(time.perf_counter() - start)
        hit_times = []
        with KVStore(path) as cache:
            client = ManagedClient(provider, cache=cache)
            calls = provider.calls
            for _ in range(20):
                for i in range(repeat):
                    request = ChatRequest(messages=[ChatMessage.user(f"Name a colour. ({i})")], max_tokens=16)
                    start = time.perf_counter()
                    client.chat(request)
                    hit_times.append(time.perf_counter() - start)
            assert provider.calls == calls, "a cache hit reached the model"
        live, hit = _median(live_times), _median(hit_times)
        rows.append(_row("cache hit (SmolLM2 request)", hit * 1e3, "ms", "live SmolLM2 call", live * 1e3, False))
    provider.close()
    return rows


def bench_embeddings(sentences: int, repeat: int) -> list[dict[str, Any]]:
    texts = [f"Operation {i}: list the {i % 37} most recent invoices of customer {i % 101}" for i in range(sentences)]
    embedder = SentenceTransformerEmbedder()
    start = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - start
    model: Any = embedder._model
    embedder.embed(texts[:64])  # warm-up
    ours, raw = _interleaved(
        lambda: _rate(lambda: embedder.embed(texts), sentences),
        lambda: _rate(
            lambda: model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False), sentences
        ),
        repeat,
    )
    with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp, KVStore(Path(tmp) / "c.sqlite") as cache:
        cached = CachedEmbedder(embedder, cache)
        cold = _rate(lambda: cached.embed(texts), sentences)
        warm = _median([_rate(lambda: cached.embed(texts), sentences) for _ in range(repeat)])
        live = _rate(lambda: embedder.embed(texts), sentences)
    return [
        {"figure": "MiniLM: load (torch + model)", "value": load_s, "unit": "s", "baseline": "", "baseline_value": None,
         "ratio": None, "higher_is_better": False},
        _row(f"MiniLM: embed {sentences} sentences", ours, "sent/s", "sentence-transformers encode", raw, True),
        _row("MiniLM: cached, cold (embed + store)", cold, "sent/s", "live embedder", live, True),
        _row("MiniLM: cached, warm (all hits)", warm, "sent/s", "live embedder", live, True),
    ]


PAIRS = [  # (sentence, paraphrase, unrelated sentence)
    ("Book a flight to Paris.", "Reserve a plane ticket to Paris.", "Compute the VAT on an invoice."),
    ("Cancel my order before it ships.", "Stop the purchase from being delivered.", "List the pets in the shelter."),
    ("Send a message to the queue.", "Put a job in the waiting line for a worker.", "Rotate the database password."),
    ("Create a calendar event for Monday.", "Schedule a meeting on Monday.", "Upload a photo of my dog."),
    ("Delete the user's account.", "Remove this customer's profile.", "What is the weather in Oslo tomorrow?"),
]


def _pair_cosines(embed: Callable[[list[str]], Any]) -> tuple[float, float]:
    related, unrelated = [], []
    for a, b, c in PAIRS:
        vectors = embed([a, b, c])
        related.append(float(vectors[0] @ vectors[1]))
        unrelated.append(float(vectors[0] @ vectors[2]))
    return statistics.fmean(related), statistics.fmean(unrelated)


def _figure(name: str, value: float, unit: str) -> dict[str, Any]:
    return {"figure": name, "value": value, "unit": unit, "baseline": "", "baseline_value": None, "ratio": None,
            "higher_is_better": False}


def bench_static(sentences: int, repeat: int, models_dir: Path, rebuild: bool) -> list[dict[str, Any]]:
    config = StaticEmbedderConfig(models_dir=models_dir)
    build = build_static_model(config)
    rows: list[dict[str, Any]] = []
    if rebuild:
        with tempfile.TemporaryDirectory(prefix="envfactory-bench-") as tmp:
            fresh = build_static_model(StaticEmbedderConfig(models_dir=Path(tmp)), force=True)
        rows.append(_figure("static: build, distillation (measured now)", fresh.distill_seconds, "s"))
    seconds = build.manifest.get("seconds", {})
    rows.append(_figure("static: build, environment (manifest)", float(seconds.get("environment", 0.0)), "s"))
    rows.append(_figure("static: build, distillation (manifest)", float(seconds.get("distill", 0.0)), "s"))
    texts = [f"Operation {i}: list the {i % 37} most recent invoices of customer {i % 101}" for i in range(sentences)]
    static, minilm = StaticEmbedder(config), SentenceTransformerEmbedder()
    start = time.perf_counter()
    static.load()
    rows.append(_figure("static: load (model2vec, no torch)", time.perf_counter() - start, "s"))
    static.embed(texts[:64])
    minilm.embed(texts[:64])  # warm-up
    fast, slow = _interleaved(lambda: _rate(lambda: static.embed(texts), sentences),
                              lambda: _rate(lambda: minilm.embed(texts), sentences), repeat)
    rows.append(_row(f"static: embed {sentences} sentences", fast, "sent/s", "MiniLM embedder", slow, True))
    static_related, static_unrelated = _pair_cosines(static.embed)
    minilm_related, minilm_unrelated = _pair_cosines(minilm.embed)
    rows.append(_row("static: related-pair cosine (mean of 5)", static_related, "cos", "MiniLM", minilm_related, True))
    rows.append(_row("static: unrelated-pair cosine (mean of 5)", static_unrelated, "cos", "MiniLM",
                     minilm_unrelated, False))
    return rows


def _rate(run: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def bench_catalog_hook(quick: bool) -> list[dict[str, Any]]:
    """The resources engineer's catalog figures (`benchmarks/catalog.py`), when that file is present."""
    path = Path(__file__).with_name("catalog.py")
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location("envfactory_bench_catalog", path)
    if spec is None or spec.loader is None:
        return []
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.bench_catalog(quick=quick)
    return [{"figure": f"catalog: {name}", "value": value, "unit": "", "baseline": "", "baseline_value": None,
             "ratio": None, "higher_is_better": True} for name, value in figures.items()]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value and abs(value) < 0.01:
            return f"{value:.1e}"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="SmolLM2 only, fewer repetitions")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--with-catalog", action="store_true", help="add benchmarks/catalog.py's figures")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--embeddings-only", action="store_true", help="only the embedding figures")
    parser.add_argument("--rebuild-static", action="store_true",
                        help="also time a fresh distillation of the static model (into a temporary folder)")
    parser.add_argument("--prefix-reuse", action="store_true",
                        help="only the prefix-cache figures: agent episodes with the cache on, off and evicting")
    parser.add_argument("--prefix-model", default=PREFIX_MODEL, help="local model of --prefix-reuse")
    parser.add_argument("--record-requests", type=Path, help="--prefix-reuse: write every request here (.jsonl.gz)")
    parser.add_argument("--prefix-suites", default="bfcl,tau2,library",
                        help="--prefix-reuse: which tasks (comma-separated: bfcl, tau2, library)")
    parser.add_argument("--prefix-modes", default="off,on,evicting",
                        help="--prefix-reuse: which runs of each episode (off and on always; plain, evicting and warm "
                             "optional)")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 3
    rows: list[dict[str, Any]] = []
    if args.prefix_reuse:
        from llm_prefix import bench_prefix_reuse  # benchmarks/llm_prefix.py

        rows = bench_prefix_reuse(args.models_dir, args.prefix_model, args.record_requests,
                                  tuple(args.prefix_suites.split(",")), tuple(args.prefix_modes.split(",")))
        _print_rows(rows, args.json)
        return 0
    keys = ["smollm2-135m"] if args.quick else ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    for key in [] if args.embeddings_only else keys:
        if not model_status(LOCAL_MODELS[key], args.models_dir).installed:
            print(f"skipping {key}: its packages are not installed", file=sys.stderr)
            continue
        rows += bench_generation(key, args.models_dir, max_tokens=64 if args.quick else 128, repeat=repeat)
    if not args.embeddings_only:
        rows += bench_cache(args.models_dir, repeat=5)
    rows += bench_embeddings(250 if args.quick else 1000, repeat)
    rows += bench_static(250 if args.quick else 1000, repeat, args.models_dir, args.rebuild_static)
    if args.with_catalog:
        rows += bench_catalog_hook(args.quick)
    _print_rows(rows, args.json)
    return 0


def _print_rows(rows: list[dict[str, Any]], json_path: Path | None) -> None:
    print(f"{'figure':52} {'value':>10} {'unit':7} {'baseline':30} {'baseline':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row['figure']:52} {_fmt(row['value']):>10} {row['unit']:7} {row['baseline']:30} "
              f"{_fmt(row['baseline_value']):>10} {_fmt(row['ratio']):>7}")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


if __name__ == "__main__":
    sys.exit(main())
