"""Kernel confinement of a sandbox worker, applied by the worker to itself before any toolkit code runs.

Linux only. Every layer is probed at runtime; a layer that cannot be applied is named in the report's
`fallbacks` (and the audit-hook guard takes over its area), never skipped silently. In order:

1. network namespace: `unshare(CLONE_NEWNET)` (as root), or a user+network namespace (unprivileged);
   the worker sees only a loopback interface that is down, so no address is reachable;
   disk quota: a private mount namespace in which the scratch directory is a tmpfs of
   `limits.disk_bytes` (and a bounded number of inodes), so whatever the toolkit writes lives in
   memory the quota bounds and the host's disk is never touched (without a mount namespace, the
   worker measures its scratch directory after every call instead: a fallback);
2. resource limits: RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0;
3. identity: as root, the worker becomes user and group `nobody` (so RLIMIT_NPROC binds) with every
   capability dropped. When a read root (the interpreter under a 0700 `/root`, a 0700 pytest
   temporary directory) is not reachable by `nobody`, the file-system uid alone stays 0: the process
   still has no capability, signals and RLIMIT_NPROC still see `nobody`, and Landlock decides which
   files it may touch. Without Landlock this mode is never used (the worker is plain `nobody`);
4. RLIMIT_NPROC (after the identity change, which is what makes it bind);
5. `PR_SET_NO_NEW_PRIVS`;
6. Landlock: reads only beneath the read roots (interpreter, stdlib, site-packages, sys.path, the
   environment directory, shared libraries), reads and writes only beneath the scratch directory,
   execution nowhere; TCP bind/connect denied (ABI >= 4); signals and abstract UNIX sockets scoped to
   the worker (ABI >= 6);
7. seccomp (x86_64): no sockets, no execve, no process creation (threads excepted), no ptrace or
   cross-process memory access, no namespace, mount, BPF, keyring, io_uring or perf calls, and
   signals only to itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import resource
import site
import stat
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import envfactory
from envfactory.runtime.sandbox.limits import SandboxLimits
from envfactory.runtime.sandbox.report import Identity, Layer, ResourceLimit, SandboxReport

NOBODY = 65534

# clone(2) / unshare(2)
_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_THREAD = 0x00010000
# mount(2)
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
INODE_BYTES = 4096  # one inode allowed per this many bytes of quota (tmpfs inodes cost kernel memory)
# prctl(2)
_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_DROP = 24
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
# capset(2)
_CAP_VERSION_3 = 0x20080522
_CAP_SETUID = 7
# Landlock (the syscall numbers are the same on every architecture)
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1
# seccomp / classic BPF
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_EPERM = 1
_ENOSYS = 38
_LD_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
# x86_64 syscall numbers the filter refuses with EPERM.
_X86_64_DENIED = {
    "socket": 41, "connect": 42, "fork": 57, "vfork": 58, "execve": 59, "ptrace": 101, "personality": 135,
    "chroot": 161, "pivot_root": 155, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "bpf": 321, "execveat": 322, "userfaultfd": 323, "pidfd_send_signal": 424,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "pidfd_open": 434,
    "pidfd_getfd": 438,
}
_X86_64_CLONE = 56
_X86_64_CLONE3 = 435
_X86_64_SIGNALS = (62, 200, 234)  # kill, tkill, tgkill: allowed only towards the worker itself

# Public, read-only locations a CPython extension module may need at import time.
_SYSTEM_READ_ROOTS = (
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache", "/usr/share/zoneinfo",
)
# Imported before dropping to plain `nobody` when Landlock is missing and the stdlib is unreadable.
_PRELOAD = (
    "abc", "array", "base64", "bisect", "calendar", "codecs", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "encodings.idna", "enum", "fnmatch", "fractions", "functools", "gc",
    "glob", "hashlib", "heapq", "hmac", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging",
    "math", "numbers", "operator", "pathlib", "pprint", "random", "re", "secrets", "shutil", "signal",
    "socket", "statistics", "string", "struct", "subprocess", "tempfile", "textwrap", "time", "types",
    "typing", "unicodedata", "uuid", "weakref", "zoneinfo",
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


@dataclass(frozen=True, slots=True)
class Confinement:
    """The result of `confine`: the report, plus which areas the audit-hook guard must cover."""

    report: SandboxReport
    guard_files: bool
    guard_network: bool
    guard_processes: bool


class _Libc:
    """Thin typed wrappers over the libc calls confinement needs (errno raised as OSError)."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(None, use_errno=True)
        self._lib.syscall.restype = ctypes.c_long

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return result

    def unshare(self, flags: int) -> None:
        self._check(self._lib.unshare(ctypes.c_int(flags)), "unshare")

    def prctl(self, option: int, arg2: int = 0, arg3: object = 0) -> None:
        third = ctypes.c_ulong(arg3) if isinstance(arg3, int) else arg3
        zero = ctypes.c_ulong(0)
        self._check(
            self._lib.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), third, zero, zero), f"prctl({option})"
        )

    def capset(self, effective: int, permitted: int) -> None:
        header = _CapHeader(_CAP_VERSION_3, 0)
        data = (_CapData * 2)(_CapData(effective, permitted, 0), _CapData(0, 0, 0))
        self._check(self._lib.capset(ctypes.byref(header), data), "capset")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        def text(value: str | None) -> bytes | None:
            return value.encode() if value is not None else None

        self._check(self._lib.mount(text(source), text(target), text(fstype), ctypes.c_ulong(flags), text(data)),
                    f"mount {target}")

    def setfsuid(self, uid: int) -> None:
        self._lib.setfsuid(ctypes.c_uint(uid))  # returns the previous fsuid; checked via /proc

    def syscall(self, number: int, *args: object) -> int:
        return self._check(self._lib.syscall(ctypes.c_long(number), *args), f"syscall {number}")


