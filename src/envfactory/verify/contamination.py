"""Contamination scores: how much our environments' tools and our tasks overlap external benchmarks.

Pure functions over data passed in: our `EnvSpec`s and `Task`s, the benchmarks' `BenchmarkToolSet`s and
`BenchmarkTask`s (loaded by `envfactory.resources.benchmarks`), and optionally an embed function
(texts → vectors, e.g. `llm.make_embedder("static").embed`). Same inputs ⇒ the same report, byte for byte:
every score is rounded to 4 decimals and every list has a stated order.

Tool level, for one of our tools `a` and one benchmark tool `b` (each score in [0, 1]):
- `name`: Dice overlap of the names' normalised word sets. Names are split on case changes and on
  anything but letters and digits, lower-cased, singularised; a few abbreviations are expanded (`ls` → list, `mkdir` → make
  directory, `dir`/`folder` → directory, ...), verb synonyms map to one verb (get/fetch/retrieve/show/
  display/read/view, list/browse, search/find/lookup/grep, create/add/make/new/register/touch,
  update/modify/change/edit/set, delete/remove/erase, move/rename, copy/duplicate) and filler words
  (by, all, the, ...) are dropped.
- `signature`: Jaccard overlap of the normalised parameter names; a shared name whose JSON types differ
  counts half. Two tools without parameters score 0.5 (no evidence either way).
- `text`: with an embed function, the cosine similarity of the two "name words: description" texts,
  mapped to [0, 1] by `max(0, (cos - 0.3) / 0.7)` (unrelated short texts sit near 0.3 with sentence
  embedders); without one, the cosine overlap of their normalised content-word sets. The report
  says which (`text_method`).
- `score = 0.45·name + 0.2·signature + 0.35·text`.

Tool-set level, for one environment against one benchmark tool set: pairs scoring at least
`pair_threshold` (0.5) are matched one-to-one, greedily from the best pair down (ties by tool name).
`score = Σ matched pair scores / min(|our tools|, |their tools|)`: 1.0 means one set is a renamed copy
of (a subset of) the other, wherever it sits. `coverage` is the share of their tools matched.

Decision (`contamination_reasons`, `is_contaminated`): an environment is contaminated when its provenance
names a benchmark package or resource (bfcl, gorilla, tau2, tau-bench, ...), or when its score against
any one tool set reaches `SET_THRESHOLD` (0.4) with at least `MIN_MATCHED_TOOLS` (3) matched tools.
`contamination_check(tool_sets)` gives those reasons for one environment at a time (the shape of the
library builder's contamination hook).
Calibration (docs/eval.md, "Contamination"; tests/verify/test_contamination.py): the positive controls
`tests/fixtures/contamination/file_desk` (a GorillaFileSystem look-alike with renamed tools) and
`order_desk` (a τ²-retail look-alike) score 0.646 / 0.841 lexically and 0.726 / 0.881 with the static
embedder; the bundled `shop`, `tracker` and `calendar` score at most 0.107 / 0.060 / 0.000 (lexical) and
0.150 / 0.064 / 0.000 (static). 0.4 sits between them with a margin of at least 0.24 on both sides.

Task level, for each of our tasks (its user texts: scripted turns, simulated-user instructions and the
explicit query): `ngram` is the largest share of the task's word 3-grams (lower-cased, punctuation
dropped; a shorter text is one gram) found in any one benchmark task; `embedding` the largest cosine
similarity between a text of ours and a benchmark task text (only with an embed function). A task is
flagged at `ngram ≥ TASK_NGRAM_THRESHOLD` (0.3) or `embedding ≥ TASK_EMBEDDING_THRESHOLD` (0.9).
Calibration (`tests/fixtures/contamination/tasks.jsonl`): a reworded BFCL question and a reworded τ²
retail request score 0.450 / 0.871 (3-grams) and 0.984 / 0.958 (static embedder); three tasks written
for the bundled environments score at most 0.045 and 0.733.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from envfactory.spec import EnvSpec, SpecModel, Task, ToolSpec
from envfactory.spec.benchmark import BenchmarkTask, BenchmarkToolSet
from envfactory.spec.inflection import singular
from envfactory.spec.task import ScriptedUser

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class EmbedFunction(Protocol):
    """Texts → one vector each (any dimension, the same for every text); `llm` embedders' `embed` fits."""

    def __call__(self, texts: Sequence[str], /) -> Sequence[Sequence[float]] | NDArray[Any]:
        """One vector per text, in order (a list of lists or a 2-D array)."""


