"""Run inside the LlamaFactory venv (scripts/consumers): load an export's sharegpt files with
LlamaFactory's own dataset registry and converter, and render its function calls and tools through the
`qwen` template's formatters. Prints one JSON object: per split, rows read, rows LlamaFactory kept
(a skipped row has an empty prompt/response), and every tool call compared with the rendered text.

    python llamafactory_roundtrip.py EXPORT_DIR/llamafactory
"""

import json
import re
import sys
import types
from importlib.machinery import ModuleSpec

# LlamaFactory imports torchaudio at module level for its audio plugin. PyPI has no torchaudio for the CPU
# torch 2.13 of these machines (scripts/consumers removes the mismatched one, which cannot load), and no
# text row reaches that plugin: an empty module stands in for it, here only.
placeholder = types.ModuleType("torchaudio")
placeholder.__spec__ = ModuleSpec("torchaudio", None)
sys.modules.setdefault("torchaudio", placeholder)

from datasets import load_dataset  # noqa: E402 (after the torchaudio stand-in)
from llamafactory.data.converter import get_dataset_converter  # noqa: E402 (after the torchaudio stand-in)
from llamafactory.data.parser import get_dataset_list  # noqa: E402 (after the torchaudio stand-in)
from llamafactory.data.template import TEMPLATES  # noqa: E402 (after the torchaudio stand-in)
from llamafactory.hparams import DataArguments  # noqa: E402 (after the torchaudio stand-in)

directory = sys.argv[1]
with open(f"{directory}/dataset_info.json") as handle:
    info = json.load(handle)
template = TEMPLATES["qwen"]
call_block = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
report = {"version": __import__("llamafactory").__version__, "splits": {}}
for attr in get_dataset_list(sorted(info), info):
    rows = load_dataset("json", data_files=f"{directory}/{attr.dataset_name}")["train"]
    converter = get_dataset_converter(attr.formatting, attr, DataArguments(dataset_dir=directory))
    kept, calls, survived, tools_ok = 0, 0, 0, 0
    for row in rows:
        aligned = converter(row)
        if aligned["_prompt"] and aligned["_response"]:
            kept += 1
        if aligned["_tools"] == row["tools"] and template.format_tools.apply(content=aligned["_tools"])[0]:
            tools_ok += 1
        for turn in row["conversations"]:
            if turn["from"] != "function_call":
                continue
            payload = json.loads(turn["value"].split("</think>")[-1])
            wanted = payload if isinstance(payload, list) else [payload]
            rendered = "".join(
                s for s in template.format_function.apply(
                    content=turn["value"], thought_words=template.thought_words,
                    tool_call_words=getattr(template, "tool_call_words", None))
                if isinstance(s, str)
            )
            found = [json.loads(block) for block in call_block.findall(rendered)]
            calls += len(wanted)
            survived += sum(1 for w, f in zip(wanted, found, strict=False) if w["name"] == f["name"] and w["arguments"] == f["arguments"])
    report["splits"][attr.dataset_name] = {"rows": len(rows), "kept": kept, "tools_ok": tools_ok,
                                           "calls": calls, "calls_survived": survived}
print(json.dumps(report))
