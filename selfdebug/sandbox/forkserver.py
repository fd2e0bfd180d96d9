"""The warm worker: started once per worker slot inside its namespaces, it forks one confined child per job.

It is PID 1 of its PID namespace (at the namespace levels), so after every job ``kill(-1, SIGKILL)`` ends
every process the candidate started, however it daemonised; and, being init, it cannot be killed from
inside. It enforces the per-test and per-job deadlines itself and reports raw events to the harness,
which makes the verdicts. Protocol: one JSON line in (a request), one JSON line out (a reply), each
followed by its raw value lines. A request with ``stream`` also gets partial replies while it runs (its
events so far, at most every ``FORWARD_S``), so the harness can compare values as they come and send
``{"stop": <request id>}`` at the first failure (fast check): the child is then killed, its reply marked
``stopped``. Expected values never come here: the child is a fork of this process.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from selfdebug.sandbox import isolation
from selfdebug.sandbox.runner import RESULT_FD, SECRET_FD, run_child

FORWARD_S = 0.002
"""Partial replies of a streamed job go out at most this often: a failing test is seen within about this
long, and a job of a thousand fast tests sends tens of messages, not a thousand."""
COALESCE_S = 0.001
"""After a short read the fork server waits this long before reading again, so that the child's per-test
lines pile up in the pipe and are read together: a wake-up per test (two context switches) cost more than the
tests of a HumanEval+ problem. A test's deadline is measured from when its start line is read, so a test gets
at most this much longer than its limit."""
RESULT_PIPE_BYTES = 1 << 20
"""The result pipe's capacity (Linux's default is 64 KiB): a child writing a large value blocks less often."""
WALL_FACTOR = 3.0
"""Per-test limits are CPU time (of the child process), so a verdict does not depend on what else the machine
runs; a test is also stopped once its wall time reaches this multiple of its limit (one that sleeps or
waits uses no CPU)."""
CPU_CHECK_MIN_S = 0.005
"""When a test's wall time reaches its limit but its CPU time does not (the child waited for a core), the
next look is after the CPU time it has left, and at least this long."""
_START = b'{"ev":"start","i":'
_VALUE = b'{"ev":"value","i":'
_VALUE_T = b',"t":'
_RESULT_EVENTS = ("value", "error", "signal", "script_ok")

Emit = Callable[[dict[str, Any], list[bytes]], None]
"""Writes one reply header and its value lines to the harness."""


def cpu_clock(pid: int) -> int | None:
    """Linux's CPU-time clock of process ``pid`` (what ``clock_getcpuclockid`` returns: the process's user +
    system time, every thread, in nanoseconds; about half a microsecond a read); None where it cannot be read
    (the deadlines then fall back to wall time)."""
    clock = ((~pid) << 3) | 2  # CPUCLOCK_SCHED of the process (include/linux/posix-timers.h)
    try:
        time.clock_gettime(clock)
    except (OSError, OverflowError):
        return None
    return clock


def read_event(line: bytes) -> Any:
    """One event line of the child: the two lines of every test (``runner._send_start``, ``_send_value``) are
    read by their fixed form, without a JSON parser (a third of the fork server's time on HumanEval+); any
    other line is JSON. Nothing here is trusted: a line that merely looks like one of them is read as such."""
    try:
        if line.startswith(_START) and line.endswith(b"}"):
            return {"ev": "start", "i": int(line[len(_START):-1])}
        if line.startswith(_VALUE) and line.endswith(b"}"):
            i, sep, t = line[len(_VALUE):-1].partition(_VALUE_T)
            if sep:
                return {"ev": "value", "i": int(i), "t": float(t)}
    except ValueError:
        pass
    return json.loads(line)


class Input:
    """The harness's requests, read as lines from a raw fd: the fork server also watches it while a job
    runs (for stop requests), so it cannot sit behind a buffered reader that select() does not see."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.lines: deque[bytes] = deque()
        self.eof = False

    def fill(self) -> None:
        """One read (call it when the fd is readable, or to block for more)."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            self.eof = True
            return
        self.buf += chunk
        if b"\n" in chunk:
            *complete, rest = bytes(self.buf).split(b"\n")
            self.lines.extend(complete)
            self.buf = bytearray(rest)

    def take_stop(self, job_id: object) -> bool:
        """Drop every stop request queued so far (stale ones name jobs already over); True if one names
        ``job_id``."""
        hit = False
        kept = deque()
        for line in self.lines:
            if line.startswith(b'{"stop"'):
                try:
                    hit = hit or (job_id is not None and json.loads(line).get("stop") == job_id)
                except ValueError:
                    pass
            else:
                kept.append(line)
        self.lines = kept
        return hit

    def next_request(self) -> bytes | None:
        """The next request line (blocking), stale stop requests skipped; None at end of input."""
        while True:
            self.take_stop(None)
            if self.lines:
                return self.lines.popleft()
            if self.eof:
                return None
            self.fill()


class Server:
    def __init__(self, conf: dict[str, Any], inp: Input | None = None, emit: Emit | None = None) -> None:
        self.inp = inp
        self.emit = emit
        self.level: str = conf["level"]
        self.uid: int | None = conf.get("uid")
        self.conf = conf
        self.jobs = 0
        self.pid1 = os.getpid() == 1
        if not self.pid1:  # orphans of the candidate reparent to us, so we can find and kill them
            isolation._libc.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.scratch_dirs: list[str] = []
        if self.level != "rlimits":
            self.scratch_dirs = isolation.private_scratch_dirs()
            isolation.private_filesystem(conf["keep"], conf["hide"])
            isolation._libc.prctl(isolation.PR_SET_DUMPABLE, 0, 0, 0, 0)
        if conf.get("cgroups"):
            isolation.join_cgroups(conf["cgroups"])
            try:  # best effort: a container may forbid lowering it
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write("-1000")
            except OSError:
                pass
        for name in conf.get("preload", ()):
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        self.root = "/tmp/sandbox-jobs" if self.level != "rlimits" else conf["scratch"]
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        self.base_as = isolation.address_space_bytes()
        self.oom_seen = self._oom_kills()
        _warm_up()
        gc.collect()
        gc.freeze()  # the warm heap stays shared with each forked child (no copy-on-write from the GC)

    # --- one job -------------------------------------------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        self.jobs += 1
        work = os.path.join(self.root, f"job{self.jobs}")
        os.mkdir(work, 0o700)
        if self.uid is not None:
            os.chown(work, self.uid, self.uid)
        cap = int(req["max_output_bytes"])
        limits = {"as": self.base_as + int(req["memory_mb"]) * (1 << 20), "cpu": int(req["run_timeout"]) + 2,
                  "fsize": cap, "nofile": int(req["max_open_files"]), "nproc": int(req["max_processes"])}
        r, w = os.pipe()
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default pipe works, a little slower
            pass
        sr, sw = os.pipe()
        os.write(sw, req["secret"].encode())
        os.close(sw)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            self._child(req, work, limits, r, w, sr)
        os.close(w)
        os.close(sr)
        reply: dict[str, Any] = {}
        try:
            reply = self._watch(req, pid, r, int(req["max_result_bytes"]))
        except Exception:  # noqa: BLE001 - our failure, reported as such; the cleanup below still runs
            reply = {"sandbox_error": traceback.format_exc()[-2000:]}
        finally:
            os.close(r)
            reply["leftover"] = self._kill_all(pid)
            # Read once per job, after every process of the job is gone: any OOM kill since the last job's
            # read belongs to this one (the job's leftovers included).
            ooms = self._oom_kills()
            reply["oom"], self.oom_seen = ooms > self.oom_seen, ooms
            out = os.path.join(work, ".output")
            try:
                size = os.path.getsize(out)
                with open(out, "rb") as f:
                    f.seek(max(0, size - 2000))
                    reply["output_tail"] = f.read().decode("utf-8", "replace")
                reply["output_bytes"] = size
            except OSError:
                reply["output_bytes"] = 0
            shutil.rmtree(work, ignore_errors=True)
            if self.level != "rlimits":
                self._scrub_scratch()
        return reply

    def _scrub_scratch(self) -> None:
        """Empty the private world-writable directories, so nothing a job leaves reaches the next one."""
        for d in self.scratch_dirs:
            for name in os.listdir(d):
                path = os.path.join(d, name)
                # mount points are the kept interpreter paths' read-only skeletons (no job can mount)
                if path == self.root or os.path.ismount(path):
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass

    def _oom_kills(self) -> int:
        """The memory cgroup's OOM-kill counter: tells a memory-limit SIGKILL from a self-inflicted one."""
        for d in self.conf.get("cgroups") or ():
            try:
                with open(os.path.join(d, "memory.oom_control")) as f:
                    for line in f:
                        if line.startswith("oom_kill "):
                            return int(line.split()[1])
            except OSError:
                pass
        return 0

    def _child(self, req: dict[str, Any], work: str, limits: dict[str, int], r: int, w: int, sr: int) -> None:
        try:
            os.close(r)
            os.chdir(work)
            devnull = os.open("/dev/null", os.O_RDONLY)
            out = os.open(os.path.join(work, ".output"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if self.uid is not None:
                os.fchown(out, self.uid, self.uid)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.dup2(w, RESULT_FD)
            os.dup2(sr, SECRET_FD)
            os.closerange(SECRET_FD + 1, 1 << 16)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            isolation.confine_child(self.level, self.uid, limits)
            os.environ.clear()
            os.environ.update({"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8", "TMPDIR": work,
                               # one thread per numeric library: threads count against RLIMIT_NPROC
                               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            sys.stdin = None
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            sys.argv = ["program.py"]
            sys.set_int_max_str_digits(0)
        except BaseException:  # noqa: BLE001 - no candidate code has run: this is a sandbox failure
            try:
                os.write(RESULT_FD, (json.dumps({"ev": "sandbox_error", "error": traceback.format_exc()[-2000:]})
                                     + "\n").encode())
            finally:
                os._exit(71)
        run_child(req)

    def _watch(self, req: dict[str, Any], pid: int, r: int, cap: int) -> dict[str, Any]:
        """Collect the child's events until it ends, a deadline passes or the harness stops the job."""
        t0 = time.monotonic()
        run_deadline = t0 + float(req["run_timeout"])
        clock = cpu_clock(pid)

        def cpu_now() -> float | None:
            if clock is None:
                return None
            try:
                return time.clock_gettime(clock)
            except OSError:  # the child is gone
                return None

        limits = req["test_limits"]
        events: list[dict[str, Any]] = []
        payloads: list[bytes] = []
        reply: dict[str, Any] = {"events": events, "timeout": None, "output_limit": False,
                                 "payloads": payloads}
        payload_for: dict[str, Any] | None = None  # the value event whose payload line comes next
        buf, total, current, started = bytearray(), 0, None, t0
        cpu_started: float | None = None
        check_at = run_deadline  # when the current test's time is next looked at
        done = False
        # streaming: events[:sent_e] and payloads[:sent_p] have gone out in partial replies; results counts
        # the result events complete (their payload in), forwarded how many have gone out
        stream = bool(req.get("stream")) and self.emit is not None and self.inp is not None
        job_id = req.get("id")
        sent_e = sent_p = results = forwarded = 0
        last_fwd = -FORWARD_S
        coalesce = False
        while not done:
            now = time.monotonic()
            if now >= run_deadline:
                reply["timeout"] = {"at": current, "run": True, "elapsed": now - started}
                break
            if current is not None and now >= check_at:
                limit = float(limits[current])
                cpu = cpu_now()
                used = now - started if cpu is None or cpu_started is None else cpu - cpu_started
                if used >= limit or now - started >= WALL_FACTOR * limit:
                    reply["timeout"] = {"at": current, "run": False, "elapsed": now - started, "cpu": used}
                    break
                check_at = min(now + max(limit - used, CPU_CHECK_MIN_S), started + WALL_FACTOR * limit)
            deadline = min(run_deadline, check_at) if current is not None else run_deadline
            wait = deadline - now
            fds = [r]
            if stream:
                if results > forwarded:
                    if now - last_fwd >= FORWARD_S:
                        ready_e = len(events) - (payload_for is not None)  # never a value before its payload
                        self.emit({"partial": True, "events": events[sent_e:ready_e],
                                   "n_payloads": len(payloads) - sent_p}, payloads[sent_p:])
                        sent_e, sent_p, forwarded, last_fwd = ready_e, len(payloads), results, now
                    else:
                        wait = min(wait, last_fwd + FORWARD_S - now)
                if not self.inp.eof:
                    fds.append(self.inp.fd)
            ready, _, _ = select.select(fds, [], [], max(wait, 0.0))
            if stream and self.inp.fd in ready:
                self.inp.fill()
                if self.inp.take_stop(job_id):
                    reply["stopped"] = True
                    break
            if r not in ready:
                continue
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            if len(chunk) < 1 << 16:  # not a large value on its way: let the next lines pile up (COALESCE_S)
                coalesce = True
            total += len(chunk)
            if total > cap:
                reply["output_limit"] = True
                break
            if b"\n" not in chunk:  # part of a long line: append without rescanning (no quadratic copying)
                buf += chunk
                continue
            head, _, tail = chunk.rpartition(b"\n")
            buf += head
            lines = bytes(buf).split(b"\n")
            buf = bytearray(tail)
            now = time.monotonic()
            cpu = cpu_now()  # one read for the whole chunk: its lines arrived together
            for line in lines:
                if payload_for is not None:  # forwarded as is; the harness parses it, alone
                    payload_for["p"] = len(payloads)
                    payloads.append(line)
                    payload_for = None
                    results += 1
                    continue
                try:
                    ev = read_event(line)
                except (ValueError, RecursionError):
                    ev = {"ev": "garbage"}
                if not isinstance(ev, dict):
                    ev = {"ev": "garbage"}
                kind = ev.get("ev")
                if kind == "start" and isinstance(ev.get("i"), int) and 0 <= ev["i"] < len(limits):
                    current, started, cpu_started = ev["i"], now, cpu
                    check_at = now + float(limits[current])  # CPU time cannot outrun wall time (one thread)
                elif kind in _RESULT_EVENTS:
                    ev["dur"] = now - started
                    if cpu is not None and cpu_started is not None:
                        ev["cpu"] = cpu - cpu_started  # what the deadline measures: the reference's timing
                    current = None
                    if kind == "value":
                        ev.pop("p", None)
                        payload_for = ev
                    else:
                        results += 1
                elif kind == "done":
                    # the end (a forged early "done" only leaves tests unrun, a failure); do not wait for
                    # EOF, which a daemon holding the pipe would delay until the run deadline
                    done = True
                events.append(ev)
            if coalesce and not done:
                coalesce = False
                time.sleep(COALESCE_S)
        reply["elapsed"] = time.monotonic() - t0
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        reply["exit"] = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else \
            {"code": os.WEXITSTATUS(status)}
        # what the partial replies carried is not sent again
        del events[:sent_e]
        del payloads[:sent_p]
        return reply

    def _kill_all(self, pid: int) -> int:
        """Kill every process the job left behind; returns how many survived (must be 0)."""
        for _ in range(50):
            if self.pid1:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                for child in _children_of(os.getpid()):
                    try:
                        os.kill(child, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG) == (0, 0):
                        break
                except ChildProcessError:
                    break
            left = _children_of(os.getpid()) if not self.pid1 else _all_but_self()
            if not left:
                return 0
            time.sleep(0.01)
        return len(left)


def _warm_up() -> None:
    """Run once, in the warm interpreter, what every job runs: CPython builds the compiler's and the AST's
    state lazily on the first ``compile`` in a process (milliseconds of CPU and hundreds of page faults), and
    each forked child would pay that again; done here, before ``gc.freeze``, it is shared. This alone made the
    sandbox about a third faster on HumanEval (benchmarks/results/sandbox.md)."""
    from selfdebug.plain import encode

    code = "import math\ndef _f(x: list, y=None) -> int:\n    return sum(v for v in x if v) + math.floor(1.5)\n"
    scope: dict[str, Any] = {"__name__": "__warm__"}
    exec(compile(code, "program.py", "exec"), scope)
    value = eval(compile("_f([1, 2, 0])", "test_0", "eval"), scope)
    json.loads(json.dumps(encode([value, "s", 1.5, None, (1,), {"k": [True]}]), separators=(",", ":")))
    try:  # the error path of a failing test: raising, formatting, walking the traceback
        eval(compile("_f(None)", "test_1", "eval"), scope)
    except TypeError as e:
        _ = f"{type(e).__name__}: {e} (line {e.__traceback__ and e.__traceback__.tb_lineno})"


def _all_but_self() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def _children_of(ppid: int) -> list[int]:
    kids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == ppid:
                    kids.append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def main() -> None:
    conf = json.loads(sys.argv[1])
    inp = Input(0)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open("/dev/null", os.O_WRONLY), 1)  # stray prints cannot corrupt the protocol

    def emit(header: dict[str, Any], payloads: list[bytes]) -> None:
        out.write((json.dumps(header) + "\n").encode())
        for payload in payloads:  # newline-free: they were split on newlines
            out.write(payload)
            out.write(b"\n")
        out.flush()

    try:
        server = Server(conf, inp, emit)
        hello = {"ready": True, "level": server.level, "pid1": server.pid1, "base_as": server.base_as}
    except BaseException:  # noqa: BLE001
        hello = {"ready": False, "error": traceback.format_exc()[-3000:]}
    emit(hello, [])
    if not hello["ready"]:
        sys.exit(1)
    while (line := inp.next_request()) is not None:
        try:
            reply = server.handle(json.loads(line))
        except BaseException:  # noqa: BLE001
            reply = {"sandbox_error": traceback.format_exc()[-3000:]}
        payloads = reply.pop("payloads", [])
        reply["n_payloads"] = len(payloads)
        emit(reply, payloads)


if __name__ == "__main__":
    main()