SET_THRESHOLD = 0.4
MIN_MATCHED_TOOLS = 3
PAIR_THRESHOLD = 0.5
TASK_NGRAM_THRESHOLD = 0.3
TASK_EMBEDDING_THRESHOLD = 0.9
NGRAM = 3
_PLACES = 4
# Cosine similarity of unrelated short texts under sentence embedders sits near this value.
_EMBEDDING_FLOOR = 0.3
# Words that name benchmarks in provenance (compared with non-alphanumerics removed, lower-cased).
BENCHMARK_MARKERS: tuple[str, ...] = (
    "bfcl", "gorilla", "berkeleyfunctioncall", "tau2", "taubench", "tau2bench", "sierraresearch",
)

# -- name normalisation --------------------------------------------------------------------------------
_ABBREVIATIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ls": ("list",), "cd": ("change", "directory"), "mkdir": ("make", "directory"),
    "rmdir": ("remove", "directory"), "rm": ("remove",), "mv": ("move",), "cp": ("copy",),
    "cat": ("display", "file"), "pwd": ("current", "directory"), "wc": ("word", "count"),
    "du": ("disk", "usage"), "dir": ("directory",), "folder": ("directory",), "info": ("details",),
    "msg": ("message",), "num": ("number",), "qty": ("quantity",), "addr": ("address",),
    "lookup": ("search",), "uid": ("user", "id"), "ids": ("id",),
})
_VERBS: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(("get", "fetch", "retrieve", "read", "show", "display", "view", "describe"), "get"),
    **dict.fromkeys(("list", "browse", "enumerate"), "list"),
    **dict.fromkeys(("search", "find", "look", "query", "grep", "locate"), "search"),
    **dict.fromkeys(("create", "add", "make", "new", "insert", "register", "touch"), "create"),
    **dict.fromkeys(("update", "modify", "change", "edit", "set", "alter", "adjust"), "update"),
    **dict.fromkeys(("delete", "remove", "erase", "destroy"), "delete"),
    **dict.fromkeys(("move", "rename", "relocate"), "move"),
    **dict.fromkeys(("copy", "duplicate", "clone"), "copy"),
})
_FILLER = frozenset({"by", "all", "the", "a", "an", "of", "to", "for", "from", "with", "and", "or", "in", "on", "up"})
_STOPWORDS = _FILLER | frozenset({
    "is", "are", "be", "it", "its", "this", "that", "as", "at", "if", "can", "will", "such", "given",
    "which", "when", "not", "no", "only", "their", "them", "they", "you", "your", "was",
    "has", "have", "been", "into", "one", "each", "any", "e", "g", "eg", "i", "my", "me", "we", "s",
})
_CASE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")


def split_words(text: str) -> list[str]:
    """Lower-case words of an identifier or a sentence: `getOrderDetails` → get, order, details."""
    return _WORD.findall(_CASE_BOUNDARY.sub(" ", text).lower())


def _canonical(words: Iterable[str], *, keep_filler: bool = False) -> list[str]:
    out: list[str] = []
    for word in words:
        for part in _ABBREVIATIONS.get(word, (word,)):
            part = singular(part)
            part = _VERBS.get(part, part)
            if keep_filler or part not in _FILLER:
                out.append(part)
    return out


def name_words(name: str) -> frozenset[str]:
    """The normalised word set of a tool or parameter name."""
    return frozenset(_canonical(split_words(name)))


def _param_key(name: str) -> str:
    return " ".join(_canonical(split_words(name), keep_filler=True)) or name.lower()


