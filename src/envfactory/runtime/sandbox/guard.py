"""The in-process guard of a sandbox worker: an audit hook (PEP 578) and two removed doors.

The guard is hardening, not a security boundary: CPython has no in-process boundary, and the
kernel layers (`confine`) are what keep toolkit code away from the host. It has two jobs:

1. Refuse reflection that leads from toolkit code to the worker's own objects: the garbage
   collector's object lists, tracing and profiling hooks, new audit hooks, ctypes, code-object
   construction and `__code__` replacement always; and, once the worker starts serving calls, frames
   (`sys._getframe`, traceback/generator/coroutine frames, `f_code`, `__code__`). Python-level signal
   handlers (whose frame argument would be such a door) cannot be installed, and the ctypes the
   worker used for its own set-up is removed from the interpreter.
2. Stand in, as a reported fallback, for a kernel layer that is missing: file access outside the read
   roots and the scratch directory, sockets, and process creation.

A refused operation raises `PermissionError` naming the event, which the worker reports as the tool's
`execution_error`. Sessions' integrity does not rest on this guard: the parent checks every state the
worker hands back against its own record of the session's hash (see `backend`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

SERVE_EVENT = "envfactory.sandbox.serve"

_ALWAYS = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.settrace", "sys.setprofile",
    "sys._current_frames", "sys._current_exceptions", "sys.addaudithook", "code.__new__",
})
_WHILE_SERVING = frozenset({"sys._getframe", "sys._getframemodulename"})
_FRAME_ATTRIBUTES = frozenset({
    "tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_code", "gi_code", "cr_code", "ag_code", "__code__",
})
_REFUSED_IMPORTS = frozenset({"ctypes", "_ctypes"})
_PROCESS_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
    "subprocess.Popen", "pty.spawn", "signal.pthread_kill",
})
_WRITE_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.truncate", "os.utime", "os.chflags", "os.lchflags", "os.mkfifo", "os.mknod", "os.setxattr",
    "os.removexattr", "shutil.chown", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
    "shutil.copytree", "shutil.move", "shutil.rmtree",
})
_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.getxattr", "os.listxattr", "glob.glob", "glob.glob/2"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise PermissionError("sandbox: toolkits may not install signal handlers")


def close_doors() -> None:
    """Remove what the audit hook cannot watch. Call once, before any toolkit code runs."""
    import signal

    signal.signal = _refuse
    builtin = sys.modules.get("_signal")
    if builtin is not None:
        builtin.__dict__["signal"] = _refuse
    for name in [n for n in sys.modules if n in _REFUSED_IMPORTS or n.startswith("ctypes.")]:
        del sys.modules[name]
    confine = "envfactory.runtime.sandbox.confine"
    sys.modules.pop(confine, None)
    package = sys.modules.get("envfactory.runtime.sandbox")
    if package is not None and hasattr(package, "confine"):
        delattr(package, "confine")


def install_guard(
    *, files: bool, network: bool, processes: bool, read_roots: Sequence[str], write_root: str
) -> None:
    """Install the audit hook. `files`/`network`/`processes` turn on the fallback rules of those areas.

    The hook starts in the import phase (frames allowed: pydantic and `inspect` need them to build the
    toolkit's models and tool schemas) and moves, one way, to the serving phase when the worker raises
    `SERVE_EVENT`. The phase lives only in the hook's closure, which nothing in Python can reach.
    """
    readable = (*(_prefix(p) for p in read_roots), _prefix(write_root))
    writable = (_prefix(write_root),)
    exact = frozenset(os.path.normpath(p) for p in (*read_roots, write_root, os.devnull))
    always, while_serving, attributes = _ALWAYS, _WHILE_SERVING, _FRAME_ATTRIBUTES
    refused_imports, process_events = _REFUSED_IMPORTS, _PROCESS_EVENTS
    write_events, read_events, write_flags = _WRITE_EVENTS, _READ_EVENTS, _WRITE_FLAGS
    normpath, fspath, join, getcwd = os.path.normpath, os.fspath, os.path.join, os.getcwd
    serving = False
    # Every event a rule below looks at, beside the prefixed ones: anything else (`builtins.id`, raised by
    # every `id()` and so by every `copy.deepcopy`, is the most frequent) leaves after one set lookup.
    watched = frozenset({
        *always, *while_serving, *process_events, *write_events, *read_events,
        "import", "object.__setattr__", "object.__getattr__", SERVE_EVENT, "open",
    })
    event_prefixes = ("ctypes.", "socket.")

    def inside(path: object, prefixes: tuple[str, ...]) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            text = fspath(path)  # type: ignore[call-overload]
        except TypeError:
            return False
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        if not text.startswith("/"):
            text = join(getcwd(), text)
        text = normpath(text)
        return text in exact or text.startswith(prefixes) or text == os.devnull

    def deny(event: str) -> None:
        raise PermissionError(f"sandbox: {event} is not allowed in sandboxed toolkits")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal serving
        if event not in watched and not event.startswith(event_prefixes):
            return
        if event in always or event.startswith("ctypes."):
            deny(event)
        elif event == "import":
            if args and args[0] in refused_imports:
                deny(f"import {args[0]}")
        elif event == "object.__setattr__":
            if len(args) > 1 and args[1] == "__code__":
                deny("replacing __code__")
        elif event == SERVE_EVENT:
            serving = True
        elif serving and (event in while_serving or (event == "object.__getattr__" and args[1] in attributes)):
            deny(event if event != "object.__getattr__" else f"reading {args[1]}")
        elif files and event == "open":
            writes = len(args) > 2 and isinstance(args[2], int) and bool(args[2] & write_flags)
            if not inside(args[0], writable if writes else readable):
                deny(f"opening {args[0]!r} for {'writing' if writes else 'reading'}")
        elif files and event in write_events:
            if not all(inside(a, writable) for a in args[:2] if isinstance(a, str | bytes | os.PathLike)):
                deny(event)
        elif files and event in read_events:
            if args and not inside(args[0] if args[0] is not None else ".", readable):
                deny(event)
        elif (network and event.startswith("socket.")) or (processes and event in process_events):
            deny(event)

    sys.addaudithook(hook)


def begin_serving() -> None:
    """Move the guard to its serving phase (one way: frames become unavailable to toolkit code)."""
    sys.audit(SERVE_EVENT)


def _prefix(path: str) -> str:
    return os.path.normpath(path).rstrip("/") + "/"
