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
CPU_SHARES = 1024  # every worker's cgroup gets the same weight (the kernel's default for one process)
UID_BASE = 61000
"""Worker ``i`` runs candidates as uid/gid ``UID_BASE + i`` (root levels): workers cannot signal each other,
and ``RLIMIT_NPROC`` counts only that worker's processes."""

WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
HIDE_CANDIDATES = ("/root", "/home", "/work", "/farm", "/mnt", "/srv", "/media")

_libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MS_NOEXEC, MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 8, 1024, 2048, 1 << 21
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
    cgroups = "memory+pids+cpu" if level == "root-ns-cgroup" and cpu_cgroup_usable() else "memory+pids"
    parts = {"root-ns-cgroup": "pid+net+mount+ipc+uts namespaces, uid {uid}, no_new_privs, cgroup {cgroups}, "
                               "rlimits, private tmpfs",
             "root-ns": "pid+net+mount+ipc+uts namespaces, uid {uid}, no_new_privs, rlimits, private tmpfs",
             "user-ns": "user+pid+net+mount namespaces, all capabilities dropped, no_new_privs, rlimits, "
                        "private tmpfs",
             "rlimits": "own session, rlimits, subreaper, in-process socket block (weak: no namespaces)"}
    return f"{level}: " + parts[level].format(uid=uid, cgroups=cgroups)


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


def cpu_cgroup_usable() -> bool:
    d = current_cgroup("cpu")
    return (d / "cgroup.procs").exists() and (d / "cpu.shares").exists() and os.access(d, os.W_OK)


def make_cgroups(name: str, memory_bytes: int, pids: int) -> list[str]:
    """Create memory and pids cgroups ``name`` (and a cpu one where the controller is writable); returns
    their directories (the fork server joins them).

    The cpu cgroup gives every worker the same CPU weight however many processes it runs. Without it the
    scheduler shares the cores per process (or per session, where autogroup is on), so a fork bomb's 48
    spinning processes on one worker starve the other worker's candidate into a wall-clock timeout it did
    not earn: measured with autogroup off, a 0.7 s memory bomb timed out at 5 s in 2 runs of 4."""
    knobs = [("memory", "memory.limit_in_bytes", memory_bytes), ("pids", "pids.max", pids)]
    if cpu_cgroup_usable():
        knobs.append(("cpu", "cpu.shares", CPU_SHARES))
    made = []
    for ctrl, knob, value in knobs:
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
    for ctrl in ("memory", "pids", "cpu"):
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


def _under(path: str, dirs: list[str] | set[str]) -> bool:
    """``path`` is one of ``dirs`` or lies below one."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _outermost(paths: set[str]) -> list[str]:
    """The paths not below another one of them, sorted."""
    return sorted(p for p in paths if not any(p != o and p.startswith(o.rstrip("/") + "/") for o in paths))


def private_filesystem(keep: list[str], hide_extra: list[str]) -> list[str]:
    """In a fresh mount namespace: private tmpfs over every world-writable directory, and empty read-only
    tmpfs over home and project directories (the repository, benchmark data, other users), re-binding
    read-only the paths the interpreter needs (``keep``), wherever they live: under a hidden directory (a
    virtual environment inside the repository) or under ``/tmp`` (a checkout cloned there). A hidden
    directory inside a kept one stays hidden. Returns what was hidden."""
    scratch = private_scratch_dirs()
    # Resolved on the real filesystem, before any mount: once /tmp is a private tmpfs, a kept path under it
    # no longer exists, so it is held open (O_PATH) and bound back from that descriptor.
    wanted = {os.path.realpath(p) for p in (*HIDE_CANDIDATES, *hide_extra) if os.path.isdir(p)} - SYSTEM_DIRS
    hide = [h for h in _outermost(wanted) if not _under(h, scratch)]  # else a private tmpfs covers it
    kept = {os.path.realpath(k) for k in keep if os.path.isdir(k)} - SYSTEM_DIRS - set(scratch)
    bind = [k for k in _outermost(kept) if _under(k, hide) or _under(k, scratch)]
    # a bind brings back its whole tree: a directory to hide inside it (the repository inside a kept
    # prefix, the cwd inside a virtual environment) is hidden again on top of it
    rehide = _outermost({h for h in wanted if any(h != k and _under(h, [k]) for k in bind)})
    fds = [os.open(k, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for k in bind]
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for d in scratch:
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
        # A kept path under a scratch directory needs its parents there: the top one becomes its own small
        # tmpfs, made read-only below, so no job can write beside the kept tree, rename it or remove it.
        skeletons = sorted({d.rstrip("/") + "/" + k[len(d.rstrip("/")) + 1:].split("/")[0]
                            for k in bind for d in scratch if _under(k, [d])} - set(bind))
        for h in (*hide, *skeletons):
            os.makedirs(h, exist_ok=True)
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        for k, fd in zip(bind, fds, strict=True):
            os.makedirs(k, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
            _read_only(k)
        for h in rehide:
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        for h in (*hide, *skeletons, *rehide):
            _read_only(h)
    finally:
        for fd in fds:
            os.close(fd)
    return [*hide, *rehide]


def _read_only(target: str) -> None:
    """Remount ``target`` read-only, keeping the flags it has: in a user namespace the kernel refuses a
    remount that would clear a flag locked by the outer mount (noexec, the atime ones)."""
    have = os.statvfs(target).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    for st, ms in ((os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                   (os.ST_RELATIME, MS_RELATIME)):
        if have & st:
            flags |= ms
    _mount(None, target, None, flags)


def private_scratch_dirs() -> list[str]:
    """The world-writable directories that get a private tmpfs (and are emptied after every job)."""
    return [d for d in WORLD_WRITABLE if os.path.isdir(d) and not os.path.islink(d)]


def join_cgroups(dirs: list[str]) -> None:
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def package_paths() -> list[str]:
    """The import path entries that hold installed packages (site-packages, dist-packages, including those
    a ``.pth`` file adds), in import order. The fork server runs with ``-S`` (no ``.pth`` processing), so it
    gets them through ``PYTHONPATH``; other ``.pth`` entries (an editable install of the project itself) are
    left out on purpose: they would expose the repository."""
    out: list[str] = []
    for p in sys.path:
        parts = set(Path(p).parts) if p else set()
        if ("site-packages" in parts or "dist-packages" in parts) and os.path.isdir(p) and p not in out:
            out.append(p)
    return out


def interpreter_paths() -> list[str]:
    """Directories the warm interpreter and its lazily imported modules live in."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(package_paths())
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