def _content_words(text: str) -> frozenset[str]:
    return frozenset(word for word in _canonical(split_words(text)) if word not in _STOPWORDS and len(word) > 1)


# -- tool-level scores ---------------------------------------------------------------------------------
def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0


def _set_cosine(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else 0.0


def _json_type(schema: object) -> str:
    if not isinstance(schema, dict):
        return ""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    return {"integer": "number"}.get(str(kind or ""), str(kind or ""))


def parameters(tool: ToolSpec) -> dict[str, str]:
    """Normalised parameter name → JSON type ("" when open) of a tool's input schema."""
    properties = tool.input_schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {_param_key(str(name)): _json_type(schema) for name, schema in sorted(properties.items())}


def signature_score(ours: dict[str, str], theirs: dict[str, str]) -> float:
    """Jaccard overlap of parameter names; a shared name with differing known types (integer and number
    count as one) counts half."""
    if not ours and not theirs:
        return 0.5
    shared = ours.keys() & theirs.keys()
    agreement = sum(1.0 if not ours[n] or not theirs[n] or ours[n] == theirs[n] else 0.5 for n in shared)
    return agreement / len(ours.keys() | theirs.keys())


def tool_text(tool: ToolSpec) -> str:
    """The text compared for a tool: its name as words, then the first paragraph of its description."""
    first = tool.description.strip().split("\n\n")[0]
    return f"{' '.join(split_words(tool.name))}: {' '.join(first.split())[:300]}"


def _unit_rows(texts: Sequence[str], embed: EmbedFunction) -> NDArray[np.float64]:
    """`embed(texts)` as float64 rows of unit length (zero rows stay zero). numpy is imported here only:
    an embed function comes from `llm`, whose extra brings numpy; the lexical path never needs it."""
    import numpy as np

    rows = np.asarray(embed(texts), dtype=np.float64).reshape(len(texts), -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: NDArray[np.float64] = rows / np.where(norms == 0, 1.0, norms)
    return unit


def _round(value: float) -> float:
    return round(value + 0.0, _PLACES)


# -- models ---------------------------------------------------------------------------------------------
class ContaminationConfig(SpecModel):
    """Weights and thresholds (defaults calibrated on the positive controls, see the module docstring)."""

    schema_version: Literal[1] = 1
    name_weight: float = 0.45
    signature_weight: float = 0.2
    text_weight: float = 0.35
    pair_threshold: float = PAIR_THRESHOLD
    set_threshold: float = SET_THRESHOLD
    min_matched_tools: int = MIN_MATCHED_TOOLS
    task_ngram_threshold: float = TASK_NGRAM_THRESHOLD
    task_embedding_threshold: float = TASK_EMBEDDING_THRESHOLD
    ngram: int = Field(default=NGRAM, ge=1)


class ToolMatch(SpecModel):
    """One of our tools matched to one benchmark tool, with the evidence."""

    ours: str
    theirs: str
    name: float
    signature: float
    text: float
    score: float


class ToolSetOverlap(SpecModel):
    """One environment against one benchmark tool set."""

    tool_set: str = Field(description="benchmark:name, e.g. bfcl:GorillaFileSystem")
    package: str
    package_version: str
    our_tools: int
    their_tools: int
    matches: list[ToolMatch] = Field(description="one-to-one, best first")
    score: float
    coverage: float = Field(description="share of their tools matched")


class EnvContamination(SpecModel):
    """How much one environment overlaps each benchmark tool set, and provenance entries that name a
    benchmark."""
    schema_version: Literal[1] = 1
    env: str = Field(description="name@version#hash12")
    provenance_hits: list[str] = Field(default_factory=list, description="provenance entries naming a benchmark")
    tool_sets: list[ToolSetOverlap] = Field(description="every benchmark tool set, highest score first")

    @property
    def top(self) -> ToolSetOverlap | None:
        """The benchmark tool set that overlaps most (None when there are none)."""
        return self.tool_sets[0] if self.tool_sets else None


class TaskMatch(SpecModel):
    """The closest benchmark task to one of ours and its similarity score."""
    benchmark_task: str = Field(description="benchmark:category:id")
    score: float


class TaskContamination(SpecModel):
    """The closest benchmark tasks to one of our tasks, by n-grams and by embedding."""
    schema_version: Literal[1] = 1
    task: str = Field(description="our task id")
    ngram: TaskMatch | None = None
    embedding: TaskMatch | None = None


class ContaminationReport(SpecModel):
    """Every environment and task of ours against every benchmark tool set and task given."""

    schema_version: Literal[1] = 1
    text_method: str = Field(description="'lexical' or 'embedding:<embedder id>'")
    config: ContaminationConfig
    benchmark_tool_sets: list[str] = Field(description="benchmark:name@package==version, as given")
    benchmark_tasks: int
    envs: list[EnvContamination]
    tasks: list[TaskContamination] = Field(default_factory=list)
    contaminated_envs: list[str] = Field(default_factory=list)
    contaminated_tasks: list[str] = Field(default_factory=list)


# -- environments ---------------------------------------------------------------------------------------
def provenance_hits(env: EnvSpec) -> list[str]:
    """The provenance entries of `env` that name a benchmark (as `resource (package)`)."""
    hits = []
    for entry in env.meta.provenance:
        fields = (entry.resource, entry.provider, entry.service, entry.package, entry.file)
        squashed = re.sub(r"[^a-z0-9]", "", " ".join(fields).lower())
        if any(marker in squashed for marker in BENCHMARK_MARKERS):
            hits.append(f"{entry.resource} ({entry.package or entry.provider})")
    return hits


@dataclass(frozen=True)
class _Features:
    name: frozenset[str]
    parameters: dict[str, str]
    content: frozenset[str]
    text: str


class _Scorer:
    """Features of every tool involved, computed once, and the pair scores between any two tools."""

    def __init__(self, tools: Sequence[ToolSpec], embed: EmbedFunction | None,
                 config: ContaminationConfig) -> None:
        self._config = config
        # keyed by identity: the tools are alive for the scorer's whole life (it is local to one call)
        self._features = {id(tool): _Features(name_words(tool.name), parameters(tool),
                                              _content_words(tool_text(tool)), tool_text(tool)) for tool in tools}
        texts = sorted({f.text for f in self._features.values()})
        self._row = {text: row for row, text in enumerate(texts)}
        self._similarity: list[list[float]] | None = None  # None: lexical text similarity
        if embed is not None:
            self._similarity = []
            if texts:
                rows = _unit_rows(texts, embed)
                self._similarity = (rows @ rows.T).tolist()

    def pair(self, a: ToolSpec, b: ToolSpec) -> tuple[float, float, float, float]:
        """(name, signature, text, weighted score) of our tool `a` against benchmark tool `b`."""
        fa, fb = self._features[id(a)], self._features[id(b)]
        name = _dice(fa.name, fb.name)
        signature = signature_score(fa.parameters, fb.parameters)
        if self._similarity is not None:
            cosine = self._similarity[self._row[fa.text]][self._row[fb.text]]
            text = max(0.0, (cosine - _EMBEDDING_FLOOR) / (1 - _EMBEDDING_FLOOR))
        else:
            text = _set_cosine(fa.content, fb.content)
        config = self._config
        score = config.name_weight * name + config.signature_weight * signature + config.text_weight * text
        return name, signature, text, score


def _tool_set_overlap(env: EnvSpec, tool_set: BenchmarkToolSet, scorer: _Scorer,
                      config: ContaminationConfig) -> ToolSetOverlap:
    candidates = []
    for a in env.tools:
        for b in tool_set.tools:
            name, signature, text, score = scorer.pair(a, b)
            if _round(score) >= config.pair_threshold:
                candidates.append(ToolMatch(ours=a.name, theirs=b.name, name=_round(name),
                                            signature=_round(signature), text=_round(text), score=_round(score)))
    pairs = sorted(candidates, key=lambda p: (-p.score, p.ours, p.theirs))
    matched: list[ToolMatch] = []
    used_ours: set[str] = set()
    used_theirs: set[str] = set()
    for pair in pairs:
        if pair.ours not in used_ours and pair.theirs not in used_theirs:
            matched.append(pair)
            used_ours.add(pair.ours)
            used_theirs.add(pair.theirs)
    smaller = min(len(env.tools), len(tool_set.tools)) or 1
    return ToolSetOverlap(
        tool_set=tool_set.key, package=tool_set.package, package_version=tool_set.package_version,
        our_tools=len(env.tools), their_tools=len(tool_set.tools), matches=matched,
        score=_round(sum(p.score for p in matched) / smaller),
        coverage=_round(len(matched) / (len(tool_set.tools) or 1)),
    )


def score_environments(envs: Sequence[EnvSpec], tool_sets: Sequence[BenchmarkToolSet], *,
                       embed: EmbedFunction | None = None,
                       config: ContaminationConfig | None = None) -> list[EnvContamination]:
    """Each environment against every tool set (embedding every tool text once when `embed` is given)."""
    config = config or ContaminationConfig()
    scorer = _Scorer([*(t for e in envs for t in e.tools), *(t for s in tool_sets for t in s.tools)], embed, config)
    results = []
    for env in envs:
        overlaps = [_tool_set_overlap(env, tool_set, scorer, config) for tool_set in tool_sets]
        overlaps.sort(key=lambda o: (-o.score, o.tool_set))
        results.append(EnvContamination(env=env.ref, provenance_hits=provenance_hits(env), tool_sets=overlaps))
    return results


def contamination_reasons(report: EnvContamination, threshold: float = SET_THRESHOLD,
                          min_matched_tools: int = MIN_MATCHED_TOOLS) -> list[str]:
    """Why `report`'s environment counts as contaminated (empty when it does not)."""
    reasons = [f"provenance names a benchmark: {hit}" for hit in report.provenance_hits]
    for overlap in report.tool_sets:
        if overlap.score >= threshold and len(overlap.matches) >= min_matched_tools:
            reasons.append(f"overlaps {overlap.tool_set}: score {overlap.score:.2f} ≥ {threshold:.2f} with "
                           f"{len(overlap.matches)} matched tools")
    return reasons


def is_contaminated(report: EnvContamination, threshold: float = SET_THRESHOLD,
                    min_matched_tools: int = MIN_MATCHED_TOOLS) -> bool:
    """True when the environment names a benchmark in its provenance or overlaps a tool set too much."""
    return bool(contamination_reasons(report, threshold, min_matched_tools))


def contamination_check(tool_sets: Sequence[BenchmarkToolSet], *, embed: EmbedFunction | None = None,
                        config: ContaminationConfig | None = None) -> Callable[[EnvSpec], list[str]]:
    """A per-environment check (the shape of the library builder's contamination hook): it returns the
    environment's contamination reasons under `config`, empty when it is clean."""
    settings = config or ContaminationConfig()

    def check(env: EnvSpec) -> list[str]:
        (report,) = score_environments([env], tool_sets, embed=embed, config=settings)
        return contamination_reasons(report, settings.set_threshold, settings.min_matched_tools)

    return check


# -- tasks ----------------------------------------------------------------------------------------------
def task_texts(task: Task) -> list[str]:
    """What a user of `task` says or wants, in order, without duplicates."""
    texts = []
    for turn in task.turns:
        texts.append(turn.user.text if isinstance(turn.user, ScriptedUser) else turn.user.instructions)
    texts.append(task.origin.explicit_query)
    return list(dict.fromkeys(t for t in (text.strip() for text in texts) if t))


def word_ngrams(text: str, n: int = NGRAM) -> frozenset[tuple[str, ...]]:
    """Word n-grams of `text` (lower-cased, punctuation dropped); a shorter text is one gram."""
    words = _WORD.findall(text.lower())
    if not words:
        return frozenset()
    if len(words) < n:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _benchmark_task_key(task: BenchmarkTask) -> str:
    return f"{task.benchmark}:{task.category}:{task.id}"


def score_tasks(tasks: Sequence[Task], benchmark_tasks: Sequence[BenchmarkTask], *,
                embed: EmbedFunction | None = None,
                config: ContaminationConfig | None = None) -> list[TaskContamination]:
    """Each of our tasks against every benchmark task: best n-gram containment and embedding match."""
    config = config or ContaminationConfig()
    keys = [_benchmark_task_key(t) for t in benchmark_tasks]
    index: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for position, bench in enumerate(benchmark_tasks):
        for text in bench.texts:
            for gram in word_ngrams(text, config.ngram):
                index[gram].add(position)
    ours = [task_texts(task) for task in tasks]
    bench_texts = sorted({text for bench in benchmark_tasks for text in bench.texts})
    owners: dict[str, int] = {}
    for position, bench in enumerate(benchmark_tasks):
        for text in bench.texts:
            owners.setdefault(text, position)  # the first task that says it (benchmark order)
    # best[i] = (cosine, benchmark text) of the benchmark text nearest to our i-th distinct text
    best: dict[str, tuple[float, str]] = {}
    our_texts = sorted({t for texts in ours for t in texts})
    if embed is not None and our_texts and bench_texts:
        similarity = _unit_rows(our_texts, embed) @ _unit_rows(bench_texts, embed).T
        for row, text in enumerate(our_texts):
            column = int(similarity[row].argmax())  # the first of equal maxima: bench_texts is sorted
            best[text] = (float(similarity[row, column]), bench_texts[column])
    results = []
    for task, texts in zip(tasks, ours, strict=True):
        grams = frozenset().union(*(word_ngrams(t, config.ngram) for t in texts)) if texts else frozenset()
        hits: Counter[int] = Counter()
        for gram in grams:
            hits.update(index.get(gram, ()))
        ngram = None
        if hits:
            position, count = min(hits.items(), key=lambda item: (-item[1], keys[item[0]]))
            ngram = TaskMatch(benchmark_task=keys[position], score=_round(count / len(grams)))
        embedding = None
        nearest = [best[t] for t in texts if t in best]
        if nearest:
            best_score, best_text = min(nearest, key=lambda item: (-item[0], item[1]))
            embedding = TaskMatch(benchmark_task=keys[owners[best_text]], score=_round(best_score))
        results.append(TaskContamination(task=task.id, ngram=ngram, embedding=embedding))
    return results


def is_task_contaminated(report: TaskContamination, config: ContaminationConfig | None = None) -> bool:
    """True when the task's n-gram or embedding overlap with one benchmark task reaches its threshold."""
    config = config or ContaminationConfig()
    return bool(
        (report.ngram and report.ngram.score >= config.task_ngram_threshold)
        or (report.embedding and report.embedding.score >= config.task_embedding_threshold)
    )


# -- the whole report -----------------------------------------------------------------------------------
def contamination_report(envs: Sequence[EnvSpec], tool_sets: Sequence[BenchmarkToolSet], *,
                         tasks: Sequence[Task] = (), benchmark_tasks: Sequence[BenchmarkTask] = (),
                         embed: EmbedFunction | None = None, embedder_id: str = "",
                         config: ContaminationConfig | None = None) -> ContaminationReport:
    """Score every environment and task; list the contaminated ones under `config`'s thresholds."""
    config = config or ContaminationConfig()
    env_reports = score_environments(envs, tool_sets, embed=embed, config=config)
    task_reports = score_tasks(tasks, benchmark_tasks, embed=embed, config=config) if tasks else []
    return ContaminationReport(
        text_method=f"embedding:{embedder_id or 'injected'}" if embed is not None else "lexical",
        config=config,
        benchmark_tool_sets=[f"{s.key}@{s.package}=={s.package_version}" for s in tool_sets],
        benchmark_tasks=len(benchmark_tasks),
        envs=env_reports,
        tasks=task_reports,
        contaminated_envs=[r.env for r in env_reports
                           if is_contaminated(r, config.set_threshold, config.min_matched_tools)],
        contaminated_tasks=[r.task for r in task_reports if is_task_contaminated(r, config)],
    )