# -- probes ---------------------------------------------------------------------------------------------
def _net_namespace() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def landlock_abi(libc: _Libc | None = None) -> int:
    """The Landlock ABI version this kernel offers (0 when Landlock is missing or disabled)."""
    try:
        return (libc or _Libc()).syscall(
            _SYS_LANDLOCK_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0),
            ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
        )
    except OSError:
        return 0


def read_roots(env_dir: Path) -> list[Path]:
    """Directories (and files) a worker may read: interpreter, stdlib, site-packages, sys.path
    entries, the envfactory package, the environment directory and public shared libraries."""
    candidates: list[str] = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths = sysconfig.get_paths()
    candidates += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    candidates += site.getsitepackages()
    candidates += [entry for entry in sys.path if entry]
    candidates.append(str(Path(envfactory.__file__).resolve().parent))
    candidates.append(str(env_dir))
    candidates += _SYSTEM_READ_ROOTS
    roots: list[Path] = []
    for candidate in candidates:
        path = Path(candidate)
        if not path.exists():
            continue
        resolved = path.resolve()
        for root in (path.absolute(), resolved):  # both: the interpreter may be reached through a link
            if root not in roots:
                roots.append(root)
    return roots


def _granted(st: os.stat_result, need: int) -> bool:
    if st.st_uid == NOBODY:
        bits = (st.st_mode >> 6) & 0o7
    elif st.st_gid == NOBODY:
        bits = (st.st_mode >> 3) & 0o7
    else:
        bits = st.st_mode & 0o7
    return bits & need == need


def _reachable_by_nobody(path: Path, write: bool = False) -> bool:
    """Whether user `nobody` (no supplementary groups, no ACLs considered) can reach and read
    (or write) `path`: every ancestor searchable, the path itself readable (and writable)."""
    try:
        if not all(_granted(os.stat(parent), 0o1) for parent in path.parents):
            return False
        st = os.stat(path)
    except OSError:
        return False
    need = 0o4 | (0o2 if write else 0) | (0o1 if stat.S_ISDIR(st.st_mode) else 0)
    return _granted(st, need)


# -- the layers -----------------------------------------------------------------------------------------
def _unprivileged_namespaces(libc: _Libc) -> None:
    """A user namespace (which an unprivileged process may create) holding a network namespace. The
    process keeps its own uid and gid inside (mapped one to one), so files it creates in its scratch
    directory have an owner; the capabilities the new namespace grants are dropped right after."""
    uid, gid = os.getuid(), os.getgid()
    libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as fh:
            fh.write(text)


