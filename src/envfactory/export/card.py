"""The Hugging Face dataset card (README.md with YAML metadata) of an export.

Contract: `dataset_card(manifest, envs, sft_files, rl_files)` returns the card text: YAML front matter
(licence, the `sft` and `rl` configs with their split files) and sections naming the sources (every
environment with its provenance and licence), the splits (rows and tasks per split, the held-out
environments), the funnel (input → hygiene → export counts, drops by reason) and the diversity
statistics. Deterministic: the same manifest gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from envfactory.spec import EnvSpec
from envfactory.spec.dataset import ExportManifest

FUNNEL = ("tasks_read", "trajectories_read", "tasks_with_trajectory", "tasks_after_hygiene", "sft_rows", "rl_rows")
"""The funnel's counts in the order the export passes them."""
_LICENCE_IDS = (  # the hub's licence ids for the names environments' sources give (first match wins)
    (re.compile(r"apache", re.I), "apache-2.0"),
    (re.compile(r"\bmit\b", re.I), "mit"),
    (re.compile(r"creative commons attribution 4\.0|cc[- ]by[- ]4\.0", re.I), "cc-by-4.0"),
    (re.compile(r"creative commons attribution 3\.0|cc[- ]by[- ]3\.0", re.I), "cc-by-3.0"),
    (re.compile(r"bsd[- ]3", re.I), "bsd-3-clause"),
)


def licences(envs: Mapping[str, EnvSpec]) -> list[str]:
    """Every licence named by the environments' provenance (sorted; `unknown` when one names none)."""
    found = set()
    for spec in envs.values():
        names = {p.licence for p in spec.meta.provenance if p.licence}
        found |= names or {"unknown"}
    return sorted(found)


def card_licences(names: list[str]) -> list[str]:
    """The hub licence ids of the licence names (sorted, unique); `other` for a name none matches."""
    found = set()
    for name in names:
        found.add(next((spdx for pattern, spdx in _LICENCE_IDS if pattern.search(name)), "other"))
    return sorted(found)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def dataset_card(manifest: ExportManifest, envs: Mapping[str, EnvSpec],
                 sft_files: Mapping[str, str], rl_files: Mapping[str, str]) -> str:
    """The card text (see the module contract); `*_files` map split name -> path relative to the card."""
    config = manifest.config
    lines = ["---", "license:", *(f"- {spdx}" for spdx in card_licences(manifest.licences)),
             "pretty_name: " + config.dataset_name,
             "task_categories:", "- text-generation", "tags:", "- tool-use", "- agents", "- envfactory",
             "configs:"]
    for name, files in (("sft", sft_files), ("rl", rl_files)):
        if not files:
            continue
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, path in files.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
    lines += ["---", "", f"# {config.dataset_name}", "",
              "Tool-use conversations (`sft`) and per-turn RL prompts (`rl`) made by envfactory from verified",
              "tasks and gold trajectories over executable environments. Tool-call arguments, tool lists,",
              "states and ground truth are JSON text (parse them with `json.loads`).", "", "## Sources", ""]
    rows = []
    for name in sorted(envs):
        meta = envs[name].meta
        sources = ", ".join(sorted({p.resource for p in meta.provenance})) or "—"
        licence = ", ".join(sorted({p.licence for p in meta.provenance if p.licence})) or "unknown"
        rows.append([name, meta.version, meta.domain or "—", sources, licence])
    lines += _table(["environment", "version", "domain", "resources", "licence"], rows)
    lines += ["", "Licences: " + ", ".join(manifest.licences), "", "## Splits", ""]
    split_rows = []
    for split in ("train", "validation", "test", "heldout"):
        tasks = sum(1 for a in manifest.splits if a.split == split)
        if not tasks:
            continue
        split_rows.append([split, str(tasks), str(manifest.counts.get(f"hf.{split}", 0)),
                           str(manifest.counts.get(f"verl.{split}", 0))])
    lines += _table(["split", "tasks", "sft rows", "rl rows"], split_rows)
    heldout = sorted({env for a in manifest.splits if a.split == "heldout" for env in a.envs})
    lines += ["", "Tasks sharing a chain template or an environment state are never in two splits.",
              "Held-out environments (only in `heldout`): " + (", ".join(heldout) or "none") + ".",
              "", "## Funnel", ""]
    funnel = [[key, str(manifest.counts[key])] for key in FUNNEL if key in manifest.counts]
    lines += _table(["stage", "count"], funnel)
    if manifest.drop_reasons:
        lines += ["", "Dropped, by reason:", ""]
        lines += _table(["reason", "count"], [[k, str(v)] for k, v in sorted(manifest.drop_reasons.items())])
    stats = manifest.diversity
    lines += ["", "## Diversity", "",
              f"{stats.tasks} tasks, {stats.distinct_tools} distinct tools, {stats.chain_templates} chain templates.",
              ""]
    for title, counts in (("environments", stats.environments), ("domains", stats.domains),
                          ("chain shapes (calls-environments)", stats.chain_shapes), ("turns", stats.turn_counts),
                          ("tools", stats.tools)):
        lines += [*_table([title, "tasks" if title != "tools" else "calls"],
                          [[k, str(v)] for k, v in counts.items()]), ""]
    return "\n".join(lines).rstrip() + "\n"
