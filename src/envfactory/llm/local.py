"""The embedded local provider: a GGUF model from a PyPI package, run on the CPU by llama-cpp-python.

Contract:
- The model file comes from `envfactory.llm.models` (assembled and verified on first use); llama-cpp is
  imported and the model loaded lazily, on the first call or `load()`.
- The prompt is the GGUF's own chat template. For templates that know no tools (SmolLM2), the tools are
  described in the system message in the Qwen style and calls/results are rendered as tagged text.
  What varies from one request to the next of a conversation comes last, so consecutive requests
  share a long prefix for the prefix cache: a response schema (`schema_hint`) and the tools of a
  forced call (`forced_call`, instead of the template's tool block) are appended to the last user
  message (or follow as one). Tools offered with `tool_choice="auto"` stay in the system message.
  These texts are `prompts/*.md`; their hash and the block size are part of `model_id`, so cached
  answers never outlive a change of them.
- The caller decides what kind of answer it wants, and decoding is constrained to it (small models
  judge "call a tool or answer" badly, but fill a schema well):
  - `response_format`: JSON Schema grammar of that schema;
  - `tool_choice` naming a tool: grammar of `{"name": <that tool>, "arguments": <its schema>}`;
  - `tool_choice="required"`: grammar of that object for any offered tool (`anyOf`);
  - `tool_choice="auto"` with tools: free text, parsed for `<tool_call>` tags, fenced or bare JSON;
  - otherwise free text.
- Sampling is seeded (`request.seed`), temperature 0 decodes greedily. The prompt is evaluated in
  fixed blocks of `n_batch` tokens from position 0 and KV states at block boundaries are reused from a
  bounded in-memory cache (`prefix_cache`; `prefix_cache_bytes=0` turns it off). Reuse is exact: an
  answer is a function of the request, the model file, the build, the block size and the thread
  count, never of what was asked before. Tool-call ids are derived from the conversation length and
  the call, so equal requests give byte-identical responses.
- `Usage` of a response counts the prompt tokens, and (in memory only) how many came from the cache
  and how many were decoded.
- The model file is watched: when it changes on disk after loading, the cache is dropped and the model
  is loaded again (and re-verified), so a state computed with other weights is never restored.
- One model instance serves one call at a time (a lock); run several providers for parallelism.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envfactory.errors import ProviderError
from envfactory.llm._prompts import prompt_hash, prompt_text
from envfactory.llm.errors import DependencyMissingError, ProviderTimeoutError
from envfactory.llm.models import DEFAULT_LOCAL_MODEL, LocalModel, get_local_model, model_path
from envfactory.llm.parsing import extract_tool_calls, to_tool_calls, tool_call_schema
from envfactory.llm.prefix_cache import KVStateCache, PromptEvaluation, evaluate_prompt
from envfactory.llm.types import ChatMessage, ChatRequest, ChatResponse, FunctionTool, NamedToolChoice, Usage
from envfactory.spec import JSONObject, ToolCall, content_hash
from envfactory.store import default_models_dir

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'envfactory[llm]' (llama-cpp-python==0.3.36 builds from source in a few minutes)"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """Settings of the local provider (explicit: providers read no environment variables)."""

    model: str = DEFAULT_LOCAL_MODEL
    models_dir: Path = field(default_factory=default_models_dir)
    n_ctx: int | None = None
    n_threads: int | None = None
    n_batch: int = 128  # the evaluation block: prompts are decoded in blocks of this many tokens
    timeout_s: float | None = 600.0
    verify: bool = False
    prefix_cache_bytes: int = 1 << 30  # KV states kept for prefix reuse; 0 turns reuse off
    # Greedy grammar steps check the grammar against the chosen token only (`greedy_grammar`); the
    # answers are the same either way, so the switch is for exactness tests and benchmarks.
    lazy_grammar: bool = True


def _call_text(call: ToolCall) -> str:
    return "<tool_call>\n" + json.dumps({"name": call.tool, "arguments": call.arguments}, ensure_ascii=False) + "\n</tool_call>"


def _with_system_text(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _with_tail_text(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """`text` closes the prompt: appended to a closing user message or note (a system message after the
    first), else as a user message of its own."""
    closing = messages[-1]["role"] if messages else ""
    if closing == "user" or (closing == "system" and len(messages) > 1):
        return [*messages[:-1], {**messages[-1], "content": f"{messages[-1]['content']}\n\n{text}"}]
    return [*messages, {"role": "user", "content": text}]


def template_messages(request: ChatRequest, template_knows_tools: bool) -> tuple[list[dict[str, Any]], list[JSONObject] | None]:
    """The request's messages (and tools) in the dict form chat templates expect.

    A response schema (`prompts/schema_hint.md`) or the tools of a forced call (`prompts/forced_call.md`)
    close the prompt: the grammar enforces them, the model fills them better when it knows the field
    names and descriptions, and at the end they leave the rest of the prompt a reusable prefix.
    """
    messages, tools = _template_messages(request, template_knows_tools)
    if request.response_format is not None:
        schema = json.dumps(request.response_format.json_schema, ensure_ascii=False)
        messages = _with_tail_text(messages, prompt_text("schema_hint").format(schema=schema))
    elif request.forces_tool_call():
        listed = "\n".join(json.dumps(tool.openai(), ensure_ascii=False) for tool in request.offered_tools())
        messages = _with_tail_text(messages, prompt_text("forced_call").format(tools=listed))
    return messages, tools


def _template_messages(request: ChatRequest, template_knows_tools: bool) -> tuple[list[dict[str, Any]], list[JSONObject] | None]:
    tools = [] if request.forces_tool_call() else request.offered_tools()  # forced: described at the end
    if template_knows_tools:
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            item: dict[str, Any] = {"role": message.role, "content": message.content}
            if message.tool_calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.tool, "arguments": c.arguments}}
                    for c in message.tool_calls
                ]
            if message.role == "tool":
                item["tool_call_id"] = message.tool_call_id
                item["name"] = message.name
            messages.append(item)
        return messages, [tool.openai() for tool in tools] or None
    # A template without tool support: describe tools in the system message, calls and results as text.
    messages = []
    for message in request.messages:
        if message.role == "tool":
            messages.append({"role": "user", "content": f"<tool_response>\n{message.content}\n</tool_response>"})
        elif message.tool_calls:
            text = "\n".join([message.content] * bool(message.content) + [_call_text(c) for c in message.tool_calls])
            messages.append({"role": "assistant", "content": text})
        else:
            messages.append({"role": message.role, "content": message.content})
    if tools:
        listed = "\n".join(json.dumps(tool.openai(), ensure_ascii=False) for tool in tools)
        messages = _with_system_text(messages, prompt_text("tools_system").format(tools=listed))
    return messages, None


def _identity(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced or rewritten: inode, size, modification time."""
    stat = path.stat()
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _llama_version() -> str:
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "?"))