def _disk_quota(libc: _Libc, scratch: Path, limits: SandboxLimits, owner: int | None) -> None:
    """Mount a tmpfs of `limits.disk_bytes` over `scratch` in a private mount namespace and move into it.
    `owner`: the uid/gid the tmpfs root belongs to (None: the caller's)."""
    libc.unshare(_CLONE_NEWNS)
    libc.mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)  # nothing we mount reaches the host
    inodes = max(1024, limits.disk_bytes // INODE_BYTES)
    options = f"size={limits.disk_bytes},nr_inodes={inodes},mode=0700"
    if owner is not None:
        options += f",uid={owner},gid={owner}"
    libc.mount("tmpfs", str(scratch), "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, options)
    os.chdir(scratch)  # the working directory was the directory beneath the mount


def _set_limit(which: int, soft: int, hard: int) -> None:
    current_hard = resource.getrlimit(which)[1]
    hard = hard if current_hard == resource.RLIM_INFINITY else min(hard, current_hard)
    resource.setrlimit(which, (min(soft, hard), hard))


def _rlimits(limits: SandboxLimits) -> None:
    _set_limit(resource.RLIMIT_CORE, 0, 0)
    _set_limit(resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes)
    _set_limit(resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes)
    _set_limit(resource.RLIMIT_NOFILE, limits.open_files, limits.open_files)
    _set_limit(resource.RLIMIT_CPU, limits.cpu_seconds_per_call, limits.cpu_seconds_total)


def _become_nobody(libc: _Libc, keep_root_files: bool) -> None:
    for cap in range(64):  # empty the bounding set while CAP_SETPCAP is still held
        try:
            libc.prctl(_PR_CAPBSET_DROP, cap)
        except OSError:
            break  # EINVAL past the kernel's last capability
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    if not keep_root_files:
        os.setresuid(NOBODY, NOBODY, NOBODY)  # clears every capability (no KEEPCAPS)
        return
    # Keep CAP_SETUID across the uid change just long enough to set the file-system uid back to 0,
    # then drop every capability: file access is then decided by owner bits of root's files and by
    # Landlock, while the real, effective and saved uids (signals, RLIMIT_NPROC) are nobody.
    libc.prctl(_PR_SET_KEEPCAPS, 1)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    libc.capset(1 << _CAP_SETUID, 1 << _CAP_SETUID)
    libc.setfsuid(0)
    libc.capset(0, 0)
    libc.prctl(_PR_SET_KEEPCAPS, 0)


def _landlock(
    libc: _Libc, abi: int, reads: Iterable[Path], scratch: Path, devices: Iterable[Path]
) -> tuple[bool, bool]:
    """Restrict this process with Landlock; returns (network rules applied, scopes applied)."""
    fs = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= 1 << 15  # IOCTL_DEV
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    try:
        file_rights = _FS_READ_FILE
        dir_rights = _FS_READ_FILE | _FS_READ_DIR
        write_rights = (
            dir_rights | _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_DIR | _FS_MAKE_REG
        ) | (fs & (_FS_REFER | _FS_TRUNCATE))
        device_rights = (_FS_READ_FILE | _FS_WRITE_FILE) | (fs & _FS_TRUNCATE)
        rules = [(path, dir_rights if path.is_dir() else file_rights) for path in reads]
        rules.append((scratch, write_rights))
        rules += [(path, device_rights) for path in devices]
        for path, rights in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(rights & fs, fd)
                libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule), ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)
        libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return bool(net), bool(scoped)


