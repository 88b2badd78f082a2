"""Run inside the veRL venv (scripts/consumers): read an export's veRL Parquet files with veRL's own
RLHFDataset (as its trainer does, without the length filter that needs a tokenizer), check what
ToolAgentLoop will use of each row (raw_prompt, agent_name, tool_selection, tools_kwargs per offered
tool), and validate the tool list against veRL's OpenAIFunctionToolSchema, listing the schema
keys veRL's models drop. Prints one JSON object.

    python verl_roundtrip.py EXPORT_DIR/verl CACHE_DIR
"""

import glob
import json
import sys

from omegaconf import OmegaConf
from verl.tools.schemas import OpenAIFunctionToolSchema
from verl.utils.dataset.rl_dataset import RLHFDataset

directory, cache = sys.argv[1], sys.argv[2]
report = {"version": __import__("verl").__version__, "splits": {}, "tools": {}}
config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": cache, "need_tools_kwargs": True})
for path in sorted(glob.glob(f"{directory}/*.parquet")):
    dataset = RLHFDataset(data_files=[path], tokenizer=None, config=config)
    good = 0
    for index in range(len(dataset)):
        item = dataset[index]
        selection = item["extra_info"]["tool_selection"]
        ok = (
            item["agent_name"] == "tool_agent"
            and item["raw_prompt"][-1]["role"] == "user"
            and all(item["tools_kwargs"][name]["create_kwargs"]["episode"] for name in selection)
            and json.loads(item["reward_model"]["ground_truth"])["task_id"] == item["extra_info"]["task_id"]
            and all(isinstance(json.loads(c["function"]["arguments"]), dict)
                    for m in item["raw_prompt"] for c in (m.get("tool_calls") or []))
        )
        good += ok
    report["splits"][path.rsplit("/", 1)[1]] = {"rows": len(dataset), "usable": good}


def dropped(original, parsed, prefix=""):
    lost = []
    if isinstance(original, dict):
        for key, value in original.items():
            if not isinstance(parsed, dict) or key not in parsed:
                lost.append(prefix + key)
            else:
                lost += dropped(value, parsed[key], prefix + key + ".")
    return lost


with open(f"{directory}/tools.json") as handle:
    tools = json.load(handle)
for tool in tools:
    name = tool["function"]["name"]
    try:
        parsed = OpenAIFunctionToolSchema.model_validate(tool).model_dump(exclude_unset=True, exclude_none=True)
        report["tools"][name] = {"valid": True, "dropped": dropped(tool, parsed)}
    except Exception as exc:
        report["tools"][name] = {"valid": False, "error": str(exc).splitlines()[0]}
print(json.dumps(report))
