"""The `hf:DIR` provider: a transformers checkpoint (e.g. one `envfactory train` wrote) run on the CPU.

Contract:
- `HFConfig.path` is a directory saved by `save_pretrained` (model, tokenizer and chat template), or a
  LoRA/PEFT adapter directory (`adapter_config.json`, e.g. a trainer's `checkpoints/checkpoint-N`): its
  base model (`base_model_name_or_path`, a relative path read from the working directory) is loaded and
  the adapter merged into it (peft); the tokenizer comes from the adapter directory when it has one, else
  from the base. transformers and torch are imported and the model loaded lazily, on the first call or
  `load()`; a directory that does not load, or an adapter whose base is not a checkpoint directory here,
  raises `ProviderError` naming the cause and the fix.
- `model_id` is `hf/<directory name>@<sha256 of the weight and tokenizer files>[:12]` (an adapter's: of its
  files and of its base's) plus the hash of the prompt texts this provider adds, so a cached answer never
  outlives a change of the checkpoint.
- The prompt is the checkpoint's own chat template. A template that knows tools gets them (and tool
  calls and results) natively; otherwise they are described in the system message as the local provider
  does (`local.template_messages`).
- Decoding is unconstrained (no grammar): a forced tool call is *prefilled* — the answer starts with
  `<tool_call>{"name": "<tool>", "arguments": ` (or with `<tool_call>` for `required`) and the model
  completes it; a response schema is stated in the system message and left to the managed client's
  validation and repair. Tool calls are parsed from `<tool_call>` blocks, fenced or bare JSON.
- Sampling is seeded (`request.seed`); temperature 0 decodes greedily. One call at a time (a lock).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envfactory.errors import ProviderError
from envfactory.llm._prompts import prompt_hash
from envfactory.llm.errors import DependencyMissingError
from envfactory.llm.local import template_messages
from envfactory.llm.parsing import extract_tool_calls, to_tool_calls
from envfactory.llm.types import ChatMessage, ChatRequest, ChatResponse, NamedToolChoice, Usage

INSTALL_HINT = "pip install 'envfactory[train]' (torch, transformers and peft)"
_HASHED = ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
           "config.json", "generation_config.json", "adapter_config.json", "adapter_model.safetensors",
           "adapter_model.bin")
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True, slots=True)
class HFConfig:
    """Settings of the transformers provider."""

    path: Path
    n_threads: int | None = None


def checkpoint_hash(path: Path) -> str:
    """sha256 over the checkpoint's weight, config and tokenizer files (names and bytes)."""
    digest = hashlib.sha256()
    for name in _HASHED:
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def adapter_base(path: Path) -> Path | None:
    """The base checkpoint of the LoRA/PEFT adapter in `path`, or None when `path` is not an adapter.

    The base is `adapter_config.json`'s `base_model_name_or_path`; a relative one is read from the working
    directory (the trainers write the `--model` path as given). Raises `ProviderError` when the adapter
    config does not parse or names no base that is a transformers checkpoint directory here.
    """
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        return None
    try:
        named = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as exc:
        raise ProviderError(f"hf:{path}: {ADAPTER_CONFIG} does not parse ({exc})") from exc
    base = Path(named) if isinstance(named, str) and named else None
    if base is None or not (base / "config.json").is_file():
        raise ProviderError(
            f"hf:{path} is a LoRA/PEFT adapter whose base model {named!r} ({ADAPTER_CONFIG} "
            f"base_model_name_or_path) is not a transformers checkpoint directory from {Path.cwd()}; run from "
            "the directory the training ran in, or set base_model_name_or_path to the base checkpoint's path")
    return base