def _seccomp_program(pid: int) -> list[tuple[int, int, int, int]]:
    prog: list[tuple[int, int, int, int]] = [
        (_LD_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET, 0, 0, _RET_KILL_PROCESS),  # 32-bit entry points: no business here
        (_LD_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JGE, 0, 1, _X32_SYSCALL_BIT),
        (_RET, 0, 0, _RET_ERRNO | _EPERM),
    ]
    for number in sorted(_X86_64_DENIED.values()):
        prog += [(_JEQ, 0, 1, number), (_RET, 0, 0, _RET_ERRNO | _EPERM)]
    # clone3 cannot be filtered on its flags (they sit behind a pointer): ENOSYS makes libc fall back
    # to clone, whose flags can be checked: threads only.
    prog += [(_JEQ, 0, 1, _X86_64_CLONE3), (_RET, 0, 0, _RET_ERRNO | _ENOSYS)]
    prog += [
        (_JEQ, 0, 4, _X86_64_CLONE),
        (_LD_ABS, 0, 0, 16),  # args[0], low 32 bits (little endian)
        (_JSET, 0, 1, _CLONE_THREAD),
        (_RET, 0, 0, _RET_ALLOW),
        (_RET, 0, 0, _RET_ERRNO | _EPERM),
    ]
    for number in _X86_64_SIGNALS:
        prog += [
            (_JEQ, 0, 4, number),
            (_LD_ABS, 0, 0, 16),
            (_JEQ, 0, 1, pid),
            (_RET, 0, 0, _RET_ALLOW),
            (_RET, 0, 0, _RET_ERRNO | _EPERM),
        ]
    prog.append((_RET, 0, 0, _RET_ALLOW))
    return prog


def _seccomp(libc: _Libc) -> None:
    prog = _seccomp_program(os.getpid())
    filters = (_SockFilter * len(prog))(*(_SockFilter(*instruction) for instruction in prog))
    fprog = _SockFprog(len(prog), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog))


# -- the whole set-up -----------------------------------------------------------------------------------
def confine(env_dir: Path, scratch: Path, limits: SandboxLimits) -> Confinement:
    """Apply every available layer to this (single-threaded) process and report what holds.

    Raises `OSError` only when a step that was available fails half-way (the worker then refuses to
    run toolkit code); missing layers are fallbacks, not errors.
    """
    libc = _Libc()
    fallbacks: list[str] = []
    is_root = os.geteuid() == 0
    status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    parent_netns = _net_namespace()
    abi = landlock_abi(libc)
    roots = read_roots(env_dir)
    devices = [Path("/dev/null")] if Path("/dev/null").exists() else []

    # 1. network namespace
    netns = False
    try:
        if is_root:
            libc.unshare(_CLONE_NEWNET)
        else:
            _unprivileged_namespaces(libc)
        netns = _net_namespace() != parent_netns
    except OSError as exc:
        fallbacks.append(f"no network namespace ({exc.strerror}): network is refused by seccomp/Landlock/audit hook only")

    # 1b. disk quota (needs the privilege of step 1's namespaces, which step 3 drops)
    disk_quota = False
    try:
        _disk_quota(libc, scratch, limits, None)
        disk_quota = True
    except OSError as exc:
        fallbacks.append(f"no private tmpfs for the scratch directory ({exc.strerror}): the disk quota is measured "
                         "after each call, so one call may exceed it until it returns")

    # 2. resource limits (before anything untrusted; NPROC follows the identity change)
    _rlimits(limits)

    # 3. identity
    identity = _change_identity(libc, is_root, netns, roots, devices, scratch, abi, fallbacks)

    # 4. processes
    _set_limit(resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes)

    # 5./6. no new privileges, Landlock
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1)
    landlock_net = landlock_scoped = False
    if abi > 0:
        landlock_net, landlock_scoped = _landlock(libc, abi, roots, scratch, devices)
        if not landlock_scoped:
            fallbacks.append(f"Landlock ABI {abi} < 6: signals and abstract UNIX sockets are not scoped by Landlock")
    else:
        fallbacks.append("no Landlock: file access is limited by an audit-hook guard (not a security boundary)")

    # 7. seccomp
    if platform.machine() == "x86_64":
        _seccomp(libc)
    else:
        fallbacks.append(f"no seccomp filter for {platform.machine()}: process and socket calls rely on other layers")

    return _what_holds(status_fd, identity, abi, netns, landlock_net, roots, scratch, disk_quota, fallbacks)


