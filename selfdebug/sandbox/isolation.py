"""Which isolation a machine allows, and the Linux primitives that build it.

Levels, strongest first (every result names the one that ran; none of them is "unisolated"):

``root-ns-cgroup``  root: PID, network, mount, IPC and UTS namespaces; the candidate runs under its own
                    unprivileged uid with no_new_privs; cgroup v1 memory and pids limits per worker; rlimits.
``root-ns``         the same without cgroups.
``user-ns``         no root: an unprivileged user namespace with PID, network and mount namespaces and
                    rlimits; the candidate keeps the caller's uid (mapped to root inside the namespace) with
                    every capability dropped (it cannot unmount what hides the project, nor ptrace).
``rlimits``         no namespaces: own session, rlimits, a child subreaper that kills escaped processes,
                    sockets blocked in-process (an audit hook, which ``ctypes`` could bypass).
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

LEVELS = ("rlimits", "user-ns", "root-ns", "root-ns-cgroup")
NS_FLAGS = ["--pid", "--fork", "--mount-proc", "--net", "--mount", "--ipc", "--uts"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
UID_BASE = 61000
"""Worker ``i`` runs candidates as uid/gid ``UID_BASE + i`` (root levels): workers cannot signal each other,
and ``RLIMIT_NPROC`` counts only that worker's processes."""

WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
HIDE_CANDIDATES = ("/root", "/home", "/work", "/farm", "/mnt", "/srv", "/media")

_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
PR_CAPBSET_DROP, PR_SET_SECUREBITS = 24, 28
SECBIT_ALL_LOCKED_NOROOT = 0x2F  # NOROOT, NO_SETUID_FIXUP (both locked), KEEP_CAPS locked off
SYSTEM_DIRS = {"/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/var",
               "/opt", "/run", "/boot"}