class HFProvider:
    """`LLMClient` over a transformers checkpoint (see the module docstring)."""

    def __init__(self, config: HFConfig) -> None:
        """A provider over the checkpoint or adapter directory `config.path`; a `ProviderError` when it is
        neither. The model id hashes the checkpoint (and an adapter's base) and the added prompt texts;
        nothing is loaded until first use."""
        self.config = config
        path = Path(config.path)
        self._base = adapter_base(path)
        if self._base is None and not (path / "config.json").is_file():
            raise ProviderError(f"hf:{path}: not a transformers checkpoint (no config.json) nor a LoRA/PEFT adapter "
                                f"(no {ADAPTER_CONFIG}); pass a directory written by save_pretrained, e.g. "
                                "runs/<id>/sft/model")
        self._path = path
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._knows_tools = False
        digest = checkpoint_hash(path)
        if self._base is not None:
            digest = hashlib.sha256(f"{checkpoint_hash(self._base)}+{digest}".encode()).hexdigest()
        self._id = f"hf/{path.resolve().name}@{digest[:12]}+p{prompt_hash('tools_system', 'schema_hint')[:8]}"
        self.calls = 0

    @property
    def model_id(self) -> str:
        """`hf/<directory>@<checkpoint hash>+p<prompt hash>`: changes when the weights or the prompt texts do."""
        return self._id

    def load(self) -> None:
        """Load the tokenizer and model (idempotent, thread-safe)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise DependencyMissingError(f"transformers/torch are not installed ({exc}); {INSTALL_HINT}") from exc
        if self.config.n_threads:
            torch.set_num_threads(self.config.n_threads)
        weights = self._base or self._path
        has_tokenizer = (self._path / "tokenizer_config.json").is_file()
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(self._path if has_tokenizer else weights))
            self._model = transformers.AutoModelForCausalLM.from_pretrained(str(weights), dtype=torch.float32)
            if self._base is not None:
                self._model = self._merged_adapter(self._model)
        except (OSError, ValueError) as exc:
            raise ProviderError(f"hf:{self._path}: the checkpoint does not load ({exc})") from exc
        self._model.eval()
        template = self._tokenizer.chat_template or ""
        if not template:
            raise ProviderError(f"hf:{self._path}: the tokenizer has no chat template")
        self._knows_tools = "tools" in template

    def _merged_adapter(self, base_model: Any) -> Any:
        try:
            import peft
        except ImportError as exc:
            raise DependencyMissingError(f"hf:{self._path} is a LoRA/PEFT adapter and peft is not installed "
                                         f"({exc}); {INSTALL_HINT}") from exc
        return peft.PeftModel.from_pretrained(base_model, str(self._path)).merge_and_unload()

    def prompt(self, request: ChatRequest) -> str:
        """The exact text the model continues for `request`."""
        self.load()
        messages, tools = template_messages(request, self._knows_tools)
        text: str = self._tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                        add_generation_prompt=True)
        return text + self._prefill(request)

    @staticmethod
    def _prefill(request: ChatRequest) -> str:
        if isinstance(request.tool_choice, NamedToolChoice):
            return '<tool_call>\n{"name": ' + json.dumps(request.tool_choice.name) + ', "arguments": '
        if request.tool_choice == "required":
            return "<tool_call>\n"
        return ""

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request with the checkpoint (loads it first; one generation at a time)."""
        with self._lock:
            self._load_locked()
            return self._chat_locked(request)

    def _chat_locked(self, request: ChatRequest) -> ChatResponse:
        import torch

        messages, tools = template_messages(request, self._knows_tools)
        text = self._tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        prefill = self._prefill(request)
        encoded = self._tokenizer(text + prefill, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(request.seed)
        sample = request.temperature > 0
        stop_ids = [i for i in {self._tokenizer.eos_token_id, self._tokenizer.convert_tokens_to_ids("<|im_end|>")}
                    if isinstance(i, int) and i >= 0]
        with torch.no_grad():
            output = self._model.generate(
                **encoded, max_new_tokens=request.max_tokens, do_sample=sample,
                temperature=request.temperature if sample else None, top_p=request.top_p if sample else None,
                top_k=None, eos_token_id=stop_ids or None, pad_token_id=self._tokenizer.pad_token_id or stop_ids[0],
            )
        new = output[0, encoded["input_ids"].shape[1]:]
        completion = self._tokenizer.decode(new, skip_special_tokens=True)
        for stop in request.stop:
            completion = completion.split(stop)[0]
        self.calls += 1
        usage = Usage(prompt_tokens=int(encoded["input_ids"].shape[1]), completion_tokens=int(new.shape[0]))
        finish = "length" if int(new.shape[0]) >= request.max_tokens else "stop"
        message = self._message(request, prefill + completion)
        if message.tool_calls:
            finish = "tool_calls"
        return ChatResponse(model=self.model_id, message=message, finish_reason=finish, usage=usage)

    @staticmethod
    def _message(request: ChatRequest, text: str) -> ChatMessage:
        offered = request.offered_tools()
        if request.response_format is not None or not offered:
            return ChatMessage.assistant(text.strip())
        if isinstance(request.tool_choice, NamedToolChoice) and "</tool_call>" not in text:
            text = text.rstrip() + "}\n</tool_call>" if text.count("{") > text.count("}") else text
        content, calls = extract_tool_calls(text, [t.name for t in offered])
        return ChatMessage.assistant(content, to_tool_calls(calls, len(request.messages)))