def _change_identity(libc: _Libc, is_root: bool, netns: bool, roots: list[Path], devices: list[Path], scratch: Path,
                     abi: int, fallbacks: list[str]) -> Identity:
    """Step 3 of `confine`: become nobody when started as root (keeping file-system uid 0 only where
    Landlock confines files and nobody cannot reach a read root), else drop the capabilities a new user
    namespace granted. Appends what does not hold to `fallbacks`."""
    identity: Identity = "unchanged"
    if is_root:
        unreachable = [str(p) for p in [*roots, *devices] if not _reachable_by_nobody(p)]
        if not all(_granted(os.stat(parent), 0o1) for parent in scratch.parents):  # search only
            unreachable.append(str(scratch.parent))
        keep_root_files = bool(unreachable) and abi > 0
        if not keep_root_files:
            os.chown(scratch, NOBODY, NOBODY)  # the scratch directory is the worker's own
        if unreachable and not keep_root_files:
            fallbacks.append(
                "no Landlock: running as plain nobody although these are unreadable to it (modules there "
                f"cannot be imported after start): {', '.join(unreachable[:4])}"
            )
            for name in _PRELOAD:
                with contextlib.suppress(ImportError):
                    __import__(name)
        _become_nobody(libc, keep_root_files)
        identity = "nobody-with-root-file-access" if keep_root_files else "nobody"
        if keep_root_files:
            fallbacks.append(
                "file-system uid stays 0 (no capabilities) because nobody cannot reach "
                f"{', '.join(unreachable[:4])}; Landlock alone confines file access"
            )
    else:
        if netns:
            libc.capset(0, 0)  # the capabilities a new user namespace granted
        fallbacks.append(
            f"not started as root: the worker keeps uid {os.getuid()} (RLIMIT_NPROC counts every process of that user)"
        )
    return identity


def _what_holds(status_fd: int, identity: Identity, abi: int, netns: bool, landlock_net: bool, roots: list[Path],
                scratch: Path, disk_quota: bool, fallbacks: list[str]) -> Confinement:
    """The end of `confine`: read back from `/proc/self/status` (opened before the layers closed it off;
    closed here) which layers hold, and report them with the fallbacks."""
    status = dict(
        line.split(":\t", 1) for line in os.pread(status_fd, 65536, 0).decode("ascii").splitlines() if ":\t" in line
    )
    os.close(status_fd)
    uids = [int(v) for v in status["Uid"].split()]
    gids = [int(v) for v in status["Gid"].split()]
    nnp = status.get("NoNewPrivs", "0").strip() == "1"
    filtered = status.get("Seccomp", "0").strip() == "2"
    caps_zero = all(int(status.get(field, "1"), 16) == 0 for field in ("CapEff", "CapPrm", "CapAmb"))
    nproc_binds = uids[0] != 0
    if not nproc_binds:
        fallbacks.append("the worker's real uid is 0, which RLIMIT_NPROC does not bind")

    filesystem: list[Layer] = ["landlock"] if abi > 0 else ["audit-hook"]
    network: list[Layer] = []
    processes: list[Layer] = []
    if netns:
        network.append("network-namespace")
    if filtered:
        network.append("seccomp")
        processes.append("seccomp")
    if landlock_net:
        network.append("landlock")
    if nproc_binds:
        processes.insert(0, "rlimit-nproc")
    if abi > 0:
        processes.append("landlock")
    guard_network = not (netns or filtered)
    guard_processes = not (nproc_binds or filtered)
    if guard_network:
        network.append("audit-hook")
    if guard_processes:
        processes.append("audit-hook")
    report = SandboxReport(
        pid=os.getpid(),
        identity=identity,
        uid=uids[0],
        gid=gids[0],
        fsuid=uids[3],
        no_new_privs=nnp,
        capabilities_dropped=caps_zero,
        landlock_abi=abi,
        network_namespace=netns,
        seccomp=filtered,
        filesystem=tuple(filesystem),
        network=tuple(network),
        processes=tuple(processes),
        read_roots=tuple(str(p) for p in roots),
        write_root=str(scratch),
        disk_quota=disk_quota,
        limits=tuple(
            ResourceLimit(name=name, soft=resource.getrlimit(which)[0], hard=resource.getrlimit(which)[1])
            for name, which in (
                ("RLIMIT_AS", resource.RLIMIT_AS), ("RLIMIT_CPU", resource.RLIMIT_CPU),
                ("RLIMIT_NPROC", resource.RLIMIT_NPROC), ("RLIMIT_FSIZE", resource.RLIMIT_FSIZE),
                ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE), ("RLIMIT_CORE", resource.RLIMIT_CORE),
            )
        ),
        fallbacks=tuple(fallbacks),
    )
    return Confinement(
        report=report, guard_files=abi == 0, guard_network=guard_network, guard_processes=guard_processes
    )