def _probe(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _cgroups_usable() -> bool:
    if os.geteuid() != 0:
        return False
    for ctrl in ("memory", "pids"):
        d = current_cgroup(ctrl)
        if not (d / "cgroup.procs").exists() or not os.access(d, os.W_OK):
            return False
    return True


@functools.lru_cache(maxsize=1)
def isolation_level() -> str:
    """The strongest level this machine allows (probed once per process)."""
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0 and _probe([unshare, *NS_FLAGS, "true"]):
        return "root-ns-cgroup" if _cgroups_usable() else "root-ns"
    if unshare and _probe([unshare, "--user", "--map-root-user", *NS_FLAGS, "true"]):
        return "user-ns"
    return "rlimits"


def launch_prefix(level: str) -> list[str]:
    """The command prefix that starts a fork server at ``level``."""
    unshare = shutil.which("unshare") or "unshare"
    if level.startswith("root-ns"):
        return [unshare, "--kill-child", *NS_FLAGS]
    if level == "user-ns":
        return [unshare, "--kill-child", "--user", "--map-root-user", *NS_FLAGS]
    return []


def describe(level: str, uid: int | None) -> str:
    parts = {"root-ns-cgroup": "pid+net+mount+ipc+uts namespaces, uid {uid}, no_new_privs, cgroup memory+pids, "
                               "rlimits, private tmpfs",
             "root-ns": "pid+net+mount+ipc+uts namespaces, uid {uid}, no_new_privs, rlimits, private tmpfs",
             "user-ns": "user+pid+net+mount namespaces, all capabilities dropped, no_new_privs, rlimits, "
                        "private tmpfs",
             "rlimits": "own session, rlimits, subreaper, in-process socket block (weak: no namespaces)"}
    return f"{level}: " + parts[level].format(uid=uid)


# --- cgroups (harness side) -------------------------------------------------------------------------

def current_cgroup(ctrl: str) -> Path:
    """This process's own cgroup for ``ctrl``: worker cgroups nest under it, so every limit that applies to
    the harness (an outer test wrapper's, a container's) applies to the workers too."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if ctrl in ctrls.split(","):
                d = CGROUP_ROOT / ctrl / path.lstrip("/")
                if d.is_dir():
                    return d
    except (OSError, ValueError):
        pass
    return CGROUP_ROOT / ctrl


def make_cgroups(name: str, memory_bytes: int, pids: int) -> list[str]:
    """Create memory and pids cgroups ``name``; returns their directories (the fork server joins them)."""
    made = []
    for ctrl, knob, value in (("memory", "memory.limit_in_bytes", memory_bytes), ("pids", "pids.max", pids)):
        d = current_cgroup(ctrl) / name
        d.mkdir(exist_ok=True)
        (d / knob).write_text(str(value))
        made.append(str(d))
    return made


def remove_cgroups(dirs: list[str], wait_s: float = 3.0) -> None:
    """Remove cgroups once their (killed) processes are gone; the namespace teardown takes a moment."""
    deadline = time.monotonic() + wait_s
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break  # left for remove_stale_cgroups of a later run
                time.sleep(0.02)


def remove_stale_cgroups(prefix: str = "selfdebug-sandbox-") -> None:
    """Remove empty worker cgroups left by harness processes that no longer exist."""
    for ctrl in ("memory", "pids"):
        parent = current_cgroup(ctrl)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            if name.startswith(prefix):
                pid = name[len(prefix):].split("-")[0]
                if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    try:
                        os.rmdir(parent / name)
                    except OSError:
                        pass


# --- inside the namespace (fork server side) --------------------------------------------------------

def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    if _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {target}: {os.strerror(err)}")


def private_filesystem(keep: list[str], hide_extra: list[str]) -> list[str]:
    """In a fresh mount namespace: private tmpfs over every world-writable directory, and empty tmpfs over
    home and project directories (the repository, benchmark data, other users), re-binding read-only the
    paths the interpreter needs (``keep``). Returns what was hidden."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for d in private_scratch_dirs():
        _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
    hide = sorted({os.path.realpath(p) for p in (*HIDE_CANDIDATES, *hide_extra) if os.path.isdir(p)}
                  - SYSTEM_DIRS)
    hide = [h for h in hide if not any(h != o and h.startswith(o + "/") for o in hide)]
    keep = sorted({os.path.realpath(k) for k in keep if os.path.isdir(k)})
    staged = []
    os.makedirs("/tmp/.keep", exist_ok=True)
    for n, k in enumerate(keep):
        if any(k == h or k.startswith(h + "/") for h in hide):
            stage = f"/tmp/.keep/{n}"
            os.mkdir(stage)
            _mount(k, stage, None, MS_BIND | MS_REC)
            staged.append((stage, k))
    for h in hide:
        _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for stage, k in staged:
        os.makedirs(k, exist_ok=True)
        _mount(stage, k, None, MS_BIND | MS_REC)
        _mount(None, k, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chmod("/tmp/.keep", 0o700)
    return hide


def private_scratch_dirs() -> list[str]:
    """The world-writable directories that get a private tmpfs (and are emptied after every job)."""
    return [d for d in WORLD_WRITABLE if os.path.isdir(d) and not os.path.islink(d)]


def join_cgroups(dirs: list[str]) -> None:
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def interpreter_paths() -> list[str]:
    """Directories the warm interpreter and its lazily imported modules live in."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return sorted(paths)


def address_space_bytes() -> int:
    """The current process's virtual size, the base that the memory budget is added to."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def confine_child(level: str, uid: int | None, limits: dict[str, int]) -> None:
    """Applied in the forked child before any candidate code: session, rlimits, identity, no_new_privs."""
    os.setsid()
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if level.startswith("root-ns"):
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")  # the OOM killer picks the candidate, not the fork server
        except OSError:
            pass
    rl = resource
    for which, value in ((rl.RLIMIT_AS, limits["as"]), (rl.RLIMIT_CPU, limits["cpu"]),
                         (rl.RLIMIT_FSIZE, limits["fsize"]), (rl.RLIMIT_NOFILE, limits["nofile"]),
                         (rl.RLIMIT_CORE, 0), (rl.RLIMIT_MEMLOCK, 0), (rl.RLIMIT_MSGQUEUE, 0)):
        rl.setrlimit(which, (value, value))
    if uid is not None:  # root levels: drop to the worker's own unprivileged identity
        rl.setrlimit(rl.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif level == "user-ns":  # uid 0 of the namespace is the only uid mapped: drop its capabilities instead
        drop_capabilities()
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError("prctl(NO_NEW_PRIVS) failed")
    if level == "rlimits":
        _block_sockets()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Lose every capability for good: namespace-root then cannot unmount the hiding tmpfs, ptrace the fork
    server, or override file permissions; securebits stop ``execve`` from giving root its caps back."""
    if _libc.prctl(PR_SET_SECUREBITS, SECBIT_ALL_LOCKED_NOROOT, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECUREBITS) failed")
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _block_sockets() -> None:
    def hook(event: str, args: tuple) -> None:
        if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"):
            raise PermissionError("network access is disabled in the sandbox")
    sys.addaudithook(hook)