def _usage(completion: Any, evaluation: PromptEvaluation) -> Usage:
    prompt_tokens = int(completion["usage"]["prompt_tokens"])
    if prompt_tokens != evaluation.prompt_tokens:
        raise ProviderError(f"llama.cpp evaluated {prompt_tokens} prompt tokens, the provider {evaluation.prompt_tokens}")
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=int(completion["usage"]["completion_tokens"]),
        reused_tokens=evaluation.reused_tokens,
        evaluated_tokens=evaluation.evaluated_tokens,
    )


class LocalProvider:
    """`LLMClient` over an embedded llama.cpp model (see the module docstring)."""

    def __init__(self, config: LocalConfig | None = None) -> None:
        """A provider for `config` (default `LocalConfig()`); an unknown model key is a
        `ModelNotInstalledError`. Nothing is loaded until first use; a positive `prefix_cache_bytes`
        keeps a KV-state prefix cache of that size."""
        self.config = config or LocalConfig()
        self.model: LocalModel = get_local_model(self.config.model)
        self._lock = threading.Lock()
        self._llama: Any = None
        self._formatter: Any = None
        self._template_knows_tools = False
        self._grammars: dict[str, Any] = {}
        self.calls = 0  # completions actually run (a cache hit does not reach the provider)
        self._prompts_hash = prompt_hash("tools_system", "schema_hint", "forced_call")
        self.kv_cache: KVStateCache | None = (
            KVStateCache(self.config.prefix_cache_bytes) if self.config.prefix_cache_bytes > 0 else None
        )
        self._path: Path | None = None
        self._file_identity: tuple[int, int, int] | None = None
        self._fingerprint = ""
        self.last_token_ids: tuple[int, ...] = ()  # of the last completion (for exactness checks)

    @property
    def model_id(self) -> str:
        """Model key, file hash and the hash of the prompt texts this provider adds (so editing them
        invalidates cached answers)."""
        return f"local/{self.model.key}@{self.model.sha256[:12]}+p{self._prompts_hash[:8]}+b{self.config.n_batch}"

    @property
    def loaded(self) -> bool:
        """True once the model is loaded (and not closed)."""
        return self._llama is not None

    def load(self) -> None:
        """Locate (assemble, verify) and load the model; idempotent."""
        with self._lock:
            self._load_locked()

    def _load_locked(self, *, verify: bool = False) -> None:
        if self._llama is not None:
            return
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from envfactory.llm.greedy_grammar import LazyGrammarLlama
        except ImportError as exc:
            raise DependencyMissingError(f"llama-cpp-python is not installed ({exc}); {INSTALL_HINT}") from exc
        path = model_path(self.model, self.config.models_dir, verify=self.config.verify or verify)
        started = time.perf_counter()
        try:
            llama = LazyGrammarLlama(
                model_path=str(path),
                n_ctx=self.config.n_ctx or self.model.n_ctx,
                n_threads=self.config.n_threads,
                n_batch=self.config.n_batch,
                n_ubatch=self.config.n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ProviderError(f"llama.cpp cannot load {path}: {exc}") from exc
        llama.lazy_grammar = self.config.lazy_grammar
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ProviderError(f"{path} carries no chat template (tokenizer.chat_template)")
        eos = llama.token_eos()
        bos = llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([eos], special=True).decode("utf-8", "replace") if eos >= 0 else "",
            bos_token=llama.detokenize([bos], special=True).decode("utf-8", "replace") if bos >= 0 else "",
            stop_token_ids=[eos] if eos >= 0 else None,
        )
        self._template_knows_tools = "tools" in template
        self._llama = llama
        self._path = path
        self._file_identity = _identity(path)
        self._fingerprint = "|".join([
            self.model.sha256, str(self._file_identity), f"b{self.config.n_batch}", f"c{llama.n_ctx()}",
            f"t{llama.n_threads}/{llama.n_threads_batch}", _llama_version(),
        ])
        logger.info("loaded %s in %.2fs", self.model.key, time.perf_counter() - started)

    def close(self) -> None:
        """Free the loaded model (idempotent); a later call loads it again."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._llama is not None:
            self._llama.close()
        self._llama = None
        self._grammars.clear()
        if self.kv_cache is not None:
            self.kv_cache.clear()

    def _reload_if_file_changed(self) -> None:
        """A model file replaced or rewritten since loading: drop every cached state and load it again
        (verified), so no state computed with other weights is ever restored."""
        if self._path is None or _identity(self._path) == self._file_identity:
            return
        logger.warning("%s changed on disk since it was loaded; reloading it and dropping the KV cache", self._path)
        self._close_locked()
        self._load_locked(verify=True)

    # -- one completion ------------------------------------------------------------------------------

    def _grammar(self, schema: JSONObject) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        key = content_hash(schema)
        grammar = self._grammars.get(key)
        if grammar is None:
            try:
                grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            except Exception as exc:  # the converter raises assorted errors for schema features it lacks
                logger.warning("no grammar for schema (%s); falling back to any JSON plus validation", exc)
                grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            self._grammars[key] = grammar
        return grammar

    def prompt(self, request: ChatRequest) -> str:
        """The exact prompt text the model sees for `request` (loads the model)."""
        self.load()
        messages, tools = template_messages(request, self._template_knows_tools)
        return str(self._formatter(messages=messages, tools=tools).prompt)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request (loads the model, and reloads it when its file changed; one completion at a
        time). Raises `ProviderError` subclasses on failure."""
        with self._lock:
            self._reload_if_file_changed()
            self._load_locked()
            return self._chat_locked(request)

    def _chat_locked(self, request: ChatRequest) -> ChatResponse:
        llama = self._llama
        messages, tools = template_messages(request, self._template_knows_tools)
        formatted = self._formatter(messages=messages, tools=tools)
        tokens = llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
        offered = request.offered_tools()
        schema: JSONObject | None = None
        if request.response_format is not None:
            schema = request.response_format.json_schema
        elif request.forces_tool_call():
            schema = tool_call_schema(offered)
        deadline = None if self.config.timeout_s is None else time.monotonic() + self.config.timeout_s
        timed_out = False

        def past_deadline(_tokens: Any, _logits: Any) -> bool:
            nonlocal timed_out
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
            return timed_out

        from llama_cpp.llama import StoppingCriteriaList

        stop = list(request.stop) + ([formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop or []))
        if len(tokens) >= llama.n_ctx():
            raise ProviderError(
                f"{self.model.key}: the prompt has {len(tokens)} tokens, more than the context window of "
                f"{llama.n_ctx()} allows (requested tokens exceed it)"
            )
        # The prompt minus its last token is evaluated here, block by block, restoring the longest cached
        # block boundary; create_completion then finds exactly that prefix in place and decodes only the
        # last token before sampling (see prefix_cache). Its own prefix matching never picks the point.
        evaluation = evaluate_prompt(
            llama, tokens, block_tokens=self.config.n_batch, fingerprint=self._fingerprint, cache=self.kv_cache,
            keep=self._tail_start(request, tokens),
        )
        try:
            completion = llama.create_completion(
                prompt=tokens,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=0,  # disabled: OpenAI semantics (temperature and top_p only)
                min_p=0.0,
                repeat_penalty=1.0,
                seed=request.seed,
                stop=stop,
                grammar=self._grammar(schema) if schema is not None else None,
                stopping_criteria=StoppingCriteriaList([past_deadline]),
            )
        except ValueError as exc:  # e.g. "Requested tokens (N) exceed context window of M"
            raise ProviderError(f"{self.model.key}: {exc}") from exc
        self.calls += 1
        # The generated tokens that went through the model (the last sampled one, e.g. EOS, is not decoded).
        self.last_token_ids = tuple(int(t) for t in llama.input_ids[len(tokens):llama.n_tokens])
        if timed_out:
            raise ProviderTimeoutError(f"{self.model.key} took longer than {self.config.timeout_s:g}s")
        choice = completion["choices"][0]
        text: str = choice["text"]
        usage = _usage(completion, evaluation)
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        message = self._message(request, text, offered)
        if message.tool_calls:
            finish = "tool_calls"
        return ChatResponse(model=self.model_id, message=message, finish_reason=finish, usage=usage)

    def _tail_start(self, request: ChatRequest, tokens: list[int]) -> list[int]:
        """Where what varies per request begins in `tokens` — a closing system note (a system message
        after the first: the agent loop's step note), else the closing schema or forced-call text — so
        the prefix cache keeps a state there (the next request of the conversation repeats what precedes it)."""
        note = len(request.messages) > 1 and request.messages[-1].role == "system"
        if self.kv_cache is None or (not note and request.response_format is None and not request.forces_tool_call()):
            return []
        stable = request.model_copy(update={"messages": request.messages[:-1]}) if note else request
        messages, tools = _template_messages(stable, self._template_knows_tools)
        formatted = self._formatter(messages=messages, tools=tools)
        plain = self._llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
        shared = next((i for i, (a, b) in enumerate(zip(tokens, plain, strict=False)) if a != b), min(len(tokens), len(plain)))
        return [shared]

    def _message(self, request: ChatRequest, text: str, offered: list[FunctionTool]) -> ChatMessage:
        length = len(request.messages)
        if request.forces_tool_call():
            # Constrained output is one {"name", "arguments"} object; a truncated one stays text.
            content, calls = extract_tool_calls(text, [t.name for t in offered])
        elif offered and request.response_format is None and request.tool_choice != "none":
            content, calls = extract_tool_calls(text, [t.name for t in offered])
        else:
            return ChatMessage.assistant(text.strip() if request.response_format is None else text)
        tool_calls = to_tool_calls(calls, length)
        if isinstance(request.tool_choice, NamedToolChoice) and not tool_calls:
            logger.debug("forced call of %s produced no parseable call: %r", request.tool_choice.name, text[:200])
        return ChatMessage.assistant(content, tool_calls)
